#!/usr/bin/env python
"""Proof of `history run`, the step detection and `bisect` on planted steps (results/history/).

    .venv/bin/python tools/history_proof.py                      # 36 commits, 5 rounds (the lead's proof)
    .venv/bin/python tools/history_proof.py --commits 6 --steps 3:2000 --rounds 2 --image-size 32 \
        --max-time 0.3 --out-dir /tmp/proof                      # a smoke test (tests/history)

What it does
1. Copies this checkout (tracked + untracked, not ignored files, without results/) into a
   temporary git repository with ``--commits`` commits. tests/fixtures/planted.py's EXTRA_WIDTH
   (the width of planted_resnet18's extra conv: the cost) is 0 in the first commit and changes
   at the commits of ``--steps`` (``INDEX:WIDTH``, comma-separated; the defaults plant about +5%,
   then +10%, then -4% at 64 px on this project's CPU, from results/speed_gate/calibration.csv:
   240 ~ +5%, 720 ~ +15.5% cumulative, 500 ~ +11%). Every other commit changes nothing.
2. ``resnet-bench history run FIRST..LAST --models planted_resnet18`` over it into a database
   (skipping the first commit's parent-less range start: the range holds commits 2..N, and the
   first commit is measured as the range's base with ``history run FIRST``).
3. ``resnet-bench history report --format json``: the steps found against the planted ones
   (a planted step is found when a step is reported at its commit or one beside it).
4. ``resnet-bench bisect`` on the first planted step (GOOD = 4 commits before it, BAD = 3 after
   it, or the range's ends): its probes and the commit it names.
5. Writes OUT_DIR/README.md (commands, wall times, found vs planted, probes), report.json,
   report.html, and keeps the database as OUT_DIR/history.sqlite with --keep-db.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "results" / "history"
PLANTED = Path("tests/fixtures/planted.py")
MODEL = "planted_resnet18"
DEFAULT_STEPS = "10:240,20:720,28:500"


def log(msg: str) -> None:
    print(f"[{dt.datetime.now().strftime('%H:%M:%S')}] {msg}", flush=True)


def parse_steps(text: str, commits: int) -> dict[int, int]:
    out = {}
    for item in text.split(","):
        idx, _, width = item.partition(":")
        i, w = int(idx), int(width)
        if not (1 <= i < commits) or w < 0:
            raise SystemExit(f"--steps: {item!r}: index must be in 1..{commits - 1}, width >= 0")
        out[i] = w
    return out


def set_width(repo: Path, width: int) -> None:
    p = repo / PLANTED
    text = p.read_text()
    new = re.sub(r"^EXTRA_WIDTH = \d+", f"EXTRA_WIDTH = {width}", text, count=1, flags=re.M)
    assert "EXTRA_WIDTH" in new
    p.write_text(new)


def make_repo(root: Path, commits: int, steps: dict[int, int]) -> tuple[Path, list[str], list[int]]:
    """The repository, its commits (oldest first) and each commit's width."""
    files = subprocess.run(["git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard"],
                           capture_output=True, text=True, check=True).stdout.split("\n")
    repo = root / "repo"
    for f in files:
        if not f or not (REPO / f).is_file() or f.startswith("results/"):
            continue
        dst = repo / f
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / f, dst)
    ref = REPO / "results" / "reference_counts.csv"
    if ref.is_file():
        (repo / "results").mkdir(exist_ok=True)
        shutil.copy2(ref, repo / "results" / ref.name)

    def git(*a: str, when: int | None = None) -> str:
        env = dict(os.environ)
        if when is not None:  # distinct, increasing commit times
            env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = f"{1_700_000_000 + when * 60} +0000"
        return subprocess.run(["git", "-C", str(repo), "-c", "user.email=proof@example.invalid", "-c",
                               "user.name=history proof", *a], capture_output=True, text=True, check=True,
                              env=env).stdout.strip()

    width, widths, shas = 0, [], []
    set_width(repo, 0)
    git("init", "-q")
    for i in range(commits):
        if i in steps:
            width = steps[i]
            set_width(repo, width)
        git("add", "-A")
        msg = f"commit {i}: EXTRA_WIDTH = {width}" + (" (planted step)" if i in steps else "")
        git("commit", "-q", "--allow-empty", "-m", msg, when=i)
        shas.append(git("rev-parse", "HEAD"))
        widths.append(width)
    return repo, shas, widths


def bench(repo: Path, *argv: str, timeout: float = 36_000) -> tuple[subprocess.CompletedProcess, float]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(repo)
    env["RESNET_BENCH_PLUGINS"] = "tests.fixtures.planted"
    env.pop("RESNET_BENCH_PLANTED_WIDTH", None)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "bench", *argv], cwd=repo, env=env, capture_output=True, text=True,
                       timeout=timeout)
    return r, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--commits", type=int, default=36)
    ap.add_argument("--steps", default=DEFAULT_STEPS, help="INDEX:WIDTH,... (default %(default)s)")
    ap.add_argument("--rounds", type=int, default=5, help="history run rounds per commit (default %(default)s)")
    ap.add_argument("--bisect-rounds", type=int, default=7, help="rounds per bisect probe (default %(default)s)")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--max-time", type=float, default=None, help="sampling seconds per process (gate default)")
    ap.add_argument("--window", type=int, default=4)
    ap.add_argument("--threshold", default="3%", help="history report threshold (default %(default)s: the "
                    "planted -4%% must count)")
    ap.add_argument("--out-dir", default=str(OUT_DIR))
    ap.add_argument("--keep-db", action="store_true", help="keep the database as OUT_DIR/history.sqlite")
    args = ap.parse_args()
    steps = parse_steps(args.steps, args.commits)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    case = ["--models", MODEL, "--image-sizes", str(args.image_size), "--quiet"]
    if args.max_time is not None:
        case += ["--max-time", str(args.max_time), "--min-time", str(min(args.max_time, 0.5)),
                 "--max-warmup", str(min(args.max_time, 1.0))]
    with tempfile.TemporaryDirectory(prefix="history-proof-") as tmp:
        repo, shas, widths = make_repo(Path(tmp), args.commits, steps)
        dbfile = Path(tmp) / "history.sqlite"
        db = ["--db", str(dbfile)]
        log(f"repository of {len(shas)} commits at {repo}; planted widths {steps}")
        runs = [("history run (first commit)", ["history", "run", shas[0], "--rounds", str(args.rounds), *case, *db]),
                ("history run (the range)", ["history", "run", f"{shas[0]}..{shas[-1]}", "--rounds", str(args.rounds),
                                             "--window", str(args.window), *case, *db])]
        walls = {}
        for name, argv in runs:
            log(f"{name}: resnet-bench {' '.join(argv)}")
            r, wall = bench(repo, *argv)
            walls[name] = wall
            if r.returncode != 0:
                log(f"FAILED (rc {r.returncode}): {r.stderr[-2000:]}")
                return 1
            log(r.stdout.strip())
        r, _ = bench(repo, "history", "report", "--format", "json", "--threshold", args.threshold, *db)
        report = json.loads(r.stdout)
        bench(repo, "history", "report", "--html", str(out / "report.html"), "--threshold", args.threshold, *db)
        first = min(steps)
        good_i, bad_i = max(0, first - 4), min(len(shas) - 1, first + 3)
        later = [i for i in steps if i > first]
        if later:
            bad_i = min(bad_i, min(later) - 1)
        bargv = ["bisect", shas[good_i], shas[bad_i], "--rounds", str(args.bisect_rounds), *case, *db]
        bargv.remove("--quiet")
        log(f"bisect: resnet-bench {' '.join(bargv)}")
        b, bwall = bench(repo, *bargv)
        log(b.stdout.strip())
        if args.keep_db:
            shutil.copy2(dbfile, out / "history.sqlite")
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    text = summarize(args, steps, shas, widths, report, walls, bargv, b, bwall, (good_i, bad_i), runs)
    (out / "README.md").write_text(text)
    log(f"wrote {out / 'README.md'}")
    return 0


def summarize(args, steps, shas, widths, report, walls, bargv, b, bwall, ends, runs) -> str:
    index = {s: i for i, s in enumerate(shas)}
    planted_series = [s for s in report["series"] if s["case"].startswith(MODEL)]
    found = [(index.get(st["commit"], -1), st) for s in planted_series for st in s["steps"]]
    lines = ["# history: planted steps, found steps, bisect", "",
             f"Made by `tools/history_proof.py` on {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, "
             f"{platform.node()}, {platform.processor() or platform.machine()}.", "",
             "## Commands", "", "```"]
    lines += [f".venv/bin/python tools/history_proof.py {' '.join(sys.argv[1:])}".rstrip()]
    lines += [f"resnet-bench {' '.join(a if not a.startswith('/') else '<tmp>' for a in argv)}" for _, argv in runs]
    lines += [f"resnet-bench {' '.join(a if not a.startswith('/') else '<tmp>' for a in bargv)}", "```", "",
              "## Wall time", ""]
    lines += [f"- {name}: {wall:.0f} s" for name, wall in walls.items()] + [f"- bisect: {bwall:.0f} s", ""]
    lines += ["## Planted against found", "", "| commit | width before -> after | planted | found at | size | 95% CI |"
              " kind |", "|---|---|---|---|---|---|---|"]
    for i in sorted(steps):
        near = [(j, st) for j, st in found if abs(j - i) <= 1]
        w0 = widths[i - 1]
        if near:
            j, st = near[0]
            ci = f"[{st['ci_low']:.3f}, {st['ci_high']:.3f}]" if st.get("ci_low") else "-"
            lines.append(f"| {i} | {w0} -> {widths[i]} | yes | {j} | {st['ratio']:.3f} | {ci} | {st['kind']} |")
        else:
            lines.append(f"| {i} | {w0} -> {widths[i]} | yes | not found | - | - | - |")
    extra = [(j, st) for j, st in found if not any(abs(j - i) <= 1 for i in steps)]
    for j, st in extra:
        lines.append(f"| {j} | - | no | {j} | {st['ratio']:.3f} | - | {st['kind']} (false step) |")
    outliers = [o for s in planted_series for o in s["outliers"]]
    lines += ["", f"Outliers reported (not steps): {len(outliers)}.", "", "## Bisect", "",
              f"GOOD = commit {ends[0]}, BAD = commit {ends[1]} ({ends[1] - ends[0]} commits; at most "
              f"{1 + math.ceil(math.log2(max(ends[1] - ends[0], 2))) + 1} probes). Exit {b.returncode}.", "", "```"]
    lines += [ln for ln in (b.stderr + b.stdout).splitlines() if ln.startswith(("probe", "bisect", "first", "  after",
                                                                               "no step", "budget"))]
    m = re.search(r"first commit of the step: ([0-9a-f]{40})", b.stdout)
    found_at = index.get(m.group(1)) if m else None
    lines += ["```", "", f"Named commit: {found_at if found_at is not None else 'none'} (planted: {min(steps)}).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
