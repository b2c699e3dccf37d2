#!/usr/bin/env python
"""Proof of the speed gate on this machine: detection rate for planted ~3%, ~5% and ~10%
slowdowns and false-alarm rate with no change (optionally beside
`pytest --benchmark-compare-fail=median:5%`).

    .venv/bin/python tools/speed_gate_proof.py [--reps 20] [--deadline-min 80] [--pytest-benchmark]
    .venv/bin/python tools/speed_gate_proof.py --summarize   # rewrite summary.md from the CSVs

What it does
1. Copies this checkout (tracked + untracked, not ignored files) into a temporary git repo and
   commits it: the **base** commit, where tests/fixtures/planted.py has EXTRA_WIDTH = 0
   (planted_resnet18 == resnet18).
2. Calibrates: for a few widths of the planted conv, measures the realized slowdown with an
   independent driver (plain perf_counter loops, not bench.timing), alternating fresh processes
   of width 0 and width W; picks the widths closest to +3%, +5% and +10%.
3. Repeats, rep-major (each repetition runs every condition, so an early stop stays balanced):
   for each condition (none, ~3%, ~5%, ~10%):
   - our gate, the real --base-ref path: the working tree's planted.py gets EXTRA_WIDTH = W,
     then `python -m bench check --speed --base-ref HEAD --models planted_resnet18 --out ...`;
   - with --pytest-benchmark: a baseline run (RESNET_BENCH_PLANTED_WIDTH=0, --benchmark-save),
     then a candidate run (width W) with --benchmark-compare --benchmark-compare-fail=median:5%.
4. Measures the realized slowdowns again at the end (more rounds), and writes
   results/speed_gate/{calibration.csv, runs.csv, realized.csv, summary.md}.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "results" / "speed_gate"
PY = sys.executable
PLANTED = Path("tests/fixtures/planted.py")
MODEL = "planted_resnet18"
GATE_ARGS = ["--models", MODEL]  # everything else: the gate's defaults (64 px, bs1, eager fp32, 1 thread)
PYTEST_CASE = "64px-contiguous"  # the same case in tests/perf
PLUGIN_ENV = {"RESNET_BENCH_PLUGINS": "tests.fixtures.planted"}

# Independent timing driver: one process, one width, plain perf_counter loop at 1 thread.
DRIVER = r"""
import json, os, sys, time, torch
torch.set_num_threads(1)
import resnet_impl
torch.manual_seed(0)
m = resnet_impl.create_model("planted_resnet18").eval()
x = torch.randn(1, 3, 64, 64)
with torch.no_grad():
    for _ in range(20):
        m(x)
    out, t_end = [], time.perf_counter() + float(sys.argv[1])
    while time.perf_counter() < t_end:
        t0 = time.perf_counter(); m(x); out.append((time.perf_counter() - t0) * 1e3)
print(json.dumps(out))
"""


def log(msg: str) -> None:
    print(f"[{dt.datetime.now().strftime('%H:%M:%S')}] {msg}", flush=True)


def make_repo(root: Path) -> Path:
    files = subprocess.run(["git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard"],
                           capture_output=True, text=True, check=True).stdout.split("\n")
    repo = root / "repo"
    for f in files:
        if not f or not (REPO / f).is_file() or f.startswith("results/"):
            continue
        dst = repo / f
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / f, dst)
    set_width(repo, 0)
    git = lambda *a: subprocess.run(["git", "-C", str(repo), *a], capture_output=True, text=True, check=True)  # noqa: E731
    git("init", "-q")
    git("config", "user.email", "proof@example.invalid")
    git("config", "user.name", "speed gate proof")
    git("add", "-A")
    git("commit", "-q", "-m", "base: planted_resnet18 without the extra conv")
    return repo


def set_width(repo: Path, width: int) -> None:
    p = repo / PLANTED
    text = p.read_text()
    new = re.sub(r"^EXTRA_WIDTH = \d+", f"EXTRA_WIDTH = {width}", text, count=1, flags=re.M)
    assert "EXTRA_WIDTH" in new
    p.write_text(new)


def env_for(repo: Path, width: int | None = None) -> dict:
    env = dict(os.environ)
    env.update(PLUGIN_ENV)
    env["PYTHONPATH"] = str(repo)
    env.pop("RESNET_BENCH_PLANTED_WIDTH", None)
    if width is not None:
        env["RESNET_BENCH_PLANTED_WIDTH"] = str(width)
    return env


def driver_samples(repo: Path, width: int, seconds: float) -> list[float]:
    r = subprocess.run([PY, "-c", DRIVER, str(seconds)], cwd=repo, env=env_for(repo, width),
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"driver failed: {r.stderr[-500:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def realized(repo: Path, width: int, rounds: int, seconds: float) -> dict:
    """Interleaved processes of width 0 and `width` (alternating first side): ratio of pooled
    medians, and the median and spread of the per-round paired ratios."""
    base, cand, paired = [], [], []
    for i in range(rounds):
        order = (0, width) if i % 2 == 0 else (width, 0)
        got = {w: driver_samples(repo, w, seconds) for w in order}
        base += got[0]
        cand += got[width]
        paired.append(statistics.median(got[width]) / statistics.median(got[0]))
    paired.sort()
    return {"width": width, "rounds": rounds, "n_base": len(base), "n_cand": len(cand),
            "base_median_ms": statistics.median(base), "cand_median_ms": statistics.median(cand),
            "pooled_ratio": statistics.median(cand) / statistics.median(base),
            "paired_ratio_median": statistics.median(paired),
            "paired_ratio_min": paired[0], "paired_ratio_max": paired[-1]}


def run_gate(repo: Path, width: int, out_json: Path) -> dict:
    set_width(repo, width)
    cmd = [PY, "-m", "bench", "check", "--speed", "--base-ref", "HEAD", *GATE_ARGS, "--out", str(out_json), "--quiet"]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=repo, env=env_for(repo), capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - t0
    set_width(repo, 0)
    row = {"gate": "resnet-bench check --speed", "exit_code": r.returncode, "failed": r.returncode == 1,
           "wall_s": round(wall, 1)}
    try:
        doc = json.loads(out_json.read_text())
        case = doc["cases"][0]
        c = case.get("comparison") or {}
        row.update(verdict=case["verdict"], ratio=c.get("ratio"), ci_low=c.get("ci_low"), ci_high=c.get("ci_high"),
                   p=c.get("p_slower"), base_median_ms=c.get("base_median_ms"), cand_median_ms=c.get("cand_median_ms"))
    except (OSError, KeyError, IndexError, json.JSONDecodeError):
        row.update(verdict=f"no output (rc {r.returncode}): {r.stderr.strip()[-200:]}")
    return row


def _pytest_median_ms(path: Path) -> float | None:
    try:
        doc = json.loads(path.read_text())
        return float(doc["benchmarks"][0]["stats"]["median"]) * 1e3
    except (OSError, KeyError, IndexError, ValueError, json.JSONDecodeError):
        return None


def run_pytest_benchmark(repo: Path, width: int, work: Path) -> dict:
    storage = work.relative_to(repo) / "storage"  # pytest-benchmark wants the storage under cwd
    common = [PY, "-m", "pytest", "tests/perf", "-q", "-p", "no:cacheprovider", "-k", PYTEST_CASE,
              f"--benchmark-storage={storage}"]
    env = {**env_for(repo), "RESNET_BENCH_PERF_MODELS": MODEL}
    t0 = time.perf_counter()
    b = subprocess.run(common + ["--benchmark-save=base", f"--benchmark-json={work / 'base.json'}"],
                       cwd=repo, env={**env, "RESNET_BENCH_PLANTED_WIDTH": "0"}, capture_output=True, text=True,
                       timeout=600)
    c = subprocess.run(common + ["--benchmark-compare", "--benchmark-compare-fail=median:5%",
                                 f"--benchmark-json={work / 'cand.json'}"],
                       cwd=repo, env={**env, "RESNET_BENCH_PLANTED_WIDTH": str(width)}, capture_output=True,
                       text=True, timeout=600)
    wall = time.perf_counter() - t0
    regressed = "Performance has regressed" in (c.stdout + c.stderr)
    base_ms, cand_ms = _pytest_median_ms(work / "base.json"), _pytest_median_ms(work / "cand.json")
    return {"gate": "pytest --benchmark-compare-fail=median:5%", "exit_code": c.returncode,
            "failed": bool(c.returncode != 0 and regressed), "wall_s": round(wall, 1),
            "verdict": "regression" if regressed else ("error" if (b.returncode or c.returncode) else "pass"),
            "ratio": cand_ms / base_ms if base_ms and cand_ms else None,
            "base_median_ms": base_ms, "cand_median_ms": cand_ms}


#: (condition, file tag) of the trial; the slowdown each condition plants
CONDITIONS = (("none", "none"), ("3%", "3"), ("5%", "5"), ("10%", "10"))
TARGETS = {"3%": 1.03, "5%": 1.05, "10%": 1.10}

RUN_FIELDS = ["rep", "condition", "width", "gate", "failed", "exit_code", "verdict", "ratio", "ci_low", "ci_high",
              "p", "base_median_ms", "cand_median_ms", "wall_s", "load1", "time_utc"]


def append_csv(path: Path, fields: list[str], row: dict) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


def pooled_realized(raw_dir: Path) -> dict:
    """Per condition: every base and candidate sample of every gate run, pooled."""
    out = {}
    for cond, tag in CONDITIONS:
        base, cand, per_run = [], [], []
        for f in sorted(raw_dir.glob(f"gate_*_{tag}.json")):
            try:
                case = json.loads(f.read_text())["cases"][0]
            except (OSError, KeyError, IndexError, json.JSONDecodeError):
                continue
            b = [x for r in case["base_rounds"] for x in r]
            c = [x for r in case["candidate_rounds"] for x in r]
            if b and c:
                base += b
                cand += c
                per_run.append(statistics.median(c) / statistics.median(b))
        if per_run:
            out[cond] = {"runs": len(per_run), "n_base": len(base), "n_cand": len(cand),
                         "pooled_ratio": statistics.median(cand) / statistics.median(base),
                         "run_median": statistics.median(per_run), "run_min": min(per_run), "run_max": max(per_run)}
    return out


def redecide(raw_dir: Path) -> dict:
    """The same raw rounds re-decided with other rules and other per-round statistics."""
    from bench.gates import speed

    settings = [(0.05, 0.05, 10), (0.05, 0.05, 50), (0.05, 0.05, 0), (0.05, 0.05, 25), (0.02, 0.05, 10),
                (0.01, 0.05, 10), (0.05, 0.03, 10)]
    out: dict = {}
    default_q = speed.ROUND_QUANTILE
    try:
        for alpha, thr, q in settings:
            speed.ROUND_QUANTILE = q
            rates = {}
            for cond, tag in CONDITIONS:
                k = n = 0
                for f in sorted(raw_dir.glob(f"gate_*_{tag}.json")):
                    try:
                        case = json.loads(f.read_text())["cases"][0]
                        c = speed.compare(case["base_rounds"], case["candidate_rounds"], threshold=thr, alpha=alpha)
                    except (OSError, KeyError, IndexError, ValueError, json.JSONDecodeError):
                        continue
                    n += 1
                    k += c.fails
                if n:
                    rates[cond] = (k, n)
            out[(alpha, thr, q)] = rates
    finally:
        speed.ROUND_QUANTILE = default_q
    return out


def summarize(out_dir: Path) -> str:
    runs = list(csv.DictReader(open(out_dir / "runs.csv")))
    cal = list(csv.DictReader(open(out_dir / "calibration.csv"))) if (out_dir / "calibration.csv").exists() else []
    real = list(csv.DictReader(open(out_dir / "realized.csv"))) if (out_dir / "realized.csv").exists() else []
    meta = json.loads((out_dir / "meta.json").read_text()) if (out_dir / "meta.json").exists() else {}
    loads = [float(r["load1"]) for r in runs if r.get("load1")]
    if loads:
        meta["load_median"] = round(statistics.median(loads), 2)
        meta["load_max"] = round(max(loads), 2)
    goals = {"none": ("false alarms", "<= 5%"), "3%": ("detection", "(no goal)"), "5%": ("detection", ">= 90%"),
             "10%": ("detection", "100%")}
    lines = ["# Speed gate proof", "",
             f"Machine: {meta.get('cpu', '?')}, {meta.get('cpus', '?')} CPUs shared with other engineers' test runs "
             f"(1-min load average during the runs: median {meta.get('load_median', '?')}, max {meta.get('load_max', '?')}); "
             f"torch {meta.get('torch', '?')}, Python {meta.get('python', '?')}. Started {meta.get('started', '?')}, "
             f"finished {meta.get('finished', '?')}.", "",
             "Planted slowdown: `planted_resnet18` (tests/fixtures/planted.py) = resnet18 + one zero-weight 3x3 conv "
             "of W output channels after layer1's first block (outputs unchanged). Case: batch 1, 64 px, eager fp32 "
             "contiguous, CPU, 1 thread (both gates).", "",
             "Commands per repetition (in a temporary git repo whose HEAD has W = 0):", "",
             f"- ours: set `EXTRA_WIDTH = W` in the working tree, then `{meta.get('gate_cmd', '')}`",
             f"- pytest-benchmark: `{meta.get('pytest_base_cmd', '')}` (W = 0), then "
             f"`{meta.get('pytest_cand_cmd', '')}` (W set by RESNET_BENCH_PLANTED_WIDTH)", ""]
    if real or cal:
        lines += ["## Realized slowdown (independent driver: perf_counter loops, alternating fresh processes "
                  "of W = 0 and W)", "", "| phase | W | rounds | samples base / cand | base median ms | ratio of pooled medians | "
                  "per-round paired ratio: median [min, max] |", "|---|---|---|---|---|---|---|"]
        for phase, rows in (("calibration", cal), ("final", real)):
            for r in rows:
                lines.append(f"| {phase} | {r['width']} | {r['rounds']} | {r['n_base']} / {r['n_cand']} | "
                             f"{float(r['base_median_ms']):.3f} | {float(r['pooled_ratio']):.3f} | "
                             f"{float(r['paired_ratio_median']):.3f} [{float(r['paired_ratio_min']):.3f}, "
                             f"{float(r['paired_ratio_max']):.3f}] |")
        lines.append("")
    pooled = pooled_realized(out_dir / "raw")
    if pooled:
        lines += ["## Realized slowdown in the gate runs themselves (all raw samples, interleaved processes)", "",
                  "| condition | gate runs | samples base / cand | ratio of pooled medians | "
                  "per-run ratio of medians: median [min, max] |", "|---|---|---|---|---|"]
        for cond, r in pooled.items():
            lines.append(f"| {cond} | {r['runs']} | {r['n_base']} / {r['n_cand']} | {r['pooled_ratio']:.3f} | "
                         f"{r['run_median']:.3f} [{r['run_min']:.3f}, {r['run_max']:.3f}] |")
        lines.append("")
    lines += ["## Rates", "", "| condition | W | gate | runs | gate failed | rate (95% Wilson CI) | goal | "
              "median ratio reported | wall s per gate run: median (max) |", "|---|---|---|---|---|---|---|---|---|"]
    for cond, _ in CONDITIONS:
        for gate in ("resnet-bench check --speed", "pytest --benchmark-compare-fail=median:5%"):
            rs = [r for r in runs if r["condition"] == cond and r["gate"] == gate]
            if not rs:
                continue
            k = sum(r["failed"] == "True" for r in rs)
            lo, hi = wilson(k, len(rs))
            ratios = [float(r["ratio"]) for r in rs if r["ratio"]]
            walls = [float(r["wall_s"]) for r in rs]
            what, goal = goals[cond]
            goal_txt = f"{what} {goal}" if gate.startswith("resnet") else "(comparison)"
            lines.append(f"| {cond} | {rs[0]['width']} | `{gate}` | {len(rs)} | {k} | {k / len(rs):.0%} "
                         f"[{lo:.0%}, {hi:.0%}] | {goal_txt} | "
                         f"{statistics.median(ratios) if ratios else float('nan'):.3f} | "
                         f"{statistics.median(walls):.0f} ({max(walls):.0f}) |")
    redo = redecide(out_dir / "raw")
    if redo:
        lines += ["", "## The same raw samples re-decided with other settings (post hoc)", "",
                  "Each gate run's saved rounds re-judged by `bench.gates.speed.compare` with another significance, "
                  "threshold or per-round statistic (the percentile of each round's samples; 50 = the median, 0 = "
                  "the minimum); the first row is the rule the runs used. Chosen after seeing the data, so read it "
                  "as sensitivity, not as a second proof.", "",
                  "| alpha | threshold | round statistic (percentile) | false alarms (none) | detected 3% | "
                  "detected 5% | detected 10% |", "|---|---|---|---|---|---|---|"]
        for (alpha, thr, q), rates in redo.items():
            cells = [f"{rates[c][0]}/{rates[c][1]}" if c in rates else "-" for c, _ in CONDITIONS]
            lines.append(f"| {alpha:g} | {thr:.0%} | p{q} | " + " | ".join(cells) + " |")
    errors = [r for r in runs if r["verdict"] not in ("regression", "no-change", "slower-within-threshold",
                                                          "faster", "pass")]
    lines += ["", f"Runs that ended in an error (counted as not failed): {len(errors)}.", ""]
    text = "\n".join(lines) + "\n"
    old = out_dir / "summary.md"
    marker = "## Notes (by hand"
    if old.is_file() and marker in old.read_text():  # keep the notes written after a run
        text += "\n" + old.read_text()[old.read_text().index(marker):]
    old.write_text(text)
    return text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--deadline-min", type=float, default=80.0, help="start no repetition after this many minutes")
    ap.add_argument("--widths", help="W for ~3%%, ~5%% and ~10%%, e.g. 96,176,352 (skips calibration)")
    ap.add_argument("--calibrate", default="64,96,128,176,240,320,400", help="widths to try")
    ap.add_argument("--pytest-benchmark", action="store_true", help="also run pytest-benchmark's comparison")
    ap.add_argument("--out-dir", default=str(OUT_DIR))
    ap.add_argument("--summarize", action="store_true", help="only rewrite summary.md from the CSVs")
    ap.add_argument("--gate-extra", default="", help="extra flags for the gate (smoke tests only)")
    ap.add_argument("--calibrate-rounds", type=int, default=4)
    ap.add_argument("--resume", action="store_true",
                    help="keep runs.csv and raw/, continue after the last complete repetition (needs --widths)")
    ap.add_argument("--no-final", action="store_true", help="skip the final realized-slowdown measurement")
    args = ap.parse_args()
    out_dir = Path(args.out_dir)
    GATE_ARGS.extend(args.gate_extra.split())
    if args.summarize:
        print(summarize(out_dir))
        return 0
    t_start = time.monotonic()
    import signal

    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))  # kill PID: still clean up the temp repo
    import torch

    raw_dir = out_dir / "raw"
    first_rep = 0
    old_meta = {}
    if args.resume:
        if not args.widths:
            ap.error("--resume needs --widths (the ones the first part used)")
        done = list(csv.DictReader(open(out_dir / "runs.csv"))) if (out_dir / "runs.csv").exists() else []
        per_rep = {}
        for r in done:
            per_rep[int(r["rep"])] = per_rep.get(int(r["rep"]), 0) + 1
        per_full = len(CONDITIONS) * (2 if args.pytest_benchmark else 1)
        first_rep = max([k for k, v in per_rep.items() if v == per_full] or [-1]) + 1
        if any(k >= first_rep for k in per_rep):
            ap.error(f"runs.csv has a partial repetition {max(per_rep)}; remove its rows first")
        if (out_dir / "meta.json").exists():
            old_meta = json.loads((out_dir / "meta.json").read_text())
    else:
        for name in ("runs.csv", "realized.csv") + (() if args.widths else ("calibration.csv",)):
            (out_dir / name).unlink(missing_ok=True)
        shutil.rmtree(raw_dir, ignore_errors=True)
    raw_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="speed-gate-proof-"))
    loads = []
    meta = {"cpu": platform.processor(), "cpus": os.cpu_count(), "torch": torch.__version__,
            "python": platform.python_version(), "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "gate_cmd": "python -m bench check --speed --base-ref HEAD " + " ".join(GATE_ARGS) + " --out rep.json",
            "pytest_base_cmd": f"pytest tests/perf -k {PYTEST_CASE} --benchmark-storage=DIR --benchmark-save=base",
            "pytest_cand_cmd": f"pytest tests/perf -k {PYTEST_CASE} --benchmark-storage=DIR --benchmark-compare "
                               "--benchmark-compare-fail=median:5%",
            "env": "RESNET_BENCH_PLUGINS=tests.fixtures.planted RESNET_BENCH_PERF_MODELS=planted_resnet18"}
    try:
        from bench.core.env import cpu_model

        meta["cpu"] = cpu_model()
    except Exception:
        pass
    try:
        repo = make_repo(tmp)
        log(f"proof repo: {repo}")
        if args.widths:
            widths = dict(zip(TARGETS, (int(w) for w in args.widths.split(","))))
        else:
            results = []
            for w in (int(x) for x in args.calibrate.split(",")):
                r = realized(repo, w, rounds=args.calibrate_rounds, seconds=1.0)
                results.append(r)
                append_csv(out_dir / "calibration.csv", list(r), r)
                log(f"calibration: W={w}: ratio {r['pooled_ratio']:.3f} (paired {r['paired_ratio_median']:.3f})")
            widths = {c: min(results, key=lambda r: abs(r["pooled_ratio"] - t))["width"] for c, t in TARGETS.items()}
        meta.update(widths=widths)
        log(f"widths: {widths}")
        conditions = [("none", 0)] + [(c, widths[c]) for c in TARGETS]
        for rep in range(first_rep, args.reps):
            if (time.monotonic() - t_start) / 60 > args.deadline_min:
                log(f"deadline reached after {rep} repetitions")
                break
            for i in range(len(conditions)):
                cond, width = conditions[(rep + i) % len(conditions)]  # rotate the order per repetition
                load1 = os.getloadavg()[0]
                loads.append(load1)
                stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
                g = run_gate(repo, width, raw_dir / f"gate_{rep:02d}_{cond.rstrip('%')}.json")
                append_csv(out_dir / "runs.csv", RUN_FIELDS,
                           {"rep": rep, "condition": cond, "width": width, "load1": load1, "time_utc": stamp, **g})
                log(f"rep {rep} {cond:>4}: ours {g.get('verdict')} ratio {g.get('ratio') or float('nan'):.3f} "
                    f"p {g.get('p') or float('nan'):.2g} ({g['wall_s']} s)")
                if args.pytest_benchmark:
                    work = repo / ".proof" / f"{rep:02d}_{cond.rstrip('%')}"
                    work.mkdir(parents=True, exist_ok=True)
                    pb = run_pytest_benchmark(repo, width, work)
                    append_csv(out_dir / "runs.csv", RUN_FIELDS,
                               {"rep": rep, "condition": cond, "width": width, "load1": os.getloadavg()[0],
                                "time_utc": stamp, **pb})
                    log(f"rep {rep} {cond:>4}: pytest-benchmark {pb['verdict']} ratio {pb['ratio'] or float('nan'):.3f} "
                        f"({pb['wall_s']} s)")
        if not args.no_final and (time.monotonic() - t_start) / 60 < args.deadline_min + 3:
            for w in sorted(set(widths.values())):
                r = realized(repo, w, rounds=8, seconds=1.0)
                append_csv(out_dir / "realized.csv", list(r), r)
                log(f"realized: W={w}: ratio {r['pooled_ratio']:.3f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        meta["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        if old_meta:
            meta["started"] = old_meta.get("started", meta["started"])
            meta["resumed"] = old_meta.get("resumed", []) + [f"from repetition {first_rep}"]
            loads = old_meta.get("loads", []) + loads
        meta["loads"] = [round(x, 2) for x in loads]
        if loads:
            meta["load_median"] = round(statistics.median(loads), 2)
            meta["load_max"] = round(max(loads), 2)
        (out_dir / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(summarize(out_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
