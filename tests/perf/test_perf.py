"""pytest-benchmark benchmarks of a few small cases (see conftest.py for when they measure).

Each benchmark times the same step as `resnet-bench run` (bench.modes: eager forward under
no_grad), one batch per round, with a CUDA synchronize inside the timed function on CUDA
(pytest-benchmark's timer is a host clock: without the sync it would time kernel launches).
The case's fields go to `benchmark.extra_info`, which `resnet-bench report` and
`check --speed --baseline` read back (bench/pytest_bench.py).
"""

from __future__ import annotations

import os

import pytest
import torch

from tests.perf.conftest import perf_device, perf_threads

MODELS = [m.strip() for m in os.environ.get("RESNET_BENCH_PERF_MODELS", "resnet18").split(",") if m.strip()]
# (image size, layout): small enough to take milliseconds on a CPU core
SHAPES = [(64, "contiguous"), (64, "channels_last"), (32, "contiguous")]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("image_size,layout", SHAPES, ids=[f"{s}px-{lay}" for s, lay in SHAPES])
def test_infer_latency(benchmark, model, image_size, layout):
    import resnet_impl
    from bench.core import modes
    from bench.core.case import Case

    device = perf_device()
    threads = perf_threads(device)
    if threads:
        torch.set_num_threads(threads)
    case = Case(model, "infer", 1, image_size, layout, "fp32", "none", device)
    torch.manual_seed(0)
    net = resnet_impl.create_model(model).to(device)
    x, y = modes.make_inputs(case, net.fc.out_features)
    with modes.precision_context(case):
        step = modes.prepare(net, case, x, y).step
        sync = torch.cuda.synchronize if device.startswith("cuda") else None

        def run():
            out = step()
            if sync is not None:
                sync()  # time the GPU work, not the kernel launches
            return out

        for _ in range(3):  # warm-up outside the statistics (allocator, oneDNN/cuDNN choices)
            run()
        benchmark.extra_info.update(case.as_dict())
        benchmark.extra_info["threads"] = threads or torch.get_num_threads()
        out = benchmark(run)
    assert out.shape == (1, net.fc.out_features)
