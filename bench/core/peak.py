"""The device's own peak, measured once per run: what one large matmul and one large convolution
achieve (GMAC/s, per precision), and what one large copy moves (GB/s). Each stage's achieved
GMAC/s is read against these (a fraction of the peak), and the two make the roofline of the
run's cases (bench.report.fig_stages): compute bound under the conv peak, memory bound under
bandwidth x arithmetic intensity.

Measured with the harness's one sampling loop (bench.core.timing.measure: first call apart,
warm-up until steady, samples until the median is known to 1% or a second is spent), in the
measuring process's thread count, on tensors made on the device:

- matmul: (N x N) @ (N x N), N = 2048 (a GPU: 8192): N**3 MACs;
- conv: 3x3, 256 -> 256 channels, stride 1, padding 1, on 1 x 256 x 56 x 56 (a GPU: batch 64),
  channels_last: 56 * 56 * 256 * 256 * 9 = 1.85 G MACs per image (resnet50's layer1 widths);
- copy: ``dst.copy_(src)`` of 256 MiB (a GPU: 1 GiB): read + written = 2 x the size.
"""

from __future__ import annotations

from typing import Any

from bench.core import devices

#: Precisions the peak is measured in (others are not matmul dtypes here).
DTYPES = {"fp32": "float32", "tf32": "float32", "bf16": "bfloat16", "fp16": "float16"}
MIB = 2**20


def _config():
    from bench.core.timing import TimingConfig

    return TimingConfig(min_samples=5, max_time_s=1.0, min_time_s=0.2, target_rel_ci=0.01, warmup_max_s=2.0,
                        warmup_window=3)


def peak(device: str, precisions: tuple[str, ...] = ("fp32",)) -> dict[str, Any]:
    """{"<prec>": {"matmul_gmacs_per_s", "conv_gmacs_per_s"}, "copy_gb_per_s", "how"} on `device`
    in this process's thread count; a precision the device cannot run is left out."""
    import torch

    dev = devices.backend(device)
    gpu = dev.kind != "cpu"
    out: dict[str, Any] = {"how": __doc__.split("\n\n")[1].replace("\n", " ")}
    with torch.no_grad():
        for prec in dict.fromkeys(precisions):
            if prec not in DTYPES or (prec in ("fp16", "tf32") and not gpu):
                continue
            with dev.precision_switches(tf32=prec == "tf32"):
                out[prec] = _compute(device, getattr(torch, DTYPES[prec]), gpu)
        out["copy_gb_per_s"] = _copy(device, gpu)
    return out


def _compute(device: str, dtype, gpu: bool) -> dict[str, float]:
    import torch

    from bench.core.timing import measure

    n = 8192 if gpu else 2048
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    mm = measure(lambda: torch.mm(a, b), device=device, config=_config())
    batch = 64 if gpu else 1
    conv = torch.nn.Conv2d(256, 256, 3, padding=1, bias=False).to(device=device, dtype=dtype)
    conv = conv.to(memory_format=torch.channels_last)
    x = torch.randn(batch, 256, 56, 56, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
    cv = measure(lambda: conv(x), device=device, config=_config())
    return {"matmul_gmacs_per_s": n**3 / (mm.median_ms * 1e-3) / 1e9,
            "conv_gmacs_per_s": batch * 56 * 56 * 256 * 256 * 9 / (cv.median_ms * 1e-3) / 1e9}


def _copy(device: str, gpu: bool) -> float:
    import torch

    from bench.core.timing import measure

    size = (1024 if gpu else 256) * MIB
    src = torch.empty(size, dtype=torch.uint8, device=device).fill_(1)
    dst = torch.empty_like(src)
    cp = measure(lambda: dst.copy_(src), device=device, config=_config())
    return 2 * size / (cp.median_ms * 1e-3) / 1e9
