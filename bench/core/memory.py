"""Memory: a lower bound a case needs, from shapes alone, checked before it runs; and the
memory pass, which measures a case's peaks apart from its timing (:func:`measure_peaks`).

The model runs once on the **meta device** (no memory, no arithmetic) at batch 1 with forward
hooks on its leaf modules; sizes scale linearly with the batch. Every count is a lower bound:

- inference: the parameters (the base model and its copy on the device), plus the largest
  input + output of any one layer (both exist while it runs), times the batch;
- training: the parameters three times more (gradients, momentum), plus every conv/linear
  output (each is kept for the backward pass), times the batch.

Values are fp32 (4 bytes): the eager fp32 reference step runs at the same batch before any
mode is timed. A case whose lower bound exceeds the device's free memory cannot fit and
becomes an ``oom`` row at once instead of taking the machine; ``--no-memory-check`` skips it.
"""

from __future__ import annotations

from dataclasses import dataclass

_BYTES = 4


@dataclass(frozen=True)
class Footprint:
    params: int  # parameters
    max_layer_elements: int  # largest input + output of one leaf module, per image
    kept_elements: int  # conv + linear outputs, per image (what training keeps)

    def bytes_needed(self, batch_size: int, workload: str) -> int:
        if workload == "train":
            return _BYTES * (self.params * 5 + self.kept_elements * batch_size)
        return _BYTES * (self.params * 2 + self.max_layer_elements * batch_size)


def footprint(build_model, image_size: int) -> Footprint:
    """The footprint of the model `build_model()` builds (called under the meta device)."""
    import torch
    from torch import nn

    with torch.device("meta"):
        model = build_model()
    model.eval()
    largest, kept = [0], [0]

    def hook(module, inputs, output):
        if not isinstance(output, torch.Tensor):
            return
        x = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
        largest[0] = max(largest[0], output.numel() + (x.numel() if x is not None else 0))
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            kept[0] += output.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    try:
        first_conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
        channels = first_conv.in_channels if first_conv is not None else 3
        with torch.no_grad():
            model(torch.zeros(1, channels, image_size, image_size, device="meta"))
    finally:
        for h in handles:
            h.remove()
    return Footprint(sum(p.numel() for p in model.parameters()), largest[0], kept[0])


#: Steps of the memory pass (after the timed samples, never inside them).
MEMORY_PASS_STEPS = 3


def measure_peaks(step, device: str, steps: int = MEMORY_PASS_STEPS) -> dict:
    """The memory pass: drain the device, reset its peak counters, run `step` `steps` times,
    drain again and read the peaks (bench.core.devices.Device.memory_peaks): on CUDA peak
    allocated and reserved (caching allocator) and NVML's used memory; on CPU the peak RSS of
    this process. Run after the timed samples on a warmed-up step, so it sees steady-state
    steps (not compilation or autotuning); MiB."""
    from bench.core import devices

    dev = devices.backend(device)
    dev.synchronize(device)
    dev.reset_peak_memory(device)
    for _ in range(steps):
        step()
    dev.synchronize(device)
    return dev.memory_peaks(device)


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"
