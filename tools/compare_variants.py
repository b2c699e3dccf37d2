"""Two registered variants timed against each other in interleaved rounds in one process (the
statistics of `resnet-bench validate`: paired round ratios, bootstrap CI), per mode.

    python tools/compare_variants.py resnetv2_50 resnet50 --modes contiguous/fp32/none,channels_last/bf16/none \
        --rounds 20 --round-time 0.75 --threads 1

Prints one line per mode: candidate ms, reference ms, ratio candidate/reference [95% CI].
"""

from __future__ import annotations

import argparse
import copy

import torch

import resnet_impl
from bench.core import modes
from bench.core.case import Case
from bench.validate.rounds import comparison_row, interleave, measure_round, warm_up


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("candidate")
    ap.add_argument("reference")
    ap.add_argument("--modes", default="contiguous/fp32/none")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--round-time", type=float, default=0.75)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--image-size", type=int, default=224)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    bases = {n: resnet_impl.create_model(n).eval() for n in (a.candidate, a.reference)}
    print(f"{a.candidate} vs {a.reference}, {a.rounds} interleaved rounds of {a.round_time} s, "
          f"{a.threads} thread(s), batch 1, {a.image_size} px")
    for mode in a.modes.split(","):
        layout, precision, comp = mode.split("/")
        steps = {}
        for name, base in bases.items():
            case = Case(name, "infer", 1, a.image_size, layout, precision, comp, "cpu")
            x, y = modes.make_inputs(case, base.spec.num_classes)
            with modes.precision_context(case):
                steps[name] = modes.prepare(copy.deepcopy(base), case, x, y).step
                warm_up(steps[name], "cpu", 10.0)
        with modes.precision_context(case):
            ours, ref = interleave(measure_round(steps[a.candidate], "cpu", a.round_time),
                                   measure_round(steps[a.reference], "cpu", a.round_time), a.rounds)
        r = comparison_row(ours, ref, tolerance=0.03)
        print(f"{mode:<28} {r['ours_ms']:8.2f} ms {r['ref_ms']:8.2f} ms  ratio {r['ratio']:.3f} "
              f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]")


if __name__ == "__main__":
    main()
