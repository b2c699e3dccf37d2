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

Clocks (bench.core.devices)
    The device picks the clock once: on CPU ``time.perf_counter_ns()`` immediately around the
    call (plus the optional ``sync``); on CUDA a pair of CUDA events around the call and one
    ``end.synchronize()`` per sample, with the device drained before the first call and before
    the first sample so earlier queued work is not counted. A device without its own clock
    uses the host clock; pass ``sync`` (e.g. ``torch.mps.synchronize``), which is called after
    each call inside the timed region.

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

Statistics (bench.core.stats)
    ``rel_ci`` is the half-width of the distribution-free 95% CI of the median (binomial order
    statistics) over the median; below 6 samples no interval reaches 95%, which is why the
    precision rule needs n >= 6.

``noisy`` follows torch.utils.benchmark: IQR / median above ``noisy_rel_iqr`` (10%).
"""

from __future__ import annotations

import functools
import gc
import math
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.core import devices
from bench.core.stats import MIN_N_FOR_CI, median_ci, rel_ci_sorted, summarize
from bench.core.timing_config import STOP_REASONS, TimingConfig

__all__ = ["TimingConfig", "Measurement", "measure", "summarize", "median_ci", "STOP_REASONS"]

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


def measure(
    fn: Callable[[], object],
    *,
    device: str = "cpu",
    config: TimingConfig = TimingConfig(),
    sync: Callable[[], object] | None = None,
    hooks: Any = None,
    time_hook: Callable[[], float] | None = None,
    stop_hook: Callable[[bool], bool] | None = None,
) -> Measurement:
    """Time ``fn()`` (one step per call): first call, warm-up until steady, then samples.

    ``device`` ("cpu", "cuda", "cuda:1", ...) picks the clock (bench.core.devices): CUDA events
    on a CUDA device (made current for the duration), ``time.perf_counter_ns`` on the CPU, with
    ``sync`` (if given) called after each call inside the timed region. See the module docstring for the
    warm-up and stopping rules. Returns a :class:`Measurement` with the raw samples in ms.

    ``hooks`` (e.g. bench.core.trackers.SampleHooks): ``hooks.begin()`` is called right before
    the first sample (after the device has drained) and ``hooks.end(n)`` right after the last
    (n = samples taken), both outside every sample.

    Two hooks let a caller with its own clock use this one loop (as torch.utils.benchmark's
    ``_threaded_measurement_loop(time_hook, stop_hook)`` does):

    * ``time_hook()`` replaces the device's clock for warm-up calls and samples: it runs the
      step itself (e.g. a window of K training steps between barriers) and returns one sample
      in ms. The first call is still ``fn()`` on the host clock.
    * ``stop_hook(stop)`` is called once per warm-up call and once per sample with this
      process's decision and returns the decision to act on, so that processes measuring
      together (the ranks of a data-parallel case) stop together: all-reduce it.

    :class:`Sampler` is the same loop in steps, for a caller that interleaves several steps'
    samples in blocks (bench.execute.case_runner): ``measure`` is first call, warm-up and
    sampling to the stop rule in one go.
    """
    s = Sampler(fn, device=device, config=config, sync=sync, hooks=hooks, time_hook=time_hook, stop_hook=stop_hook)
    s.first_call()
    s.first_output = None
    s.warm_up()
    s.sample()
    return s.measurement()


def _alone(stop: bool) -> bool:
    return stop


class Sampler:
    """The one warm-up/sampling loop, in steps: :meth:`first_call`, :meth:`warm_up`, then
    :meth:`sample` until the stop rule says done (``seconds=None``) or for a block of
    `seconds`; :meth:`measurement` gives the result. The stop rule counts this sampler's own
    sampling time, so blocks of several samplers may interleave (a round measuring a model's
    modes side by side); `hooks` are called around every block."""

    def __init__(self, fn: Callable[[], object], *, device: str = "cpu", config: TimingConfig = TimingConfig(),
                 sync: Callable[[], object] | None = None, hooks: Any = None,
                 time_hook: Callable[[], float] | None = None, stop_hook: Callable[[bool], bool] | None = None):
        if not callable(fn):
            raise TypeError(f"measure: fn must be a zero-argument callable, got {type(fn).__name__}")
        for name, hook in (("sync", sync), ("time_hook", time_hook), ("stop_hook", stop_hook)):
            if hook is not None and not callable(hook):
                raise TypeError(f"measure: {name} must be callable or None, got {type(hook).__name__}")
        if not isinstance(config, TimingConfig):
            raise TypeError(f"measure: config must be a TimingConfig, got {type(config).__name__}")
        self.dev = str(device)
        try:
            self.backend = devices.backend(self.dev)
        except ValueError as e:
            raise ValueError(f"measure: {e}") from None
        if not self.backend.available():
            raise RuntimeError(f"measure: device {self.dev!r} requested but {self.backend.unavailable_reason()}; "
                               "use device='cpu' or run on a machine that has it")
        self.fn, self.cfg, self.sync, self.hooks = fn, config, sync, hooks
        self.agree = stop_hook or _alone
        with self.backend.current(self.dev):
            self.timed = time_hook if time_hook is not None else self.backend.timer(fn, sync, self.dev)
        self.first_call_s = 0.0
        self.first_output: object = None  # what the first call returned (the caller checks it, then drops it)
        self.warmup_iters, self.warmup_s, self.steady = 0, 0.0, False
        self.samples: list[float] = []
        self.sampling_s = 0.0  # this sampler's own sampling time (blocks summed)
        self.reason = ""
        self._next_check = max(config.min_samples, MIN_N_FOR_CI)

    def _drain(self) -> None:
        self.backend.synchronize(self.dev)

    def first_call(self) -> float:
        """The first call, alone, on the host clock with the device drained before and after
        (the compile time of a compiled model): never a sample."""
        pc = time.perf_counter
        with self.backend.current(self.dev):
            self._drain()
            t0 = pc()
            self.first_output = self.fn()
            if self.sync is not None:
                self.sync()
            self._drain()
            self.first_call_s = pc() - t0
        return self.first_call_s

    def warm_up(self) -> None:
        """Calls until two consecutive non-overlapping windows agree (or the budget is spent)."""
        pc, cfg = time.perf_counter, self.cfg
        w, tol = cfg.warmup_window, cfg.warmup_tol
        need = max(cfg.warmup_min_iters, 2 * w)
        times: list[float] = []
        with self.backend.current(self.dev):
            t_w = pc()
            while True:
                k = len(times)
                settled = False
                if k >= need:
                    prev = statistics.median(times[-2 * w : -w])
                    cur = statistics.median(times[-w:])
                    settled = abs(cur - prev) <= tol * prev
                spent = k >= cfg.warmup_min_iters and pc() - t_w >= cfg.warmup_max_s
                if self.agree(settled or spent):
                    self.steady = settled
                    break
                times.append(self.timed())
            self.warmup_s = pc() - t_w
        self.warmup_iters = len(times)

    @property
    def done(self) -> bool:
        return bool(self.reason)

    def _decide(self, n: int) -> str:
        cfg = self.cfg
        if n < cfg.min_samples:
            return ""
        over_budget = self.sampling_s >= cfg.max_time_s
        if (cfg.target_rel_ci > 0 and self.sampling_s >= cfg.min_time_s and n >= MIN_N_FOR_CI
                and (n >= self._next_check or n >= cfg.max_samples or over_budget)):
            self._next_check = n + max(1, n // 20)  # re-check after ~5% more samples
            if rel_ci_sorted(np.sort(np.asarray(self.samples))) < cfg.target_rel_ci:
                return "precision"
        if n >= cfg.max_samples:
            return "max_samples"
        if over_budget:
            return "time_budget"
        return ""

    def sample(self, seconds: float | None = None) -> bool:
        """Take samples, one per call: until the stop rule says done, or (`seconds` given) for
        a block of at least one call and about that long, stopping early when the rule says
        done. Outside every sample: the device drained and garbage collected once before the
        block, the hooks around it. Returns :attr:`done`."""
        if self.done:
            return True
        pc = time.perf_counter
        append, samples = self.samples.append, self.samples
        with self.backend.current(self.dev):
            if not samples:  # once, before the first sample (with several models live it takes a while)
                gc.collect()
            self._drain()
            if self.hooks is not None:
                self.hooks.begin()
            n0 = len(samples)
            block_t0 = t_s = pc()
            while True:
                append(self.timed())
                now = pc()
                self.sampling_s += now - t_s
                t_s = now
                reason = self._decide(len(samples))
                if self.agree(bool(reason)):
                    self.reason = reason or "time_budget"  # another process's budget ran out first
                    break
                if seconds is not None and now - block_t0 >= seconds:
                    break
            if self.hooks is not None:
                self.hooks.end(len(samples) - n0)
        return self.done

    def measurement(self) -> Measurement:
        return Measurement(
            samples_ms=tuple(self.samples),
            warmup_iters=self.warmup_iters,
            warmup_s=self.warmup_s,
            first_call_s=self.first_call_s,
            steady=self.steady,
            stop_reason=self.reason or "time_budget",
            device=self.dev,
            config=self.cfg,
        )
