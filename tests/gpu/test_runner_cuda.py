"""The runner on CUDA: every precision, events-timed, peak memory, CUDA graphs, fast OOM rows
that say where, energy and clocks through NVML, the memory pass, traces, the max-batch probes.
Runs only where CUDA is present (the `gpu` marker); on CPU-only machines these are skipped.
The whole `pytest -m gpu` is meant to take a few minutes on one GPU (compiles included)."""

from __future__ import annotations

import time

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
@pytest.mark.parametrize("precision,mode,workload", [
    ("bf16", "default", "infer"), ("bf16", "reduce-overhead", "infer"),
    ("fp16", "reduce-overhead", "infer"), ("fp16", "reduce-overhead", "train"),  # CUDA graphs + GradScaler
])
def test_cuda_compile_modes(runner, precision, mode, workload):
    row = runner.run(case(precision=precision, compile=mode, workload=workload))
    assert row["status"] == "ok", row["error"]
    assert row["output_ok"] is True and row["compile_s"] > 0


def test_every_cuda_preset_mode_runs_here():
    from bench.core import modes
    from bench.core.presets import preset

    for name in ("quick", "full"):
        for layout, precision, comp in preset(name, "cuda")["modes"]:
            assert modes.skip_reason(case(layout, precision, comp)) is None, (layout, precision, comp)


def _images_per_gib(size: int) -> int:
    return 2**30 // (3 * size * size * 4)


def test_cuda_oom_is_reported_not_hidden():
    """resnet152, train, batch 65536, 224 px: the memory estimate refuses it at once."""
    t0 = time.monotonic()
    huge = Case("resnet152", "train", 65536, 224, "contiguous", "fp32", "none", "cuda")
    row = CaseRunner(FAST).run(huge)
    assert row["status"] == "oom" and row["batch_size"] == 65536 and row["oom_phase"] == "estimate"
    assert time.monotonic() - t0 < 15


def test_a_real_cuda_oom_in_forward_is_fast_and_says_forward():
    """Without the estimate: an input of a quarter of the GPU's memory is drawn on the GPU at
    once; resnet50's first conv output (5.3x the input) cannot fit."""
    total = torch.cuda.get_device_properties(0).total_memory
    bs = int(total / 4 / 2**30 * _images_per_gib(224))
    settings = RunSettings(timing=FAST.timing, isolate=False, memory_check=False, profile=False)
    t0 = time.monotonic()
    row = CaseRunner(settings).run(Case("resnet50", "train", bs, 224, "contiguous", "fp32", "none", "cuda"))
    assert (row["status"], row["oom_phase"]) == ("oom", "forward"), row["error"]
    assert time.monotonic() - t0 < 30


def test_an_input_larger_than_the_gpu_is_an_oom_in_input():
    total = torch.cuda.get_device_properties(0).total_memory
    bs = int(1.5 * total / 2**30 * _images_per_gib(224))
    settings = RunSettings(timing=FAST.timing, isolate=False, memory_check=False, profile=False)
    t0 = time.monotonic()
    row = CaseRunner(settings).run(Case("resnet50", "infer", bs, 224, "contiguous", "fp32", "none", "cuda"))
    assert (row["status"], row["oom_phase"]) == ("oom", "input"), row["error"]
    assert time.monotonic() - t0 < 15


def _nvml_works() -> bool:
    from bench.core import nvml

    try:
        nvml.monitor_for("cuda").energy_mj()
        return True
    except nvml.NvmlUnavailable:
        return False


def test_energy_clocks_and_memory_pass_on_cuda(runner):
    from bench.core import env

    row = runner.run(case(precision="bf16", bs=64, size=128))
    assert row["status"] == "ok", row["error"]
    assert row["mem_peak_allocated_mb"] > 0 and row["mem_peak_reserved_mb"] >= row["mem_peak_allocated_mb"]
    e = env.collect("cuda")
    assert e["gpu_sm_count"] > 0 and e["gpu_mem_total_mb"] > 1000
    if not _nvml_works():
        assert row["energy_note"] and row["energy_j_per_image"] is None
        pytest.skip(f"NVML energy counter not usable here: {row['energy_note']}")
    assert e["gpu_driver"] and e["gpu_sm_clock_max_mhz"] > 0 and e["gpu_power_limit_w"] > 0
    assert row["energy_j"] > 0 and row["energy_note"] == ""
    assert 0 < row["power_w_mean"] < 1.5 * e["gpu_power_limit_w"]
    assert row["energy_j_per_image"] == pytest.approx(row["energy_j"] / (row["n_samples"] * 64))
    assert row["gpu_sm_clock_mhz"] > 0 and isinstance(row["gpu_throttled"], bool)
    assert row["nvml_mem_used_mb"] >= row["mem_peak_reserved_mb"]


def test_trace_on_cuda_lists_kernels(tmp_path):
    import csv

    settings = RunSettings(timing=FAST.timing, isolate=False, profile=False, trace_dir=str(tmp_path))
    row = CaseRunner(settings).run(case(precision="bf16"))
    assert row["status"] == "ok", row["error"]
    top = list(csv.DictReader(open(row["trace_file"].replace(".json", ".top.csv"))))
    assert top[0]["table"] == "device" and top[0]["name"] == row["trace_top_op"]
    assert any(r["table"] == "cpu" for r in top)


def test_max_batch_search_on_cuda_under_a_cap():
    settings = RunSettings(timing=FAST.timing, isolate=False, profile=False,
                           search={"max_batch": 4096, "mem_cap_mb": 1024.0})
    row = CaseRunner(settings).run(case(precision="bf16", size=224, bs=1))
    assert row["status"] == "ok", row["error"]
    probes = row["max_batch_probes"]
    assert row["max_batch_fail"] and all(p["peak_mb"] <= 1024 for p in probes if p["fits"])
    assert row["max_batch_searched"] < row["max_batch_fail"] <= 4096
