"""Scale-out paths that need CUDA: NCCL data-parallel training (one GPU per rank) and the Ray
executor pinning one real GPU per group. Skipped without CUDA; the 2-rank NCCL case also
without a second GPU (what one GPU cannot exercise: NCCL between GPUs, stragglers, scaling)."""

from __future__ import annotations

import os

import pytest
import torch

from bench.core.case import Case
from bench.core.timing import TimingConfig
from bench.execute import ddp
from bench.execute.base import Events, RunSettings

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

SETTINGS = RunSettings(timing=TimingConfig(min_samples=5, max_time_s=1.0, min_time_s=0.2, warmup_max_s=5.0),
                       case_timeout_s=300)


def _case(ranks: int, precision: str = "bf16", layout: str = "channels_last") -> Case:
    return Case("resnet50", "train", 32, 224, layout, precision, "none", "cuda", ranks)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_one_rank_nccl_training_gives_a_row_on_the_gpu(precision):
    row, env = ddp.run_case(_case(1, precision), SETTINGS)
    assert row["status"] == "ok", row["error"]
    assert row["ddp_backend"] == "nccl" and row["world_size"] == 1 and len(row["rank_step_ms"]) == 1
    assert row["peak_mem_mb"] > 0 and row["throughput_ips"] == pytest.approx(32 / (row["latency_ms_p50"] / 1e3))
    assert env["device"] == "cuda" and env["device_name"] == torch.cuda.get_device_name(0)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
def test_two_rank_nccl_training_gives_per_rank_times_and_scaling():
    from bench.results import views

    rows = [ddp.run_case(_case(n), SETTINGS)[0] for n in (1, 2)]
    assert all(r["status"] == "ok" for r in rows), [r["error"] for r in rows]
    two = rows[1]
    assert two["world_size"] == 2 and len(two["rank_step_ms"]) == 2
    eff = views.with_scaling(views.to_frame(rows))["scaling_efficiency"].tolist()
    assert eff[0] == pytest.approx(1.0) and 0.3 < eff[1] < 1.2


def test_more_ranks_than_gpus_is_skipped_with_the_reason():
    n = torch.cuda.device_count() + 1
    row, _ = ddp.run_case(_case(n), SETTINGS)
    assert row["status"] == "skipped" and f"{n} ranks need {n} GPUs" in row["error"]


def test_ray_pins_one_real_gpu_per_group(tmp_path):
    pytest.importorskip("ray")
    import tempfile

    from bench.execute.ray_executor import RayExecutor

    ex = RayExecutor("local", init_options={"_temp_dir": tempfile.mkdtemp(prefix="rb-ray-", dir="/tmp")})
    try:
        assert ex.resolve_device("auto") == "cuda"
        rows = []
        cases = [Case(m, "infer", 8, 64, "channels_last", "bf16", "none", "cuda") for m in ("resnet18", "resnet50")]
        ex.run(cases, RunSettings(timing=SETTINGS.timing, case_timeout_s=300), Events(row=rows.append))
    finally:
        ex.close()
    assert [r["status"] for r in rows] == ["ok", "ok"], [r["error"] for r in rows]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    for r in rows:
        ids = r["cuda_visible_devices"].split(",")
        assert len(ids) == 1 and (visible is None or ids[0] in visible.split(","))  # one GPU, Ray's choice
        assert r["device_name"] == torch.cuda.get_device_name(0)
