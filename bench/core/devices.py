"""Devices: everything that differs between a CPU and a GPU, chosen once per case.

A case names its device as ``"cpu"`` or ``"cuda"`` (``"cuda:N"`` also works in the timing
core). :func:`backend` returns the :class:`Device` that knows, for that kind of device:

- the **clock** a sample is taken with (:meth:`Device.timer`) and how queued work is drained
  (:meth:`Device.synchronize`);
- the **capabilities** a mode may require (``fp16_autocast``, ``tf32``, ``cuda_graphs``, ...)
  and, for a missing one, the sentence that becomes a ``skipped`` row's reason;
- the **precision switches** held for the duration of a case (TF32, cuDNN autotuning);
- **peak memory**: how it is reset before a case and read after it (MiB);
- what the environment records about it (name, CUDA and cuDNN versions, a GPU's SMs, memory,
  driver, clocks and power limit);
- the **memory pass** columns (:meth:`Device.memory_peaks`) and the **monitor** of its energy
  and clock counters (:meth:`Device.monitor`; NVML on NVIDIA GPUs, nothing on the CPU).

Add a device kind = subclass :class:`Device` (bench.core.device_base), fill those methods, and
:func:`register_device` it; nothing else in the harness branches on the device's name. The
CUDA device lives in bench.core.cuda. torch is imported lazily, so this module costs nothing to
import.
"""

from __future__ import annotations

import sys
from typing import Any

from bench.core.cuda import CudaDevice
from bench.core.device_base import CAPABILITIES, MIB, Device, compile_supported
from bench.core.host import peak_rss_bytes

__all__ = ["CAPABILITIES", "CpuDevice", "CudaDevice", "Device", "backend", "kinds", "register_device",
           "resolve_device", "auto_device", "reset_peak_memory", "peak_memory_mb", "is_oom"]


class CpuDevice(Device):
    """The host CPU: perf_counter clock, no TF32, bf16 autocast only, peak RSS as memory."""

    kind = "cpu"
    interleaves = True  # shared cores, plentiful memory: side by side (peak RSS is the process's anyway)
    missing_reasons = {
        "fp16_autocast": "fp16 autocast needs CUDA (CPU autocast supports bf16 only)",
        "tf32": "TF32 is a CUDA tensor-core mode; there is no TF32 on CPU",
        "cuda_graphs": "compile mode reduce-overhead uses CUDA graphs; it needs CUDA",
        "compile": "torch.compile is not supported in this Python/torch build",
    }

    def capabilities(self, device: str) -> set[str]:
        caps = {"bf16_autocast"}
        if compile_supported():
            caps.add("compile")
        return caps

    def reset_peak_memory(self, device: str) -> None:
        """Linux: writes ``5`` to ``/proc/self/clear_refs``, which resets the process's peak RSS
        (VmHWM) to its current RSS, so the next reading is the peak of this case (still
        including the interpreter and torch already resident). Elsewhere a no-op: ``ru_maxrss``
        only grows."""
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass

    def peak_memory_mb(self, device: str) -> float:
        """Peak resident set size of this whole process, MiB: Linux VmHWM from
        /proc/self/status (resettable), else ``getrusage(RUSAGE_SELF).ru_maxrss`` (KiB on
        Linux, bytes on macOS; monotone), psutil's ``peak_wset`` on Windows. Includes the
        interpreter and torch itself (several hundred MiB)."""
        return peak_rss_bytes() / MIB

    def memory_peaks(self, device: str) -> dict[str, Any]:
        """``mem_peak_rss_mb``: the peak RSS of this process since the last reset, MiB (as
        :meth:`peak_memory_mb`)."""
        return {"mem_peak_rss_mb": self.peak_memory_mb(device)}

    def default_mem_cap_mb(self, device: str) -> float | None:
        """Half of the RAM available now: a probe that would take the machine (swap, the OOM
        killer) is refused or stopped before it does."""
        free = self.free_memory_bytes(device)
        return None if free is None else free / 2 / MIB

    def monitor(self, device: str) -> tuple[Any, str]:
        return None, ("no energy counter is read on cpu (NVML covers NVIDIA GPUs; the CPU's RAPL counters are "
                      "not read)")

    def free_memory_bytes(self, device: str) -> int | None:
        """What the OS could give this process now (psutil's ``available``)."""
        try:
            import psutil

            return int(psutil.virtual_memory().available)
        except Exception:  # pragma: no cover - psutil is a dependency
            return None


_BACKENDS: dict[str, Device] = {}


def register_device(dev: Device) -> Device:
    """Make a device kind known (by its ``kind``); refuses a kind registered twice."""
    if not dev.kind or dev.kind in _BACKENDS:
        raise ValueError(f"device kind {dev.kind!r} is empty or already registered")
    _BACKENDS[dev.kind] = dev
    return dev


register_device(CpuDevice())
register_device(CudaDevice())


def kinds() -> tuple[str, ...]:
    """The registered device kinds, e.g. ("cpu", "cuda")."""
    return tuple(_BACKENDS)


def backend(device: str) -> Device:
    """The :class:`Device` for ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ... Unknown kinds: ValueError."""
    kind = str(device).split(":", 1)[0]
    try:
        return _BACKENDS[kind]
    except KeyError:
        raise ValueError(f"unknown device {device!r}; valid: {', '.join(_BACKENDS)}") from None


def resolve_device(device: str) -> str:
    """``"auto"`` -> the first available accelerator, else ``"cpu"``; a registered kind that is
    not available here, or an unknown name, is a UserError."""
    from bench.errors import UserError

    if device == "auto":
        return auto_device()
    if device not in _BACKENDS:
        raise UserError(f"unknown device {device!r}; valid: auto, {', '.join(_BACKENDS)}")
    dev = _BACKENDS[device]
    if not dev.available():
        raise UserError(f"--device {device}: {dev.unavailable_reason()}")
    return device


def auto_device() -> str:
    """The device ``--device auto`` means: the first registered accelerator present, else cpu."""
    for kind, dev in _BACKENDS.items():
        if kind != "cpu" and dev.available():
            return kind
    return "cpu"


def reset_peak_memory(device: str = "cpu") -> None:
    """Reset the peak-memory counter of `device` (see the device's :meth:`Device.reset_peak_memory`)."""
    backend(device).reset_peak_memory(str(device))


def peak_memory_mb(device: str = "cpu") -> float:
    """Peak memory of `device` since the last reset, MiB (1 MB here = 2**20 bytes): CUDA, bytes
    held by tensors (``max_memory_allocated``); CPU, the peak RSS of this whole process."""
    return backend(device).peak_memory_mb(str(device))


def is_oom(exc: BaseException) -> bool:
    """An out-of-memory failure: torch's OutOfMemoryError, Python's MemoryError, or an error
    that says so (CUDA's "out of memory", the CPU allocator's "can't allocate memory")."""
    if isinstance(exc, MemoryError):
        return True
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return "out of memory" in text or "can't allocate memory" in text
