"""bench.timing on a real GPU: CUDA-event timing and CUDA peak memory. Skipped without CUDA."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from bench.core.devices import peak_memory_mb, reset_peak_memory  # noqa: E402
from bench.core.timing import TimingConfig, measure  # noqa: E402

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]

CFG = TimingConfig(
    min_samples=10, max_samples=50, min_time_s=0.0, max_time_s=5.0, target_rel_ci=0.02,
    warmup_max_s=5.0,
)  # fmt: skip


def _matmul_loop(k: int):
    a = torch.randn(2048, 2048, device="cuda")
    b = torch.randn(2048, 2048, device="cuda")
    out = torch.empty_like(a)

    def fn():
        for _ in range(k):
            torch.mm(a, b, out=out)

    return fn


def test_event_timing_of_matmul_is_positive_and_scales_with_work():
    one = measure(_matmul_loop(20), device="cuda", config=CFG)
    two = measure(_matmul_loop(40), device="cuda", config=CFG)
    assert one.device == "cuda"
    assert one.median_ms > 0 and one.min_ms > 0
    # the async launches return at once: ~2x means the GPU work is inside the samples
    assert 1.7 <= two.median_ms / one.median_ms <= 2.3, (one, two)


def test_event_timing_includes_gpu_work_not_just_launch():
    # a host clock without a sync would see only the launches (microseconds); events see the work
    m = measure(_matmul_loop(20), device="cuda", config=CFG)
    flops = 20 * 2 * 2048**3
    tflops = flops / (m.median_ms / 1e3) / 1e12
    assert tflops < 2000, m  # faster than any GPU: the work was not inside the sample


def test_peak_memory_grows_after_allocating_256_mib():
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    reset_peak_memory("cuda")
    before = peak_memory_mb("cuda")
    x = torch.empty(256 * 2**20, dtype=torch.uint8, device="cuda")
    after = peak_memory_mb("cuda")
    assert after - before >= 256.0 - 1e-6
    del x
    torch.cuda.empty_cache()
    reset_peak_memory("cuda")
    assert peak_memory_mb("cuda") <= after - 255.0  # reset brings the peak down to what is live
