"""An NVIDIA GPU through torch.cuda (registered by bench.core.devices as kind ``"cuda"``):
CUDA-event clock, TF32 switches, caching-allocator memory, NVML energy and clocks
(bench.core.nvml). torch is imported lazily."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from bench.core.device_base import MIB, Device, compile_supported


class CudaDevice(Device):
    """An NVIDIA GPU through torch.cuda: CUDA-event clock, TF32 switches, caching-allocator peak."""

    kind = "cuda"
    profiler_activities = ("CPU", "CUDA")
    missing_reasons = {
        "bf16_autocast": "this GPU does not support bf16",
        "tf32": "TF32 needs an Ampere or newer GPU (compute capability >= 8.0)",
        "compile": "torch.compile is not supported in this Python/torch build",
    }

    def __init__(self) -> None:
        self._monitors: dict[str, tuple[Any, str]] = {}

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
        if compile_supported():
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

    def marker(self, device: str):
        """CUDA events recorded on the current stream where the host reaches the mark (a stage's
        forward hook), so a stage's time is the GPU's time between its first kernel's start and
        its last kernel's end; read after a synchronize."""
        import torch

        def mark():
            e = torch.cuda.Event(enable_timing=True)
            e.record()
            return e

        return mark, lambda a, b: a.elapsed_time(b)

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

        return torch.cuda.max_memory_allocated(torch.device(device)) / MIB

    def free_memory_bytes(self, device: str) -> int | None:
        """Free device memory (``cudaMemGetInfo``) plus what torch's caching allocator holds
        reserved but unused."""
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        d = torch.device(device)
        return int(free + torch.cuda.memory_reserved(d) - torch.cuda.memory_allocated(d))

    def memory_peaks(self, device: str) -> dict[str, Any]:
        """``max_memory_allocated`` (bytes held by tensors) and ``max_memory_reserved`` (the
        caching allocator's pool) since the last reset, and NVML's used memory of the whole GPU
        read now (this process's pool, its CUDA context and any other process), MiB."""
        import torch

        d = torch.device(device)
        mon, _ = self.monitor(device)
        return {"mem_peak_allocated_mb": torch.cuda.max_memory_allocated(d) / MIB,
                "mem_peak_reserved_mb": torch.cuda.max_memory_reserved(d) / MIB,
                "nvml_mem_used_mb": mon.optional("mem_used_mb") if mon is not None else None}

    def monitor(self, device: str) -> tuple[Any, str]:
        """The NVML monitor of this GPU (bench.core.nvml), or None and why NVML is unusable."""
        from bench.core import nvml

        if device not in self._monitors:
            try:
                self._monitors[device] = (nvml.monitor_for(device), "")
            except nvml.NvmlUnavailable as e:
                self._monitors[device] = (None, str(e))
        return self._monitors[device]

    def describe(self, device: str) -> dict[str, Any]:
        """device_name, cuda, cudnn; the GPU's SM count, memory (MiB), compute capability
        (torch.cuda.get_device_properties) and, through NVML, its driver, maximum SM clock (MHz)
        and enforced power limit (W) -- None where NVML cannot tell."""
        import torch

        d = torch.device(device)
        props = torch.cuda.get_device_properties(d)
        cudnn = str(torch.backends.cudnn.version()) if torch.backends.cudnn.is_available() else None
        out = {"device_name": torch.cuda.get_device_name(d), "cuda": torch.version.cuda, "cudnn": cudnn,
               "gpu_sm_count": props.multi_processor_count, "gpu_mem_total_mb": props.total_memory / MIB,
               "gpu_cc": f"{props.major}.{props.minor}", "gpu_driver": None, "gpu_sm_clock_max_mhz": None,
               "gpu_power_limit_w": None}
        mon, _ = self.monitor(device)
        if mon is not None:
            out.update(gpu_driver=mon.optional("driver"), gpu_sm_clock_max_mhz=mon.optional("sm_clock_max_mhz"),
                       gpu_power_limit_w=mon.optional("power_limit_w"))
        return out
