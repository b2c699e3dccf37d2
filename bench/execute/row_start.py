"""A case's row before anything is measured: the case, its variant's columns, the machine's load.
Shared by every executor (a crashed or timed-out case still gets these columns)."""

from __future__ import annotations

import os
from typing import Any

from bench.core.case import Case


def base_row(case: Case, status: str, error: str = "") -> dict[str, Any]:
    """The columns every row has: the case, the batch asked for, status and error."""
    row: dict[str, Any] = case.as_dict()
    row["batch_size_requested"] = case.batch_size
    row["status"] = status
    row["error"] = error
    return row


def spec_columns(name: str, overrides: dict) -> dict[str, Any]:
    """The variant's columns, from its resnet_impl spec with the run's overrides."""
    import resnet_impl

    spec = resnet_impl.get_spec(name).replace(**overrides)
    return {
        "block": spec.block,
        "depth": spec.depth,
        "stride_at": spec.stride_at,
        "version": spec.version,
        "stem": spec.stem,
        "shortcut": spec.shortcut,
        "groups": spec.groups,
        "width_per_group": spec.width_per_group,
        "overrides": ",".join(f"{k}={v}" for k, v in sorted(overrides.items())),
    }


def load_avg() -> float | None:
    """1-minute load average when the case starts: on a CPU, other processes competing for the
    cores distort timings badly (OpenMP threads spin-wait), so rows record it."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None
