"""`resnet-bench validate`: the harness checks itself against independent references.

Two checks, each a table of ratios ours / reference from interleaved rounds in one process
(bench.validate.rounds): ``harness`` (bench.validate.harness: our timer vs
torch.utils.benchmark.Timer on the same step) and ``torchvision`` (bench.validate.parity:
resnet_impl's model vs torchvision's, same weights, every mode the device runs). Exit codes:
0 every measured row passes; 1 a row fails (or errored); 2 bad input.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from typing import Any

from bench.validate.harness import harness_case, harness_check
from bench.validate.outputs import check_tables, failed, failure_lines, write_outputs
from bench.validate.parity import build_pair, mode_list, skip_reason, torchvision_check, torchvision_names
from bench.validate.rounds import (
    CHECKS,
    COMPARISON_COLUMNS,
    DEFAULT_MODEL,
    DEFAULT_OUT,
    DEFAULT_ROUNDS,
    DEFAULT_ROUND_TIME_S,
    DEFAULT_WARMUP_S,
    FORMAT,
    HARNESS_COLUMNS,
    MIN_ROUNDS,
    TOLERANCE,
    TORCHVISION_COLUMNS,
    Round,
    Settings,
    compare_rounds,
    comparison_row,
    interleave,
    measure_round,
    oversubscription_warning,
    timer_round,
    warm_up,
)


def count_rounds(checks, s: Settings, plan) -> int:
    """Rounds the progress bar counts: both sides of every round of every check."""
    n = 2 * s.rounds * (2 if s.runner_path else 1) if "harness" in checks else 0
    if "torchvision" in checks:
        n += 2 * s.rounds * sum(1 for m in plan if not skip_reason(s, m))
    return n


def run_validation(checks, s: Settings, plan, *, command: str,
                   on_round: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the checks; returns the validation document (format FORMAT)."""
    from bench.core import env as E

    doc: dict[str, Any] = {
        "format": FORMAT, "version": 1, "command": command,
        "environment": E.collect(s.device, s.threads),
        "load_average": {"start": list(os.getloadavg())},
        "settings": dataclasses.asdict(s), "checks": {},
    }
    warning = oversubscription_warning(s.threads, os.cpu_count(), os.getloadavg()[0]) if s.device == "cpu" else None
    doc["warnings"] = [warning] if warning else []
    doc["settings"]["modes"] = [list(m) for m in plan] if "torchvision" in checks else None
    t0 = time.perf_counter()
    if "harness" in checks:
        doc["checks"]["harness"] = harness_check(s, on_round)
    if "torchvision" in checks:
        doc["checks"]["torchvision"] = torchvision_check(s, plan, on_round)
    doc["wall_s"] = time.perf_counter() - t0
    doc["load_average"]["end"] = list(os.getloadavg())
    bad = [r for rows in doc["checks"].values() for r in failed(rows)]
    doc["passed"] = not bad
    doc["exit_code"] = 1 if bad else 0
    doc["failures"] = failure_lines(doc)
    return doc


__all__ = [
    "CHECKS", "COMPARISON_COLUMNS", "DEFAULT_MODEL", "DEFAULT_OUT", "DEFAULT_ROUNDS", "DEFAULT_ROUND_TIME_S",
    "DEFAULT_WARMUP_S", "FORMAT", "HARNESS_COLUMNS", "MIN_ROUNDS", "TOLERANCE", "TORCHVISION_COLUMNS", "Round",
    "Settings", "build_pair", "check_tables", "compare_rounds", "comparison_row", "count_rounds", "failed",
    "harness_case", "harness_check", "interleave", "measure_round", "mode_list", "oversubscription_warning",
    "run_validation", "skip_reason", "timer_round", "torchvision_check", "torchvision_names", "warm_up",
    "write_outputs",
]
