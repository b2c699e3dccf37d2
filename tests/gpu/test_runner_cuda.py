"""The runner on CUDA: every precision, events-timed, peak memory, CUDA graphs. Runs only
where CUDA is present (the `gpu` marker); on CPU-only machines these are skipped."""

from __future__ import annotations

import pytest
import torch

from bench.core.case import Case
from bench.execute.base import RunSettings
from bench.execute.case_runner import CaseRunner
from bench.core.timing import TimingConfig

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

FAST = RunSettings(timing=TimingConfig(min_samples=5, max_time_s=0.5, min_time_s=0.1, warmup_max_s=5.0),
                   isolate=False)


def case(layout="channels_last", precision="fp32", compile="none", workload="infer", bs=8, size=64):
    return Case("resnet18", workload, bs, size, layout, precision, compile, "cuda")


@pytest.fixture(scope="module")
def runner():
    return CaseRunner(FAST)


@pytest.mark.parametrize("precision", ["fp32", "tf32", "bf16", "fp16"])
@pytest.mark.parametrize("workload", ["infer", "train"])
def test_cuda_precisions(runner, precision, workload):
    row = runner.run(case(precision=precision, workload=workload))
    assert row["status"] == "ok", row["error"]
    assert row["output_ok"] is True, row["max_rel_diff"]
    assert row["peak_mem_mb"] > 0 and row["latency_ms_p50"] > 0


def test_fp32_really_disables_tf32(runner):
    seen = {}
    import bench.core.modes as modes

    with modes.precision_context(case(precision="fp32")):
        seen["fp32"] = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    with modes.precision_context(case(precision="tf32")):
        seen["tf32"] = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    assert seen == {"fp32": (False, False), "tf32": (True, True)}


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
def test_cuda_compile_modes(runner, mode):
    row = runner.run(case(precision="bf16", compile=mode))
    assert row["status"] == "ok", row["error"]
    assert row["output_ok"] is True and row["compile_s"] > 0


def test_cuda_oom_is_reported_not_hidden():
    huge = Case("resnet152", "train", 65536, 224, "contiguous", "fp32", "none", "cuda")
    row = CaseRunner(FAST).run(huge)
    assert row["status"] == "oom" and row["batch_size"] == 65536
