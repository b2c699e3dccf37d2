"""Trackers: instruments read around a case's timed samples (never inside them).

A tracker's :meth:`Tracker.start` runs before the model is placed on the device; its
:meth:`Tracker.samples_begin` right before the first timed sample (the device drained) and
:meth:`Tracker.samples_end` right after the last one (its sync done), both called by
bench.core.timing.measure through :class:`SampleHooks`; its :meth:`Tracker.stop` after the
timing, returning the row's columns it measured. Add one = a subclass here and an entry in
:data:`TRACKERS` (its columns go in bench.results.columns).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from bench.core import devices
from bench.core.case import Case


class Tracker:
    def start(self, case: Case) -> None:
        """Called before the case's model is copied to the device."""

    def samples_begin(self, case: Case) -> None:
        """Called right before the first timed sample."""

    def samples_end(self, case: Case, calls: int) -> None:
        """Called right after the last timed sample; `calls` = number of sampled calls (steps)."""

    def stop(self, case: Case) -> dict[str, Any]:
        """Called after the timing; the columns it measured."""
        return {}


class SampleHooks:
    """What bench.core.timing.measure calls around its samples: every tracker's
    ``samples_begin``/``samples_end`` for one case."""

    def __init__(self, trackers: Sequence[Tracker], case: Case):
        self.trackers, self.case = list(trackers), case

    def begin(self) -> None:
        for t in self.trackers:
            t.samples_begin(self.case)

    def end(self, calls: int) -> None:
        for t in reversed(self.trackers):
            t.samples_end(self.case, calls)


class PeakMemory(Tracker):
    """``peak_mem_mb``: the device's peak memory during the case (bench.core.devices)."""

    def start(self, case: Case) -> None:
        devices.reset_peak_memory(case.device)

    def stop(self, case: Case) -> dict[str, Any]:
        return {"peak_mem_mb": devices.peak_memory_mb(case.device)}


class Energy(Tracker):
    """Energy of the timed samples from the device's cumulative energy counter (NVML's
    ``nvmlDeviceGetTotalEnergyConsumption`` on NVIDIA GPUs, millijoules), read right before the
    first sample and right after the last, with the host clock read next to each read:

    - ``energy_j`` = counter difference; ``energy_window_s`` = host time between the reads;
    - ``power_w_mean`` = energy_j / energy_window_s (the whole window, including the short idle
      gaps between samples);
    - ``energy_j_per_image`` = energy_j / (sampled calls x batch size).

    Where the device has no counter (CPU, other GPUs, NVML missing or too old) the columns are
    empty and ``energy_note`` says why. Samples taken in several blocks (interleaved with other
    cases') sum the blocks' energy, time and calls."""

    clock: Callable[[], float] = staticmethod(time.perf_counter)

    def start(self, case: Case) -> None:
        self.mon, self.note = devices.backend(case.device).monitor(case.device)
        self.e0 = self.t0 = None
        self.mj = self.window = 0.0  # summed over the blocks of samples (one block unless interleaved)
        self.calls = 0
        self.read = False

    def _read(self) -> tuple[float | None, float]:
        from bench.core.nvml import NvmlUnavailable

        try:
            return self.mon.energy_mj(), self.clock()
        except NvmlUnavailable as e:
            self.mon, self.note = None, str(e)
            return None, self.clock()

    def samples_begin(self, case: Case) -> None:
        if self.mon is not None:
            self.e0, self.t0 = self._read()

    def samples_end(self, case: Case, calls: int) -> None:
        if self.mon is not None and self.e0 is not None:
            e1, t1 = self._read()
            if e1 is not None:
                self.mj += e1 - self.e0
                self.window += t1 - self.t0
                self.calls += calls
                self.read = True
            self.e0 = None

    def stop(self, case: Case) -> dict[str, Any]:
        empty = {"energy_j": None, "energy_window_s": None, "power_w_mean": None, "energy_j_per_image": None}
        if not self.read:
            return empty | {"energy_note": self.note or "the energy counter was not read"}
        joules, window = self.mj / 1000.0, self.window
        if joules <= 0 or window <= 0 or self.calls < 1:
            return empty | {"energy_note": f"the energy counter did not advance over the {window:.3f} s of samples"}
        return {"energy_j": joules, "energy_window_s": window, "power_w_mean": joules / window,
                "energy_j_per_image": joules / (self.calls * case.batch_size), "energy_note": ""}


class GpuClocks(Tracker):
    """The GPU's SM clock and throttling over the timed samples (NVML; empty elsewhere):

    - ``gpu_sm_clock_mhz``: the SM clock read right after the last sample;
    - ``gpu_throttle_reasons``: NVML's current clock event reasons at the first and the last
      sample, joined with ``+`` (``none`` when there were none);
    - ``gpu_throttled``: True when a power or thermal reason (bench.core.nvml.THROTTLING) was
      set at either read, or NVML's power/thermal violation time grew during the samples."""

    def start(self, case: Case) -> None:
        self.mon, _ = devices.backend(case.device).monitor(case.device)
        self.reasons: set[str] = set()
        self.v0: dict[str, int] = {}
        self.v1: dict[str, int] = {}
        self.clock_mhz = None
        self.read = False

    def _reasons(self) -> None:
        got = self.mon.optional("throttle_reasons")
        if got is not None:
            self.reasons.update(got)
            self.read = True

    def samples_begin(self, case: Case) -> None:
        if self.mon is not None:
            if not self.v0:  # at the first block of samples
                self.v0 = self.mon.optional("violation_ns") or {}
            self._reasons()

    def samples_end(self, case: Case, calls: int) -> None:
        if self.mon is not None:
            self.clock_mhz = self.mon.optional("sm_clock_mhz")
            self._reasons()
            self.v1 = self.mon.optional("violation_ns") or {}

    def stop(self, case: Case) -> dict[str, Any]:
        from bench.core.nvml import THROTTLING

        grew = any(self.v1.get(k, 0) > v for k, v in self.v0.items())
        known = self.read or bool(self.v0 and self.v1)
        return {"gpu_sm_clock_mhz": self.clock_mhz,
                "gpu_throttle_reasons": ("+".join(sorted(self.reasons)) or "none") if self.read else None,
                "gpu_throttled": (grew or bool(self.reasons & THROTTLING)) if known else None}


#: Tracker classes instantiated for every measured case, in this order.
TRACKERS: list[type[Tracker]] = [PeakMemory, Energy, GpuClocks]
