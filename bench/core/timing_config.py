"""How long to warm up and sample, and when a result is precise enough: :class:`TimingConfig`
(validated on construction). The rules themselves are described in bench.core.timing."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Values of ``Measurement.stop_reason``.
STOP_REASONS = ("precision", "time_budget", "max_samples")


# --------------------------------------------------------------------------------------------
# Task spec
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TimingConfig:
    """How long to warm up and sample, and when a result is precise enough (frozen, hashable)."""

    min_samples: int = 10  # never stop before this many samples (except at max_samples)
    max_samples: int = 1000  # hard cap on the number of samples
    min_time_s: float = 0.5  # keep sampling at least this long before a precision stop
    max_time_s: float = 10.0  # wall-time budget for sampling (min_samples still honoured)
    target_rel_ci: float = 0.01  # stop when 95% CI half-width of the median / median < this; 0 = off
    warmup_min_iters: int = 3  # warm-up calls at least (after the first call)
    warmup_max_s: float = 30.0  # warm-up gives up (steady=False) after this long
    warmup_window: int = 5  # calls per window in the steadiness test
    warmup_tol: float = 0.05  # windows' medians within this relative difference = steady
    noisy_rel_iqr: float = 0.10  # IQR / median above this flags the result as noisy

    def __post_init__(self) -> None:
        _check_int(self, "min_samples", 1)
        _check_int(self, "max_samples", 1)
        _check_int(self, "warmup_min_iters", 0)
        _check_int(self, "warmup_window", 1)
        _check_float(self, "min_time_s", 0.0, strict=False)
        _check_float(self, "max_time_s", 0.0, strict=True)
        _check_float(self, "target_rel_ci", 0.0, strict=False)
        _check_float(self, "warmup_max_s", 0.0, strict=False)
        _check_float(self, "warmup_tol", 0.0, strict=False)
        _check_float(self, "noisy_rel_iqr", 0.0, strict=True)
        if self.min_samples > self.max_samples:
            raise ValueError(
                f"TimingConfig: min_samples ({self.min_samples}) must be <= max_samples "
                f"({self.max_samples}); raise max_samples or lower min_samples"
            )
        if self.min_time_s > self.max_time_s:
            raise ValueError(
                f"TimingConfig: min_time_s ({self.min_time_s}) must be <= max_time_s "
                f"({self.max_time_s}); raise max_time_s or lower min_time_s"
            )


def _check_int(cfg: TimingConfig, name: str, lo: int) -> None:
    v = getattr(cfg, name)
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise ValueError(f"TimingConfig.{name} must be an int >= {lo}, got {v!r}")


def _check_float(cfg: TimingConfig, name: str, lo: float, *, strict: bool) -> None:
    v = getattr(cfg, name)
    ok = (
        not isinstance(v, bool)
        and isinstance(v, (int, float, np.integer, np.floating))
        and math.isfinite(v)
        and (v > lo if strict else v >= lo)
    )
    if not ok:
        op = ">" if strict else ">="
        raise ValueError(f"TimingConfig.{name} must be a finite number {op} {lo}, got {v!r}")
