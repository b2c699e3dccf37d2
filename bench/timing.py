"""Timing core: warm up a step function, sample it per call, and summarize the samples.

The caller builds ``fn``: a zero-argument callable that runs one step (one batch) each call.
:func:`measure` calls it and returns a :class:`Measurement` holding the **raw per-call samples**;
every statistic (median, percentiles, IQR, confidence interval) is derived from those samples, so a
saved result can be re-analysed later with :func:`summarize`. Rendering lives elsewhere.

Units
    Latencies are milliseconds (``*_ms``), wall-clock phases are seconds (``*_s``), memory is
    MiB (2**20 bytes) although named ``_mb``, throughput is images (items) per second.

How one measurement runs
    1. **First call**, timed on its own (host clock, device synchronized before and after) and
       kept as ``first_call_s``, never in the samples: for a ``torch.compile``'d model this is
       the compile time, which would otherwise dominate the statistics.
    2. **Warm-up** until the per-call time is steady: at least ``warmup_min_iters`` calls, then
       until the median of the last ``warmup_window`` call times is within ``warmup_tol``
       (relative) of the median of the window before it (two non-overlapping windows, so at
       least ``2 * warmup_window`` calls), or until ``warmup_max_s`` is spent. ``steady`` says
       which ended it. The first call is not part of warm-up (not in ``warmup_iters``, not in
       ``warmup_s``, not charged to ``warmup_max_s``).
    3. **Sampling**, one sample per call, until the stopping rule below says stop.

Clocks
    CPU: ``time.perf_counter_ns()`` immediately around the call (plus the optional ``sync``).
    CUDA: a pair of ``torch.cuda.Event(enable_timing=True)`` recorded on the current stream
    around the call, then ``end.synchronize()`` once per sample. Kernel launches are
    asynchronous, so a host clock without a sync measures the launch, not the work; with events
    the sample spans from when the GPU reaches the start marker (immediately: it is idle after
    the previous sample's sync) to when it finishes the last kernel of the step, so both the GPU
    work and any host launch overhead that leaves the GPU idle are inside the sample, and the
    host-side sync latency is not. Work the step puts on other streams must be joined to the
    current stream inside ``fn`` (or by ``sync``). ``torch.cuda.synchronize()`` runs before the
    first call and before the first sample so earlier queued work is not counted.
    Other devices: host clock, and pass ``sync`` (e.g. ``torch.mps.synchronize``), which is
    called after each call inside the timed region.

Stopping rule (checked after each sample; statistics are recomputed at most every ~5% growth)
    * ``max_samples`` is a hard cap: stop with ``"max_samples"``.
    * Nothing else stops sampling before ``min_samples`` samples exist (a floor that wins over
      the time budget).
    * ``"precision"``: once there are ``min_samples`` samples, ``min_time_s`` of sampling has
      elapsed and n >= 6, stop when ``rel_ci`` < ``target_rel_ci``, where ``rel_ci`` is the
      half-width of the distribution-free 95% confidence interval of the median divided by the
      median. ``target_rel_ci=0`` disables this rule (sample to the budget or the cap).
    * ``"time_budget"``: the sampling wall time (including per-call overhead) reached
      ``max_time_s``.

Median confidence interval
    Distribution-free, from order statistics: with sorted samples x(1) <= ... <= x(n), the
    number of samples below the true median is Binomial(n, 1/2), so [x(j), x(n-j+1)] covers the
    median with probability 1 - 2 * P(B <= j - 1). ``j`` is the largest rank whose coverage is
    still >= 95% (n=10: ranks 2 and 9; n=20: 6 and 15; n=100: 40 and 61). For n < 6 no rank
    pair reaches 95% and [min, max] is returned (coverage 1 - 2**(1-n)), which is why the
    precision rule needs n >= 6. The interval may be asymmetric; "half-width" is (hi - lo) / 2.

``noisy`` follows torch.utils.benchmark: IQR / median above ``noisy_rel_iqr`` (10%).
"""

from __future__ import annotations

import functools
import gc
import math
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "TimingConfig",
    "Measurement",
    "measure",
    "summarize",
    "median_ci",
    "reset_peak_memory",
    "peak_memory_mb",
    "STOP_REASONS",
]

#: Confidence level of ``median_ci`` / ``rel_ci``.
CONFIDENCE = 0.95
#: Smallest n for which an order-statistic interval reaches 95% coverage.
MIN_N_FOR_CI = 6
#: Values of ``Measurement.stop_reason``.
STOP_REASONS = ("precision", "time_budget", "max_samples")

_MIB = 2**20


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


# --------------------------------------------------------------------------------------------
# Statistics (pure functions of the raw samples)
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _ci_ranks(n: int) -> tuple[int, int]:
    """0-based indices (lo, hi) into the sorted samples of the 95% CI of the median."""
    from scipy.stats import binom

    alpha_half = (1.0 - CONFIDENCE) / 2.0
    # j (1-based) = largest rank with P(B <= j-1) <= alpha/2, B ~ Binomial(n, 1/2).
    # ppf gives the smallest k with cdf(k) >= alpha/2; cdf never equals 0.025 exactly (dyadic).
    j = int(binom.ppf(alpha_half, n, 0.5))
    while j >= 1 and binom.cdf(j - 1, n, 0.5) > alpha_half:  # guard against float round-off
        j -= 1
    while binom.cdf(j, n, 0.5) <= alpha_half:
        j += 1
    if j < 1:  # n < 6: no pair reaches 95%; widest interval
        return 0, n - 1
    return j - 1, n - j


def median_ci(samples_ms: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Distribution-free 95% CI of the median, (lo, hi), from order statistics (see module doc)."""
    x = np.sort(np.asarray(samples_ms, dtype=float))
    if x.size == 0:
        raise ValueError("median_ci needs at least one sample")
    lo, hi = _ci_ranks(int(x.size))
    return float(x[lo]), float(x[hi])


def _rel_ci_sorted(x: np.ndarray) -> float:
    """rel_ci of already-sorted samples: (hi - lo) / 2 / median; inf if the median is 0."""
    lo, hi = _ci_ranks(int(x.size))
    med = float(np.median(x))
    half = (float(x[hi]) - float(x[lo])) / 2.0
    if med > 0:
        return half / med
    return 0.0 if half == 0 else math.inf


def summarize(
    samples_ms: Sequence[float] | np.ndarray, *, noisy_rel_iqr: float = 0.10
) -> dict[str, Any]:
    """Statistics of raw per-call latencies in ms, as a dict with unit-named keys.

    Works on samples loaded from a saved result. Percentiles use numpy's default (linear)
    interpolation; p50 is ``np.median``. Keys: latency_ms_p50, latency_ms_p90, latency_ms_p99,
    latency_ms_mean, latency_ms_min, latency_iqr_ms, latency_rel_iqr, latency_ms_ci_low,
    latency_ms_ci_high, latency_rel_ci, n_samples, noisy. Relative values are fractions (0.01 =
    1%); they are inf when the median is 0.
    """
    x = np.asarray(samples_ms, dtype=float)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"summarize needs a non-empty 1-D list of samples in ms, got shape {x.shape}")
    if not np.all(np.isfinite(x)) or np.any(x < 0):
        raise ValueError("summarize: samples must be finite and >= 0 (milliseconds)")
    x = np.sort(x)
    p25, p50, p75, p90, p99 = (float(v) for v in np.percentile(x, [25, 50, 75, 90, 99]))
    iqr = p75 - p25
    lo_i, hi_i = _ci_ranks(int(x.size))
    rel_iqr = iqr / p50 if p50 > 0 else (0.0 if iqr == 0 else math.inf)
    return {
        "latency_ms_p50": p50,
        "latency_ms_p90": p90,
        "latency_ms_p99": p99,
        "latency_ms_mean": float(np.mean(x)),
        "latency_ms_min": float(x[0]),
        "latency_iqr_ms": iqr,
        "latency_rel_iqr": rel_iqr,
        "latency_ms_ci_low": float(x[lo_i]),
        "latency_ms_ci_high": float(x[hi_i]),
        "latency_rel_ci": _rel_ci_sorted(x),
        "n_samples": int(x.size),
        "noisy": bool(rel_iqr > noisy_rel_iqr),
    }


# --------------------------------------------------------------------------------------------
# Measurement (raw samples + how they were obtained; statistics derived)
# --------------------------------------------------------------------------------------------

_RUN_KEYS = ("warmup_iters", "warmup_s", "first_call_s", "steady", "stop_reason")


@dataclass(frozen=True, repr=False)
class Measurement:
    """Raw per-call samples of one measured step function, with statistics derived from them."""

    samples_ms: tuple[float, ...]  # one entry per sampled call, milliseconds, in call order
    warmup_iters: int  # warm-up calls after the first call
    warmup_s: float  # wall time of those warm-up calls, seconds
    first_call_s: float  # the very first call (compile time for compiled models), seconds
    steady: bool  # warm-up ended because the time settled (False: warmup_max_s ran out)
    stop_reason: str  # one of STOP_REASONS
    device: str = "cpu"
    config: TimingConfig = field(default_factory=TimingConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self, "samples_ms", tuple(float(v) for v in self.samples_ms))
        if self.stop_reason not in STOP_REASONS:
            raise ValueError(f"stop_reason must be one of {STOP_REASONS}, got {self.stop_reason!r}")

    @functools.cached_property
    def _stats(self) -> dict[str, Any]:
        return summarize(self.samples_ms, noisy_rel_iqr=self.config.noisy_rel_iqr)

    n = property(lambda self: self._stats["n_samples"], doc="number of samples")
    median_ms = property(lambda self: self._stats["latency_ms_p50"], doc="p50, ms")
    p90_ms = property(lambda self: self._stats["latency_ms_p90"], doc="90th percentile, ms")
    p99_ms = property(lambda self: self._stats["latency_ms_p99"], doc="99th percentile, ms")
    mean_ms = property(lambda self: self._stats["latency_ms_mean"], doc="mean, ms")
    min_ms = property(lambda self: self._stats["latency_ms_min"], doc="fastest sample, ms")
    iqr_ms = property(lambda self: self._stats["latency_iqr_ms"], doc="p75 - p25, ms")
    rel_iqr = property(lambda self: self._stats["latency_rel_iqr"], doc="IQR / median")
    rel_ci = property(lambda self: self._stats["latency_rel_ci"], doc="95% CI half-width / median")
    noisy = property(lambda self: self._stats["noisy"], doc="rel_iqr > config.noisy_rel_iqr")

    @property
    def median_ci_ms(self) -> tuple[float, float]:
        """Distribution-free 95% CI of the median, (lo, hi) in ms."""
        return self._stats["latency_ms_ci_low"], self._stats["latency_ms_ci_high"]

    def throughput(self, batch_size: int) -> float:
        """Items (images) per second at the median latency: batch_size / median seconds."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"throughput: batch_size must be an int >= 1, got {batch_size!r}")
        med = self.median_ms
        return math.inf if med == 0 else batch_size / (med / 1e3)

    def to_dict(self) -> dict[str, Any]:
        """Flat, JSON-ready dict: statistics, warm-up info, and raw samples (``samples_ms``)."""
        d = dict(self._stats)
        d.update(
            warmup_iters=self.warmup_iters,
            warmup_s=self.warmup_s,
            first_call_s=self.first_call_s,
            steady=self.steady,
            stop_reason=self.stop_reason,
            samples_ms=list(self.samples_ms),
        )
        return d

    @classmethod
    def from_dict(
        cls, d: Mapping[str, Any], *, device: str = "cpu", config: TimingConfig | None = None
    ) -> Measurement:
        """Rebuild from :meth:`to_dict` output (statistics are recomputed from ``samples_ms``)."""
        missing = [k for k in ("samples_ms", *_RUN_KEYS) if k not in d]
        if missing:
            raise ValueError(f"Measurement.from_dict: missing keys {missing}")
        return cls(
            samples_ms=tuple(d["samples_ms"]),
            warmup_iters=int(d["warmup_iters"]),
            warmup_s=float(d["warmup_s"]),
            first_call_s=float(d["first_call_s"]),
            steady=bool(d["steady"]),
            stop_reason=str(d["stop_reason"]),
            device=device,
            config=config if config is not None else TimingConfig(),
        )

    def __repr__(self) -> str:
        lo, hi = self.median_ci_ms
        return (
            f"Measurement(device={self.device!r}, median={self.median_ms:.4g} ms, "
            f"95% CI [{lo:.4g}, {hi:.4g}] ms, IQR={self.iqr_ms:.3g} ms ({self.rel_iqr:.1%}), "
            f"n={self.n}, stop={self.stop_reason}, first_call={self.first_call_s:.3g} s, "
            f"warmup={self.warmup_iters} calls/{self.warmup_s:.3g} s, steady={self.steady}"
            f"{', NOISY' if self.noisy else ''})"
        )


# --------------------------------------------------------------------------------------------
# measure()
# --------------------------------------------------------------------------------------------


def _host_timer(fn: Callable[[], object], sync: Callable[[], object] | None) -> Callable[[], float]:
    pc = time.perf_counter_ns
    if sync is None:

        def timed() -> float:
            t0 = pc()
            fn()
            t1 = pc()
            return (t1 - t0) * 1e-6

    else:

        def timed() -> float:
            t0 = pc()
            fn()
            sync()
            t1 = pc()
            return (t1 - t0) * 1e-6

    return timed


def _cuda_event_timer(
    fn: Callable[[], object], sync: Callable[[], object] | None, torch: Any
) -> Callable[[], float]:
    # One pair of events, reused for every call: nothing allocated per sample.
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    if sync is None:

        def timed() -> float:
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end)  # ms

    else:

        def timed() -> float:
            start.record()
            fn()
            sync()
            end.record()
            end.synchronize()
            return start.elapsed_time(end)

    return timed


def measure(
    fn: Callable[[], object],
    *,
    device: str = "cpu",
    config: TimingConfig = TimingConfig(),
    sync: Callable[[], object] | None = None,
) -> Measurement:
    """Time ``fn()`` (one step per call): first call, warm-up until steady, then samples.

    ``device`` picks the clock: a string starting with "cuda" uses CUDA events on that device
    (made current for the duration); anything else uses ``time.perf_counter_ns``, with ``sync``
    (if given) called after each call inside the timed region. See the module docstring for the
    warm-up and stopping rules. Returns a :class:`Measurement` with the raw samples in ms.
    """
    if not callable(fn):
        raise TypeError(f"measure: fn must be a zero-argument callable, got {type(fn).__name__}")
    if sync is not None and not callable(sync):
        raise TypeError(f"measure: sync must be callable or None, got {type(sync).__name__}")
    if not isinstance(config, TimingConfig):
        raise TypeError(f"measure: config must be a TimingConfig, got {type(config).__name__}")
    dev = str(device)

    if not dev.startswith("cuda"):
        return _run(fn, dev, config, _host_timer(fn, sync), sync, device_sync=None)

    import torch

    if not torch.cuda.is_available():
        raise RuntimeError(
            f"measure: device {dev!r} requested but torch.cuda.is_available() is False; "
            "use device='cpu' or run on a machine with CUDA"
        )
    with torch.cuda.device(torch.device(dev)):
        timer = _cuda_event_timer(fn, sync, torch)
        return _run(fn, dev, config, timer, sync, device_sync=torch.cuda.synchronize)


def _run(
    fn: Callable[[], object],
    dev: str,
    cfg: TimingConfig,
    timed: Callable[[], float],
    sync: Callable[[], object] | None,
    device_sync: Callable[[], object] | None,
) -> Measurement:
    pc = time.perf_counter

    # 1. First call, alone, on the host clock with the device drained before and after.
    if device_sync is not None:
        device_sync()
    t0 = pc()
    fn()
    if sync is not None:
        sync()
    if device_sync is not None:
        device_sync()
    first_call_s = pc() - t0

    # 2. Warm-up until two consecutive non-overlapping windows agree (or the budget is spent).
    w, tol = cfg.warmup_window, cfg.warmup_tol
    need = max(cfg.warmup_min_iters, 2 * w)
    times: list[float] = []
    steady = False
    t_w = pc()
    while True:
        k = len(times)
        if k >= need:
            prev = statistics.median(times[-2 * w : -w])
            cur = statistics.median(times[-w:])
            if abs(cur - prev) <= tol * prev:
                steady = True
                break
        if k >= cfg.warmup_min_iters and pc() - t_w >= cfg.warmup_max_s:
            break
        times.append(timed())
    warmup_s = pc() - t_w
    warmup_iters = len(times)
    del times

    # 3. Sampling. Outside the timed region: drain the device, collect garbage once.
    gc.collect()
    if device_sync is not None:
        device_sync()
    samples: list[float] = []
    append = samples.append
    min_n, max_n = cfg.min_samples, cfg.max_samples
    min_t, max_t, target = cfg.min_time_s, cfg.max_time_s, cfg.target_rel_ci
    next_check = max(min_n, MIN_N_FOR_CI)
    reason = ""
    t_s = pc()
    while True:
        append(timed())
        n = len(samples)
        if n < min_n:
            continue
        elapsed = pc() - t_s
        over_budget = elapsed >= max_t
        if (
            target > 0
            and elapsed >= min_t
            and n >= MIN_N_FOR_CI
            and (n >= next_check or n >= max_n or over_budget)
        ):
            next_check = n + max(1, n // 20)  # re-check after ~5% more samples
            if _rel_ci_sorted(np.sort(np.asarray(samples))) < target:
                reason = "precision"
                break
        if n >= max_n:
            reason = "max_samples"
            break
        if over_budget:
            reason = "time_budget"
            break

    return Measurement(
        samples_ms=tuple(samples),
        warmup_iters=warmup_iters,
        warmup_s=warmup_s,
        first_call_s=first_call_s,
        steady=steady,
        stop_reason=reason,
        device=dev,
        config=cfg,
    )


# --------------------------------------------------------------------------------------------
# Peak memory
# --------------------------------------------------------------------------------------------


def reset_peak_memory(device: str = "cpu") -> None:
    """Reset the peak-memory counter read by :func:`peak_memory_mb`.

    CUDA: ``torch.cuda.reset_peak_memory_stats(device)``. CPU on Linux: writes ``5`` to
    ``/proc/self/clear_refs``, which resets the process's peak RSS (VmHWM) to its current RSS,
    so the next reading is the peak of this case (still including the interpreter and torch
    already resident). Elsewhere a no-op: ``ru_maxrss`` only grows.
    """
    dev = str(device)
    if dev.startswith("cuda"):
        import torch

        torch.cuda.reset_peak_memory_stats(torch.device(dev))
    else:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass


def peak_memory_mb(device: str = "cpu") -> float:
    """Peak memory in MiB (1 MB here = 2**20 bytes).

    CUDA: ``torch.cuda.max_memory_allocated(device)``, bytes held by tensors through the caching
    allocator since the last :func:`reset_peak_memory` (not the allocator's reserved pool, not
    the CUDA context). CPU: peak resident set size of this whole process since it started
    (Linux ``getrusage(RUSAGE_SELF).ru_maxrss``, which is in KiB; bytes on macOS; psutil's
    ``peak_wset`` on Windows). On Linux VmHWM from /proc/self/status is read instead, which
    :func:`reset_peak_memory` can reset between cases; ``ru_maxrss`` is process-wide and monotone.
    Either way it includes the interpreter and torch itself (several hundred MiB).
    """
    dev = str(device)
    if dev.startswith("cuda"):
        import torch

        return torch.cuda.max_memory_allocated(torch.device(dev)) / _MIB
    return _peak_rss_bytes() / _MIB


def _peak_rss_bytes() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:  # Windows
        import psutil

        info = psutil.Process().memory_info()
        return int(getattr(info, "peak_wset", info.rss))
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(ru) if sys.platform == "darwin" else int(ru) * 1024
