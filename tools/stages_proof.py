#!/usr/bin/env python
"""The stage pass and the peak microbenchmark on record (issue 19): writes ``--out`` (default
results/stages-cpu/).

1. ``peak_vs_timer.csv``: bench.core.peak's matmul GMAC/s against torch.utils.benchmark.Timer's
   (``blocked_autorange``) for the same (N x N) @ (N x N) matmul, in alternating order, in one
   process at ``--threads``; the ratio per pair and its median (target: within 10%).
2. ``imagenet/``: ``resnet-bench run`` of resnet50, resnet50_v1, resnet50c, resnet50d, resnet50s
   and resnext50_32x4d, batch 1 at 224 px, eager fp32 (contiguous and channels_last), one round,
   with the stage pass; then its report (``report.md``), figures (``figures/``) and the stage
   table as CSV (``stages.csv``).
3. ``cifar/``: the same for resnet20, resnet56 and resnet110 at 32 px, batches 1 and 64.
4. ``checks.md``: per row, stage sum against the whole (residue, target 5%) and the stage
   pass's share of the case's wall time (``stage_pass_s / (case_s - stage_pass_s)``, target 20%).

Run it on an otherwise idle machine (it times things); ``commands.txt`` records what ran.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

IMAGENET = "resnet50,resnet50_v1,resnet50c,resnet50d,resnet50s,resnext50_32x4d"
CIFAR = "resnet20,resnet56,resnet110"


def peak_vs_timer(threads: int, pairs: int) -> list[dict]:
    import torch
    from torch.utils.benchmark import Timer

    from bench.core import peak

    torch.set_num_threads(threads)
    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    timer = Timer("torch.mm(a, b)", globals={"torch": torch, "a": a, "b": b}, num_threads=threads)
    rows = []
    for i in range(pairs):
        got = {}
        for who in (("ours", "timer") if i % 2 == 0 else ("timer", "ours")):
            if who == "ours":
                got[who] = peak._compute("cpu", torch.float32, False)["matmul_gmacs_per_s"]
            else:
                got[who] = n**3 / timer.blocked_autorange(min_run_time=1.0).median / 1e9
        rows.append({"pair": i, "ours_gmacs_per_s": got["ours"], "timer_gmacs_per_s": got["timer"],
                     "ratio": got["ours"] / got["timer"]})
        print(f"pair {i}: ours {got['ours']:.1f} GMAC/s, Timer {got['timer']:.1f} GMAC/s", flush=True)
    return rows


def cli(args: list[str], log: list[str]) -> None:
    cmd = [sys.executable, "-m", "bench", *args]
    log.append("resnet-bench " + " ".join(args))
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO)
    log[-1] += f"   # {time.perf_counter() - t0:.0f} s"


def checks(run: Path) -> list[str]:
    rows = [json.loads(line) for line in (run / "rows.jsonl").read_text().splitlines() if line.strip()]
    out = []
    for r in rows:
        if r.get("status") != "ok" or r.get("stage_total_ms") is None:
            continue
        whole = r["stage_total_ms"]
        cost = r["stage_pass_s"] / (r["case_s"] - r["stage_pass_s"])
        out.append(f"| {r['model']} | {r['layout']} | {r['batch_size']} | {r['latency_ms_p50']:.2f} | {whole:.2f} | "
                   f"{r['stage_residue_ms']:+.3f} | {100 * r['stage_residue_frac']:+.1f}% | "
                   f"{r['stage_pass_s']:.2f} | {r['case_s']:.1f} | {100 * cost:.0f}% |")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "results" / "stages-cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--pairs", type=int, default=6)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    log: list[str] = [f"python tools/stages_proof.py --out {a.out.relative_to(REPO)} --threads {a.threads}"]

    pv = peak_vs_timer(a.threads, a.pairs)
    with open(a.out / "peak_vs_timer.csv", "w") as f:
        f.write("pair,ours_gmacs_per_s,timer_gmacs_per_s,ratio\n")
        for r in pv:
            f.write(f"{r['pair']},{r['ours_gmacs_per_s']:.2f},{r['timer_gmacs_per_s']:.2f},{r['ratio']:.4f}\n")
    ratios = [r["ratio"] for r in pv]

    common = ["--batch-sizes", "1", "--threads", str(a.threads), "--device", "cpu", "--precisions", "fp32",
              "--compile", "none", "--rounds", "1"]
    table = ["| model | layout | batch | latency_ms_p50 | stage pass step ms | residue ms | residue | "
             "stage_pass_s | case_s | stage pass cost |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, models, extra in (("imagenet", IMAGENET, ["--image-sizes", "224", "--layouts", "contiguous,channels_last"]),
                                ("cifar", CIFAR, ["--image-sizes", "32", "--layouts", "contiguous",
                                                  "--batch-sizes", "1,64"])):
        run = a.out / name
        flags = [*common, *extra] if "--batch-sizes" not in extra else [*common[2:], *extra]
        cli(["run", "--models", models, *flags, "--out", str(run)], log)
        report = run / "report.md"
        with open(report, "w") as f:
            subprocess.run([sys.executable, "-m", "bench", "report", str(run), "--format", "markdown"],
                           check=True, cwd=REPO, stdout=f)
        log.append(f"resnet-bench report {run.relative_to(REPO)} --format markdown > {report.relative_to(REPO)}")
        cli(["report", str(run), "--plots", str(run / "figures")], log)
        table += checks(run)

    with open(a.out / "checks.md", "w") as f:
        f.write(f"# Stage pass checks\n\npeak matmul ours / torch.utils.benchmark.Timer: median "
                f"{statistics.median(ratios):.3f} (range {min(ratios):.3f}-{max(ratios):.3f}, {len(ratios)} "
                f"interleaved pairs, `peak_vs_timer.csv`)\n\n" + "\n".join(table) + "\n")
    (a.out / "commands.txt").write_text("\n".join(log) + "\n")
    print((a.out / "checks.md").read_text())
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
