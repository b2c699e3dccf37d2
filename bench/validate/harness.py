"""Check 1: the harness adds nothing to what it measures.

For one case (default resnet50, batch 1, 224 px, eager fp32 contiguous, inference) the median
that bench.core.timing.measure reports for the step of bench.core.modes.prepare is compared
with ``torch.utils.benchmark.Timer(stmt="step()", num_threads=<same threads>)`` timing the
**same step object** (same model, same input) with ``blocked_autorange``. Two paths:

* ``measure()``: our timing core on the step, round by round, interleaved with Timer.
* ``CaseRunner.run``: the full in-process runner path (deep copy of the model, mode applied,
  warm-up until steady, the default TimingConfig), whose row's ``latency_ms_p50`` is what users
  see, interleaved with Timer on a step built from the runner's own model and input. Each Timer
  round lasts as long as the runner's latest sampling did, so both sides of a pair see the
  machine for equally long.
"""

from __future__ import annotations

import copy
import gc
from collections.abc import Callable
from typing import Any

from bench.core import modes
from bench.core.case import REFERENCE_MODE, Case
from bench.errors import one_line
from bench.validate.rounds import Round, Settings, comparison_row, interleave, measure_round, timer_round, warm_up


def harness_case(s: Settings) -> Case:
    return Case(s.model, "infer", s.batch_size, s.image_size, *REFERENCE_MODE, s.device)


def harness_check(s: Settings, on_round: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Rows: measure() vs Timer on the same step, and CaseRunner.run vs Timer (if runner_path)."""
    import torch

    from bench.execute.base import RunSettings
    from bench.execute.case_runner import CaseRunner

    torch.set_num_threads(s.threads)
    case = harness_case(s)
    base_cols = {"model": s.model, "device": s.device, "batch_size": s.batch_size, "image_size": s.image_size,
                 "layout": case.layout, "precision": case.precision, "compile": case.compile,
                 "threads": s.threads, "reference": f"torch.utils.benchmark.Timer(num_threads={s.threads})"}
    # The runner's settings as `resnet-bench run` uses them, minus profiling and the output
    # check (both happen before timing and do not touch it).
    runner = CaseRunner(RunSettings(timing=s.runner_timing, threads=s.threads, isolate=False, profile=False,
                                    check_outputs=False, seed=s.seed))
    base = runner.base_model(s.model)  # the very weights the runner times
    x, y = modes.make_inputs(case, base.fc.out_features, seed=s.seed)
    rows = []

    def tag(path):
        return (lambda msg: on_round(f"harness {path}: {msg}")) if on_round else None

    def compared(path: str, ours, ref) -> dict[str, Any]:
        row = {"path": path, **base_cols, "status": "ok"}
        try:
            a, b = interleave(ours, ref, s.rounds, tag(path))
            row.update(comparison_row(a, b, s.tolerance))
            row.update(ours_samples=sum(len(r.samples_ms) for r in a), ref_samples=sum(len(r.samples_ms) for r in b))
        except Exception as e:  # a failure is a row, not a crash
            row.update(status="error", error=one_line(e))
        return row

    with modes.precision_context(case):
        prepared = modes.prepare(copy.deepcopy(base).to(s.device), case, x, y)
        step = prepared.step
        warm_up(step, s.device, s.warmup_s)
        rows.append(compared("measure()", measure_round(step, s.device, s.round_time_s),
                             timer_round(step, s.threads, s.round_time_s)))
        if s.runner_path:
            span_s = [s.round_time_s]

            def runner_round() -> Round:
                r = runner.run(case)
                if r["status"] != "ok":
                    raise RuntimeError(f"CaseRunner.run: {r['status']}: {r['error']}")
                span_s[0] = max(sum(r["samples_ms"]) / 1e3, s.round_time_s)
                return Round(float(r["latency_ms_p50"]), tuple(r["samples_ms"]))

            rows.append(compared("CaseRunner.run", runner_round, timer_round(step, s.threads, lambda: span_s[0])))
    del prepared, step
    gc.collect()
    return rows
