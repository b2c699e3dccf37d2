"""The measurement-pass seam (bench.execute.passes) and its stage pass (bench.core.stages):
a toy pass added in one place shows up in a real sweep's rows; the stage pass's stages add up
to the step; a compiled case says why it has none; the peak microbenchmark (bench.core.peak)
and the views and tables that read them (bench.results.stages)."""

from __future__ import annotations

import json

import pytest

from _cli import FAST
from bench.cli import main
from bench.core.profile import STAGES
from bench.execute import passes

TINY = ["run", "--models", "resnet18", "--batch-sizes", "1", "--image-sizes", "32", "--threads", "1", "--device",
        "cpu", "--layouts", "contiguous", "--precisions", "fp32", "--compile", "none", *FAST]


@pytest.fixture
def toy_pass():
    class CountCalls(passes.Pass):
        name = "toy pass"

        def measure(self, live, settings):
            live.prepared.step()
            return {"toy_calls": 1, "toy_saw": live.case.label()}

    passes.register_pass(CountCalls(), before="trace")
    yield "toy pass"
    passes.unregister_pass("toy pass")


def test_a_toy_pass_is_one_registration(tmp_path, toy_pass, capsys):
    assert [p.name for p in passes.PASSES][-2:] == ["toy pass", "trace"]
    assert main([*TINY, "--no-isolate", "--out", str(tmp_path / "r"), "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["toy_calls"] == 1 and row["toy_saw"].startswith("resnet18 infer bs1 32px")
    with pytest.raises(ValueError, match="already registered"):
        passes.register_pass(passes.MemoryPass())


def test_the_stages_of_an_eager_step_add_up_to_it(one_torch_thread):
    import torch

    import resnet_impl
    from bench.core import stages

    model = resnet_impl.create_model("resnet18").eval()
    x = torch.randn(2, 3, 64, 64)

    def step():
        with torch.no_grad():
            return model(x)

    for _ in range(3):
        step()
    out = stages.time_stages(step, model, "cpu", steps=5, max_s=60.0)
    assert out["stage_note"] == "" and out["stage_steps"] == 5
    assert stages.time_stages(step, model, "cpu", steps=50, max_s=0.0)["stage_steps"] == stages.MIN_STEPS
    times = [out[f"stage_ms_{s}"] for s in STAGES]
    assert all(t > 0 for t in times)
    assert out["stage_residue_ms"] == pytest.approx(out["stage_total_ms"] - sum(times))
    assert abs(out["stage_residue_frac"]) < 0.5  # the 5% bar is a benchmark's (results/stages-cpu), not a test's


def test_stage_bounds_of_both_model_families():
    import resnet_impl
    from bench.core import stages

    for name in ("resnet50d", "resnetv2_50", "resnet20"):
        bounds = stages.stage_bounds(resnet_impl.create_model(name, device="meta"))
        assert bounds is not None and list(bounds)[0] == "stem" and list(bounds)[-1] == "head", name


def test_a_compiled_or_unhooked_step_gets_a_note_not_numbers():
    import torch

    from bench.core import stages

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))
    out = stages.time_stages(lambda: model(torch.zeros(1, 3, 8, 8)), model, "cpu", steps=2)
    assert set(out) == {"stage_note"}
    row = passes.StagePass().measure(type("L", (), {"case": type("C", (), {"compile": "default", "backend": "pytorch"})()})(), None)
    assert "torch.compile fuses" in row["stage_note"]


@pytest.mark.slow
def test_a_run_with_stages_records_them_and_the_peak(tmp_path, capsys):
    out = tmp_path / "r"
    argv = [a for a in TINY if a != "--no-stages"]
    assert main([*argv, "--layouts", "contiguous,channels_last", "--out", str(out), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    for r in rows:
        assert r["stage_note"] == "" and r["stage_steps"] > 0 and r["gmacs_per_s_layer1"] > 0
        assert 0 < r["stage_pass_s"] < r["case_s"]  # the pass's cost, part of the case's wall time
    env = json.loads((out / "run.json").read_text())["environment"]
    assert env["peak"]["fp32"]["matmul_gmacs_per_s"] > 0 and env["peak"]["copy_gb_per_s"] > 0
    assert main(["report", str(out)]) == 0
    assert "Time per stage" in capsys.readouterr().out


def test_stage_views_explain_a_variant_against_a_baseline():
    from bench.results import stages
    from bench.results.views import to_frame

    def row(model, stem, rest):
        r = {"model": model, "device": "cpu", "workload": "infer", "batch_size": 1, "image_size": 224,
             "layout": "contiguous", "precision": "fp32", "compile": "none", "status": "ok", "latency_ms_p50": 10.0}
        for s in STAGES:
            r[f"stage_ms_{s}"] = stem if s == "stem" else rest
            r[f"macs_{s}"] = 1e9
            r[f"params_{s}"] = 1e6
            r[f"activations_{s}"] = 1e6
        r["stage_total_ms"] = stem + 5 * rest + 0.1
        return r

    df = to_frame([row("resnet50", 1.0, 2.0), row("resnet50s", 3.0, 2.0)])
    (d,) = stages.stage_diff(df, "resnet50").to_dict("records")
    assert d["delta_ms"] == pytest.approx(2.0) and d["delta_stem_ms"] == pytest.approx(2.0)
    assert d["explained"].startswith("resnet50s vs resnet50: +2.00 ms, of which stem +2.00 ms")
    env = {"peak": {"fp32": {"matmul_gmacs_per_s": 100.0, "conv_gmacs_per_s": 80.0}, "copy_gb_per_s": 10.0}}
    long = stages.stage_long(df, env)
    stem = long[(long["model"] == "resnet50") & (long["stage"] == "stem")].iloc[0]
    assert stem["gmacs_per_s"] == pytest.approx(1000.0) and stem["peak_frac"] == pytest.approx(10.0)
    assert stem["intensity"] == pytest.approx(1e9 / (4 * 2e6))  # weights + outputs, 4 bytes each
