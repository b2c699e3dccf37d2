"""The runner in-process: every mode combination on CPU runs or is skipped with a reason;
rows carry the documented columns; outputs match eager fp32."""

from __future__ import annotations

import itertools

import pytest
import torch

from bench.core import modes
from bench.core.case import WORKLOADS, Case, Sweep
from bench.core.modes import names as _mode_names

LAYOUTS, PRECISIONS, COMPILE_MODES = (_mode_names(a) for a in ("layout", "precision", "compile"))
from bench.execute.base import RunSettings
from bench.execute.case_runner import CaseRunner
from bench.core.timing import TimingConfig

FAST = RunSettings(timing=TimingConfig(min_samples=3, max_time_s=0.2, min_time_s=0.0, warmup_max_s=2.0),
                   isolate=False)
REQUIRED = ["model", "device", "layout", "precision", "compile", "workload", "batch_size", "image_size",
            "params", "macs", "flops", "activations", "latency_ms_p50", "latency_ms_p90", "latency_ms_p99",
            "latency_ms_mean", "latency_iqr_ms", "throughput_ips", "achieved_tflops", "peak_mem_mb",
            "compile_s", "max_abs_diff", "status", "error", "block", "depth", "stride_at", "stem",
            "shortcut", "groups", "width_per_group"]
CPU_CANNOT = {"fp16", "tf32", "reduce-overhead"}


def case(layout="contiguous", precision="fp32", compile="none", workload="infer", bs=2, size=32, model="resnet18"):
    return Case(model, workload, bs, size, layout, precision, compile, "cpu")


@pytest.fixture(scope="module")
def runner():
    return CaseRunner(FAST)


@pytest.mark.parametrize("layout,precision,compile,workload",
                         list(itertools.product(LAYOUTS, PRECISIONS, COMPILE_MODES, WORKLOADS)))
def test_every_cpu_combination_runs_or_has_a_reason(layout, precision, compile, workload):
    reason = modes.skip_reason(case(layout, precision, compile, workload))
    if precision == "int8":  # the pytorch backend's int8: PT2E, inference, compiled (bench.core.backends.pytorch)
        if workload == "train" or compile == "none":
            assert reason and ("for inference" in reason or "needs a compile mode" in reason), reason
        elif compile in CPU_CANNOT:
            assert reason and "CUDA" in reason, reason
        else:
            assert reason is None or "torchao" in reason, reason
    elif {precision, compile} & CPU_CANNOT:
        assert reason and ("CUDA" in reason or "TF32" in reason)
    else:
        assert reason is None


@pytest.mark.parametrize("layout,precision,workload",
                         list(itertools.product(LAYOUTS, ("fp32", "bf16", "fp16", "tf32"), WORKLOADS)))
def test_eager_combinations_measure_or_skip(runner, layout, precision, workload):
    row = runner.run(case(layout, precision, "none", workload))
    if precision in CPU_CANNOT:
        assert row["status"] == "skipped" and row["error"]
        return
    assert row["status"] == "ok", row["error"]
    for col in REQUIRED:
        assert col in row, col
    assert row["latency_ms_p50"] > 0 and row["throughput_ips"] == pytest.approx(2 / (row["latency_ms_p50"] / 1e3))
    assert row["output_ok"] is True, (row["max_abs_diff"], row["max_rel_diff"])
    assert row["compile_s"] is None
    assert row["params"] == 11_689_512  # torchvision's documented resnet18 count
    # achieved TFLOP/s = flops x batch (x3 for training) / median latency
    factor = 3 if workload == "train" else 1
    assert row["achieved_tflops"] == pytest.approx(
        row["flops"] * 2 * factor / (row["latency_ms_p50"] / 1e3) / 1e12)


def test_reference_row_has_zero_diff(runner):
    row = runner.run(case())
    assert row["max_abs_diff"] == 0.0 and row["output_ok"]


def test_all_modes_start_from_the_same_weights(runner):
    a = runner.run(case(layout="channels_last"))
    # channels_last only reorders memory: same weights, same input -> the same logits up to rounding
    assert a["max_rel_diff"] < 1e-4


def test_unknown_model_is_an_error_row(runner):
    row = runner.run(case(model="no_such_net"))
    assert row["status"] == "error" and "no_such_net" in row["error"]


def test_train_batch_of_one_at_32px_is_an_honest_error(runner):
    # BatchNorm in training mode cannot normalise a 1x1 map of one sample: reported, not hidden
    row = runner.run(case(workload="train", bs=1))
    assert row["status"] == "error" and "value per channel" in row["error"]


def test_oom_backoff_halves_the_batch_and_keeps_both_sizes(faulty_models):  # test_oom: oom above batch 2
    on = CaseRunner(RunSettings(timing=FAST.timing, isolate=False, oom_backoff=True))
    row = on.run(case(model="test_oom", bs=8))
    assert row["status"] == "ok-reduced"
    assert (row["batch_size_requested"], row["batch_size"]) == (8, 2)
    off = CaseRunner(RunSettings(timing=FAST.timing, isolate=False, oom_backoff=False))
    row = off.run(case(model="test_oom", bs=8))
    assert row["status"] == "oom" and row["batch_size"] == 8 and "out of memory" in row["error"]


def test_sweep_orders_reference_mode_first_and_groups_by_model():
    sweep = Sweep(("resnet18", "resnet34"), (1,), (32,), (("channels_last", "fp32", "none"),
                  ("contiguous", "fp32", "none")), ("infer",), "cpu")
    cases = sweep.cases()
    assert [c.model for c in cases] == ["resnet18", "resnet18", "resnet34", "resnet34"]
    assert cases[0].is_reference and not cases[1].is_reference


def test_settings_round_trip():
    s = RunSettings(timing=TimingConfig(min_samples=4), threads=2, overrides={"stem": "deep"})
    assert RunSettings.from_dict(s.to_dict()) == s


@pytest.mark.slow
@pytest.mark.parametrize("workload", ["infer", "train"])
def test_compiled_case_records_compile_time_and_matches_eager(runner, workload):
    # torch.compile on CPU costs tens of seconds: one tiny model, once per workload
    row = runner.run(case(layout="channels_last", compile="default", workload=workload, bs=2, size=32))
    assert row["status"] == "ok", row["error"]
    assert row["compile_s"] > row["latency_ms_p50"] / 1e3  # the first call compiled
    assert row["output_ok"] is True, row["max_rel_diff"]
    torch._dynamo.reset()


def test_rows_record_the_load_and_busy_flags_contention(runner):
    from bench.results.views import busy

    row = runner.run(case())
    assert isinstance(row["load_avg_1m"], float)
    import os

    cores = os.cpu_count()
    assert busy({"device": "cpu", "load_avg_1m": cores + 1.0})
    assert not busy({"device": "cpu", "load_avg_1m": cores - 0.5})
    assert not busy({"device": "cuda", "load_avg_1m": cores + 5.0})
