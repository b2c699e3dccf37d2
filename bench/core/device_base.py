"""The :class:`Device` protocol: what a kind of device tells the harness (see bench.core.devices).

Subclasses override what differs; the defaults describe a host device. torch is imported
lazily, so this module costs nothing to import.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from bench.core.host import cpu_model

MIB = 2**20

#: Capabilities a mode can require (see bench.core.modes). A device reports the ones it has.
CAPABILITIES = ("bf16_autocast", "fp16_autocast", "tf32", "cuda_graphs", "compile")


class Device:
    """One kind of device. Subclasses override what differs; the defaults are a host device."""

    kind: str = ""
    #: missing capability -> why a mode needing it is skipped on this kind of device
    missing_reasons: dict[str, str] = {}
    #: torch.profiler.ProfilerActivity names a trace records on this device (bench.core.trace)
    profiler_activities: tuple[str, ...] = ("CPU",)
    #: a model's cases may be measured side by side, all resident at once, samples in rotating
    #: blocks (CaseRunner.run_interleaved): where timing is noisy and memory plentiful (the
    #: host CPU); a GPU measures one case at a time, so its memory columns are each case's own
    interleaves: bool = False

    # -- presence and capabilities ------------------------------------------------------------
    def available(self) -> bool:
        return True

    def unavailable_reason(self) -> str:
        return f"device {self.kind!r} is not available on this machine"

    def capabilities(self, device: str) -> set[str]:
        return set()

    def missing_reason(self, capability: str, device: str) -> str:
        return self.missing_reasons.get(capability, f"{capability} is not supported on {device}")

    # -- clock --------------------------------------------------------------------------------
    def synchronize(self, device: str) -> None:
        """Wait until work queued on `device` has finished (a no-op on a synchronous device)."""

    def timer(self, fn: Callable[[], object], sync: Callable[[], object] | None,
              device: str) -> Callable[[], float]:
        """A zero-argument callable that runs ``fn()`` once and returns its time in ms.

        Host clock: ``time.perf_counter_ns()`` immediately around the call, with ``sync`` (if
        given) called inside the timed region."""
        pc = time.perf_counter_ns
        if sync is None:
            def timed() -> float:
                t0 = pc()
                fn()
                return (pc() - t0) * 1e-6
        else:
            def timed() -> float:
                t0 = pc()
                fn()
                sync()
                return (pc() - t0) * 1e-6
        return timed

    def marker(self, device: str) -> tuple[Callable[[], Any], Callable[[Any, Any], float]]:
        """(mark, elapsed_ms): ``mark()`` stamps a point inside running work (a stage's start
        in a forward hook) and ``elapsed_ms(a, b)`` reads the time between two stamps once the
        work is done (bench.core.stages). Host clock: ``perf_counter_ns``."""
        return time.perf_counter_ns, lambda a, b: (b - a) * 1e-6

    @contextlib.contextmanager
    def current(self, device: str) -> Iterator[None]:
        """Make `device` the current one while timing (multi-device kinds)."""
        yield

    # -- per-case switches --------------------------------------------------------------------
    @contextlib.contextmanager
    def precision_switches(self, *, tf32: bool) -> Iterator[None]:
        """Math-mode switches for one case, restored afterwards."""
        yield

    def empty_cache(self) -> None:
        """Give cached memory back after a failed case (OOM)."""

    # -- memory -------------------------------------------------------------------------------
    def reset_peak_memory(self, device: str) -> None:
        """Reset the counter read by :meth:`peak_memory_mb`."""

    def peak_memory_mb(self, device: str) -> float:
        """Peak memory since the last reset, MiB."""
        raise NotImplementedError

    def free_memory_bytes(self, device: str) -> int | None:
        """Memory a case may still take, bytes; None when unknown."""
        return None

    def default_mem_cap_mb(self, device: str) -> float | None:
        """The memory cap of a max-batch probe when none is given, MiB (compared with
        :meth:`peak_memory_mb`); None: the device's own limit (a real, cheap OOM) bounds it."""
        return None

    def memory_peaks(self, device: str) -> dict[str, Any]:
        """The memory columns of the memory pass (bench.core.memory.measure_peaks), read after
        :meth:`reset_peak_memory` and a few steps; MiB."""
        return {}

    # -- monitoring (energy, clocks) ----------------------------------------------------------
    def monitor(self, device: str) -> tuple[Any, str]:
        """``(monitor, "")`` or ``(None, why not)``. A monitor has ``energy_mj()`` (the device's
        cumulative energy counter, millijoules), ``sm_clock_mhz()``, ``throttle_reasons()``
        (names) and ``violation_ns()`` (cumulative throttled time per policy); see
        bench.core.nvml. Read by bench.core.trackers around the timed samples."""
        return None, f"no energy or clock counter is read on {self.kind}"

    # -- environment --------------------------------------------------------------------------
    def describe(self, device: str) -> dict[str, Any]:
        """Environment columns for this device: device_name, cuda, cudnn (and a GPU's gpu_*)."""
        return {"device_name": cpu_model(), "cuda": None, "cudnn": None}


def compile_supported() -> bool:
    """This torch build ships torch.compile (torch._dynamo). Found, not imported: importing
    dynamo costs about a second per process, which an eager-only sweep need not pay; a build
    that has it but cannot run it fails the compiled case itself, as an ``error`` row."""
    import importlib.util
    import sys

    if "torch._dynamo" in sys.modules:
        return True
    try:
        return importlib.util.find_spec("torch._dynamo") is not None
    except (ImportError, ValueError):  # pragma: no cover - depends on the installation
        return False
