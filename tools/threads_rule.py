#!/usr/bin/env python
"""The measurement behind the thread rule (bench.core.host.default_threads): the same small
sweep with 1 thread and with every core, alternating, on an idle machine and with one other
busy process (a neighbour's job), and what each answer costs and how precise it is.

    .venv/bin/python tools/threads_rule.py [--pairs 3] [--out results/threads]

Sweep: resnet50, batch 1, 224 px, eager fp32 contiguous and channels_last, CPU, 3 rounds, no
stage pass. Per command: wall time, the channels_last speedup and its 95% CI half-width, each
case's latency and its between-round CI, and the worst per-call latency. The neighbour is a
busy loop pinned nowhere (one runnable process, as another tenant's job would be). Writes
runs.csv and summary.md; README.md there reads them.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SWEEP = ["--models", "resnet50", "--batch-sizes", "1", "--image-sizes", "224", "--layouts", "contiguous,channels_last",
         "--precisions", "fp32", "--compile", "none", "--device", "cpu", "--rounds", "3", "--no-stages", "--quiet",
         "--format", "json"]
BUSY = "import time\nwhile True:\n    sum(i * i for i in range(10000))\n"


def one(threads: int, busy: bool, work: Path) -> dict:
    out = work / f"r{threads}{'b' if busy else ''}{time.monotonic_ns()}"
    hog = subprocess.Popen([sys.executable, "-c", BUSY]) if busy else None
    try:
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "bench", "run", *SWEEP, "--threads", str(threads), "--out", str(out)],
                           cwd=REPO, capture_output=True, text=True, timeout=1800)
        wall = time.perf_counter() - t0
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    if p.returncode != 0:
        return {"threads": threads, "busy": busy, "error": p.stderr.strip().splitlines()[-1:]}
    rows = {r["layout"]: r for r in json.loads(p.stdout)}
    cont, cl = rows["contiguous"], rows["channels_last"]
    half = lambda lo, hi, v: (hi - lo) / 2 / v if lo is not None and hi is not None else None  # noqa: E731
    shutil.rmtree(out, ignore_errors=True)
    return {"threads": threads, "busy": busy, "wall_s": round(wall, 1),
            "eager_ms": cont["latency_ms_p50"], "eager_ci_rel": half(cont["latency_ms_ci_low"], cont["latency_ms_ci_high"],
                                                                     cont["latency_ms_p50"]),
            "eager_max_ms": max(cont["samples_ms"]), "cl_ms": cl["latency_ms_p50"],
            "speedup": cl["speedup_vs_eager"],
            "speedup_ci_rel": half(cl["speedup_vs_eager_ci_low"], cl["speedup_vs_eager_ci_high"], cl["speedup_vs_eager"]),
            "noisy_rows": sum(bool(r["noisy"]) for r in rows.values()), "load1": os.getloadavg()[0]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--out", default=str(REPO / "results" / "threads"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cores = len(os.sched_getaffinity(0))
    work = Path(tempfile.mkdtemp(prefix="threads-rule-"))
    runs = []
    try:
        for busy in (False, True):
            for i in range(args.pairs):
                for threads in ((1, cores) if i % 2 == 0 else (cores, 1)):
                    r = one(threads, busy, work)
                    runs.append(r)
                    print(json.dumps(r), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    fields = ["threads", "busy", "wall_s", "eager_ms", "eager_ci_rel", "eager_max_ms", "cl_ms", "speedup",
              "speedup_ci_rel", "noisy_rows", "load1", "error"]
    with open(out / "runs.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(runs)
    lines = ["| neighbour | threads | runs | wall s (median) | eager fp32 ms (median) | its CI half-width (median) | "
             "worst call ms (max) | channels_last speedup (median) | its CI half-width (median) | noisy rows |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for busy in (False, True):
        for threads in (1, cores):
            rs = [r for r in runs if r["threads"] == threads and r["busy"] == busy and "error" not in r]
            if not rs:
                lines.append(f"| {'busy' if busy else 'none'} | {threads} | 0 | (failed) |||||||")
                continue
            med = lambda k: statistics.median(r[k] for r in rs if r[k] is not None)  # noqa: E731
            lines.append(f"| {'one busy process' if busy else 'none'} | {threads} | {len(rs)} | {med('wall_s'):.0f} | "
                         f"{med('eager_ms'):.1f} | {med('eager_ci_rel'):.1%} | {max(r['eager_max_ms'] for r in rs):.0f} | "
                         f"{med('speedup'):.3f} | {med('speedup_ci_rel'):.1%} | {sum(r['noisy_rows'] for r in rs)} |")
    (out / "summary.md").write_text(
        f"# Threads: 1 against all {cores} cores\n\n`{' '.join(['python tools/threads_rule.py', *sys.argv[1:]])}`\n\n"
        + "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
