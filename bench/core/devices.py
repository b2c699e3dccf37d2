"""Devices: everything that differs between a CPU and a GPU, chosen once per case.

A case names its device as ``"cpu"`` or ``"cuda"`` (``"cuda:N"`` also works in the timing
core). :func:`backend` returns the :class:`Device` that knows, for that kind of device:

- the **clock** a sample is taken with (:meth:`Device.timer`) and how queued work is drained
  (:meth:`Device.synchronize`);
- the **capabilities** a mode may require (``fp16_autocast``, ``tf32``, ``cuda_graphs``, ...)
  and, for a missing one, the sentence that becomes a ``skipped`` row's reason;
- the **precision switches** held for the duration of a case (TF32, cuDNN autotuning);
- **peak memory**: how it is reset before a case and read after it (MiB);
- what the environment records about it (name, CUDA and cuDNN versions).

Add a device kind = subclass :class:`Device`, fill those methods, and :func:`register_device`
it; nothing else in the harness branches on the device's name. torch is imported lazily, so
this module costs nothing to import.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from bench.core.host import cpu_model, peak_rss_bytes

_MIB = 2**20

#: Capabilities a mode can require (see bench.core.modes). A device reports the ones it has.
CAPABILITIES = ("bf16_autocast", "fp16_autocast", "tf32", "cuda_graphs", "compile")


class Device:
    """One kind of device. Subclasses override what differs; the defaults are a host device."""

    kind: str = ""
    #: missing capability -> why a mode needing it is skipped on this kind of device
    missing_reasons: dict[str, str] = {}

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

    # -- environment --------------------------------------------------------------------------
    def describe(self, device: str) -> dict[str, Any]:
        """Environment columns for this device: device_name, cuda, cudnn."""
        return {"device_name": cpu_model(), "cuda": None, "cudnn": None}


class CpuDevice(Device):
    """The host CPU: perf_counter clock, no TF32, bf16 autocast only, peak RSS as memory."""

    kind = "cpu"
    missing_reasons = {
        "fp16_autocast": "fp16 autocast needs CUDA (CPU autocast supports bf16 only)",
        "tf32": "TF32 is a CUDA tensor-core mode; there is no TF32 on CPU",
        "cuda_graphs": "compile mode reduce-overhead uses CUDA graphs; it needs CUDA",
        "compile": "torch.compile is not supported in this Python/torch build",
    }

    def capabilities(self, device: str) -> set[str]:
        caps = {"bf16_autocast"}
        if _compile_supported():
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
        return peak_rss_bytes() / _MIB

    def free_memory_bytes(self, device: str) -> int | None:
        """What the OS could give this process now (psutil's ``available``)."""
        try:
            import psutil

            return int(psutil.virtual_memory().available)
        except Exception:  # pragma: no cover - psutil is a dependency
            return None


class CudaDevice(Device):
    """An NVIDIA GPU through torch.cuda: CUDA-event clock, TF32 switches, caching-allocator peak."""

    kind = "cuda"
    missing_reasons = {
        "bf16_autocast": "this GPU does not support bf16",
        "tf32": "TF32 needs an Ampere or newer GPU (compute capability >= 8.0)",
        "compile": "torch.compile is not supported in this Python/torch build",
    }

    def available(self) -> bool:
        import torch

        return torch.cuda.is_available()

    def unavailable_reason(self) -> str:
        return "CUDA is not available on this machine (torch.cuda.is_available() is False)"

    def capabilities(self, device: str) -> set[str]:
        import torch

        caps = {"fp16_autocast", "cuda_graphs"}
        if torch.cuda.is_bf16_supported():
            caps.add("bf16_autocast")
        if torch.cuda.get_device_capability(device)[0] >= 8:
            caps.add("tf32")
        if _compile_supported():
            caps.add("compile")
        return caps

    def synchronize(self, device: str) -> None:
        import torch

        torch.cuda.synchronize()

    def timer(self, fn, sync, device):
        """A pair of ``torch.cuda.Event(enable_timing=True)`` recorded on the current stream
        around the call, then ``end.synchronize()`` once per sample; elapsed time in ms. The
        sample spans from when the GPU reaches the start marker (at once: it is idle after the
        previous sample's sync) to the end of the step's last kernel, so GPU work and any host
        launch overhead that leaves the GPU idle are inside it, and the host-side sync latency
        is not. Work on other streams must be joined to the current stream inside ``fn`` (or
        by ``sync``). One pair of events is reused for every call."""
        import torch

        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        if sync is None:
            def timed() -> float:
                start.record()
                fn()
                end.record()
                end.synchronize()
                return start.elapsed_time(end)
        else:
            def timed() -> float:
                start.record()
                fn()
                sync()
                end.record()
                end.synchronize()
                return start.elapsed_time(end)
        return timed

    @contextlib.contextmanager
    def current(self, device: str) -> Iterator[None]:
        import torch

        with torch.cuda.device(torch.device(device)):
            yield

    @contextlib.contextmanager
    def precision_switches(self, *, tf32: bool) -> Iterator[None]:
        """TF32 for matmuls *and* cuDNN convs set to `tf32` (cuDNN allows TF32 by default, which
        would make an "fp32" row silently TF32), cuDNN autotuning on; restored afterwards."""
        import torch

        saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
                 torch.backends.cudnn.benchmark)
        try:
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
            torch.backends.cudnn.benchmark = True
            yield
        finally:
            (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.backends.cudnn.benchmark) = saved

    def empty_cache(self) -> None:
        import torch

        torch.cuda.empty_cache()

    def reset_peak_memory(self, device: str) -> None:
        import torch

        torch.cuda.reset_peak_memory_stats(torch.device(device))

    def peak_memory_mb(self, device: str) -> float:
        """``torch.cuda.max_memory_allocated``: bytes held by tensors through the caching
        allocator since the last reset (not the reserved pool, not the CUDA context), MiB."""
        import torch

        return torch.cuda.max_memory_allocated(torch.device(device)) / _MIB

    def free_memory_bytes(self, device: str) -> int | None:
        """Free device memory (``cudaMemGetInfo``) plus what torch's caching allocator holds
        reserved but unused."""
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        d = torch.device(device)
        return int(free + torch.cuda.memory_reserved(d) - torch.cuda.memory_allocated(d))

    def describe(self, device: str) -> dict[str, Any]:
        import torch

        cudnn = str(torch.backends.cudnn.version()) if torch.backends.cudnn.is_available() else None
        return {"device_name": torch.cuda.get_device_name(torch.device(device)),
                "cuda": torch.version.cuda, "cudnn": cudnn}


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


def _compile_supported() -> bool:
    try:
        import torch._dynamo  # noqa: F401

        return True
    except Exception:  # pragma: no cover - depends on the installation
        return False
