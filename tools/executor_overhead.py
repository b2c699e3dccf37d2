"""What does ``--executor ray`` cost over the local executor? The same small sweep, run as
whole commands, local and Ray (a local cluster started and stopped by each command),
interleaved A B, B A, ... so drift in the machine's speed hits both sides alike.

Two conditions:

- ``serial``: ``--threads`` = every usable CPU, so each group takes the whole machine and Ray
  runs the groups one after another, as the local executor does: the difference is the
  executor's own cost (starting the cluster, scheduling, the task processes).
- ``parallel``: ``--threads 1``, so Ray runs as many groups at once as there are CPUs while
  the local executor still runs them one by one: what a user gains on a multi-core machine.

Run it alone on an idle machine (nothing else measuring), from the repository root:

    python tools/executor_overhead.py --reps 5 --out-dir results/executor_overhead

It writes runs.csv (one line per command run: condition, rep, executor, wall seconds, exit
code) and summary.md (medians, min-max, the paired ratio ray/local, the machine and the exact
commands). ``--summarize`` rewrites summary.md from runs.csv without measuring.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = "resnet18,resnet20,resnet34,resnet50"
SWEEP = ["--models", MODELS, "--batch-sizes", "1", "--image-sizes", "64", "--layouts", "contiguous",
         "--precisions", "fp32", "--compile", "none", "--device", "cpu", "--max-time", "1", "--min-time", "0.5",
         "--max-warmup", "2", "--quiet", "--format", "json"]
FIELDS = ["condition", "rep", "order", "executor", "wall_s", "exit_code", "load_avg_1m_before"]


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def command(executor: str, threads: int, out: Path) -> list[str]:
    cmd = [sys.executable, "-m", "bench", "run", *SWEEP, "--threads", str(threads), "--out", str(out),
           "--executor", executor]
    return cmd + (["--address", "local"] if executor == "ray" else [])


def run_once(cmd: list[str]) -> tuple[float, int]:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        print(f"  exit {p.returncode}: {p.stderr.strip().splitlines()[-1:] or ''}", file=sys.stderr)
    return wall, p.returncode


def measure(out_dir: Path, reps: int, conditions: list[str]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = out_dir / "runs.csv"
    new = not runs.exists()
    scratch = Path(tempfile.mkdtemp(prefix="executor-overhead-"))
    threads = {"serial": usable_cpus(), "parallel": 1}
    try:
        with open(runs, "a", newline="") as f:
            w = csv.DictWriter(f, FIELDS)
            if new:
                w.writeheader()
            for cond in conditions:
                # one unrecorded warm-up per side (page cache, compiled bytecode)
                for ex in ("local", "ray"):
                    run_once(command(ex, threads[cond], scratch / f"warm-{cond}-{ex}"))
                for rep in range(reps):
                    order = ("local", "ray") if rep % 2 == 0 else ("ray", "local")
                    for i, ex in enumerate(order):
                        load = os.getloadavg()[0]
                        wall, rc = run_once(command(ex, threads[cond], scratch / f"{cond}-{rep}-{ex}"))
                        w.writerow({"condition": cond, "rep": rep, "order": i, "executor": ex,
                                    "wall_s": f"{wall:.3f}", "exit_code": rc, "load_avg_1m_before": f"{load:.2f}"})
                        f.flush()
                        print(f"{cond} rep {rep} {ex}: {wall:.1f} s (exit {rc})", file=sys.stderr)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def summarize(out_dir: Path) -> str:
    rows = list(csv.DictReader(open(out_dir / "runs.csv")))
    lines = ["# Executor overhead: the same sweep, local vs --executor ray (local cluster)", "",
             f"Written by `python tools/executor_overhead.py` on {dt.date.today().isoformat()}; "
             f"machine: {platform.processor() or platform.machine()}, {usable_cpus()} usable CPUs, "
             f"Python {platform.python_version()}.", "",
             f"Sweep: {MODELS.count(',') + 1} model groups ({MODELS}), one eager fp32 case each, batch 1, 64 px, "
             "CPU. Whole commands timed (wall clock, `time.perf_counter` around the process), sides interleaved, "
             "one unrecorded warm-up per side. Ray's side includes starting and stopping its local cluster.", "",
             "| condition | threads | local s (median, min-max) | ray s (median, min-max) | ray - local s | ray / local "
             "(median of paired ratios) | runs |", "|---|---|---|---|---|---|---|"]
    for cond in dict.fromkeys(r["condition"] for r in rows):
        sub = [r for r in rows if r["condition"] == cond and r["exit_code"] == "0"]
        side = {ex: {int(r["rep"]): float(r["wall_s"]) for r in sub if r["executor"] == ex} for ex in ("local", "ray")}
        reps = sorted(set(side["local"]) & set(side["ray"]))
        if not reps:
            continue
        loc, ray = [side["local"][i] for i in reps], [side["ray"][i] for i in reps]
        ratios = [b / a for a, b in zip(loc, ray)]
        threads = usable_cpus() if cond == "serial" else 1
        lines.append(f"| {cond} | {threads} | {statistics.median(loc):.1f} ({min(loc):.1f}-{max(loc):.1f}) | "
                     f"{statistics.median(ray):.1f} ({min(ray):.1f}-{max(ray):.1f}) | "
                     f"{statistics.median(ray) - statistics.median(loc):+.1f} | {statistics.median(ratios):.2f} | "
                     f"{len(reps)} pairs |")
    failed = [r for r in rows if r["exit_code"] != "0"]
    if failed:
        lines += ["", f"{len(failed)} run(s) failed and are left out (runs.csv has them)."]
    lines += ["", "Commands (OUT differs per run):", ""]
    for cond, threads in (("serial", usable_cpus()), ("parallel", 1)):
        for ex in ("local", "ray"):
            cmd = ["resnet-bench", *command(ex, threads, Path("OUT"))[3:]]
            lines.append(f"- {cond}, {ex}: `{shlex.join(cmd)}`")
    text = "\n".join(lines) + "\n"
    (out_dir / "summary.md").write_text(text)
    return text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5, help="interleaved pairs per condition (default 5)")
    ap.add_argument("--conditions", default="serial,parallel", help="serial, parallel or both (default)")
    ap.add_argument("--out-dir", default="results/executor_overhead")
    ap.add_argument("--summarize", action="store_true", help="only rewrite summary.md from runs.csv")
    a = ap.parse_args()
    out_dir = Path(a.out_dir)
    if not a.summarize:
        conds = [c.strip() for c in a.conditions.split(",") if c.strip()]
        if not conds or any(c not in ("serial", "parallel") for c in conds) or a.reps < 1:
            ap.error("--conditions takes serial and/or parallel; --reps at least 1")
        measure(out_dir, a.reps, conds)
    print(summarize(out_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
