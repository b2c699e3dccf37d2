"""`resnet-bench validate`: the comparison logic on synthetic numbers, our timer against
torch.utils.benchmark.Timer on a deterministic workload, the torchvision comparison end to end
(tiny, eager), the outputs, and bad input (one line, exit 2).

The machine these run on is shared and noisy: timing assertions use workloads that do not
depend on CPU share (a wall-clock busy-wait) and generous margins; the bar itself (3%) is
tested on synthetic round medians, where the answer is known exactly."""

from __future__ import annotations

import math

import csv
import json
import time

import numpy as np
import pytest
import torch

from bench import validate as V
from bench.core import ratios
from bench.cli import main
from bench.core.timing import TimingConfig

pytestmark = pytest.mark.serial  # the harness must agree with Timer within 3% on a quiet CPU

TINY = ["--model", "resnet18", "--image-size", "32", "--rounds", "2", "--round-time", "0.1",
        "--warmup-time", "0.5", "--threads", "1", "--device", "cpu", "--quiet"]
FAST_RUNNER = TimingConfig(min_samples=3, max_time_s=0.2, min_time_s=0.0, warmup_max_s=0.5)


def busy_wait(ms: float):
    """A step that takes `ms` of wall time whatever the CPU share (it spins on the clock)."""
    ns = int(ms * 1e6)

    def step():
        end = time.perf_counter_ns() + ns
        while time.perf_counter_ns() < end:
            pass

    return step


# ---------------------------------------------------------------- the comparison, on known numbers
@pytest.mark.parametrize("ours,verdict", [(103.0, "pass"), (97.0, "pass"), (100.0, "pass"),
                                          (103.1, "fail"), (96.9, "fail"), (150.0, "fail")])
def test_ratio_and_threshold(ours, verdict):
    c = V.compare_rounds([ours] * 5, [100.0] * 5)
    assert c.ratio == pytest.approx(ours / 100.0)
    assert c.verdict == verdict
    assert c.ci_low == pytest.approx(c.ratio) and c.ci_high == pytest.approx(c.ratio)  # no spread
    assert c.reason == ("inside" if verdict == "pass" else "outside")
    assert c.cand_spread == 0 and c.base_spread == 0 and c.n_cand == 5


def test_ratio_is_the_geometric_mean_of_paired_round_ratios():
    # per-round ratios 0.5, 0.537, 2.38, 0.49, 0.111; sides' medians 10 and 20
    ours, ref = [10.0, 10.2, 50.0, 9.8, 10.0], [20.0, 19.0, 21.0, 20.0, 90.0]
    c = V.compare_rounds(ours, ref)
    assert c.cand_median_ms == 10.0 and c.base_median_ms == 20.0 and c.ratio_of_medians == pytest.approx(0.5)
    logs = np.log(np.array(ours) / np.array(ref))
    assert c.ratio == pytest.approx(math.exp(logs.mean()))
    half = 2.7764451051977987 * logs.std(ddof=1) / math.sqrt(5)  # t(0.975, 4)
    assert (c.ci_low, c.ci_high) == pytest.approx((math.exp(logs.mean() - half), math.exp(logs.mean() + half)))
    assert c.verdict == "fail" and c.reason == "straddles"  # one wild round makes the interval honest, not narrow


def test_pairing_cancels_a_step_change_of_the_machine():
    # both sides get faster mid-run, ours one round earlier (seen on this machine): the paired
    # ratio stays 1, the ratio of the sides' medians does not
    ours = [73.0, 73.0, 73.0, 59.0, 59.0, 59.0, 59.0]
    ref = [73.0, 73.0, 73.0, 73.0, 59.0, 59.0, 59.0]
    c = V.compare_rounds(ours, ref)
    assert c.ratio_of_medians == pytest.approx(59 / 73)  # unpaired: 19% off
    assert c.ratio == pytest.approx((59 / 73) ** (1 / 7)) and c.verdict == "pass"  # paired: 3% off, within the band
    assert c.reason == "straddles"  # and the odd round widens the interval


def test_ci_straddles_when_rounds_disagree():
    c = V.compare_rounds([100.0, 108.0, 95.0, 101.0], [100.0, 99.0, 101.0, 100.0])
    assert c.verdict == "pass" and c.reason == "straddles"
    assert c.ci_low < 0.97 < c.ratio < 1.03 < c.ci_high


@pytest.mark.parametrize("a,b", [([], []), ([1.0], [1.0, 2.0]), ([0.0], [1.0]), ([float("nan")], [1.0])])
def test_compare_rounds_rejects_bad_input(a, b):
    with pytest.raises(ValueError):
        V.compare_rounds(a, b)


def test_interleave_alternates_order():
    calls = []

    def side(name):
        return lambda: calls.append(name) or V.Round(1.0, (1.0,))

    a, b = V.interleave(side("A"), side("B"), 3)
    assert calls == ["A", "B", "B", "A", "A", "B"] and len(a) == len(b) == 3


# ---------------------------------------------------------------- our measure() vs Timer, for real
def test_measure_agrees_with_timer_on_a_deterministic_workload():
    # 20 ms: long enough that Timer times one call per block, as for a ResNet on CPU
    step = busy_wait(20.0)
    a, b = V.interleave(V.measure_round(step, "cpu", 0.2), V.timer_round(step, 1, 0.2), 3)
    row = V.comparison_row(a, b)
    assert row["ours_ms"] == pytest.approx(20.0, rel=0.05)
    assert row["ref_ms"] == pytest.approx(20.0, rel=0.05)
    assert row["ratio"] == pytest.approx(1.0, abs=0.03) and row["verdict"] == "pass"
    assert len(row["ours_rounds_ms"]) == len(row["ref_rounds_ms"]) == 3


def test_a_harness_that_adds_time_is_caught():
    # "ours" times a step 30% longer than the one Timer times: the check must fail
    a, b = V.interleave(V.measure_round(busy_wait(26.0), "cpu", 0.15), V.timer_round(busy_wait(20.0), 1, 0.15), 2)
    row = V.comparison_row(a, b)
    assert row["ratio"] == pytest.approx(1.3, abs=0.1)
    assert row["verdict"] == "fail"


def test_timer_gets_our_thread_count():
    # Timer's default is 1 thread; ours passes whatever we measure with (restored afterwards)
    seen = set()
    step = lambda: seen.add(torch.get_num_threads())  # noqa: E731
    before = torch.get_num_threads()
    for n in (2, 1):
        seen.clear()
        V.timer_round(step, n, 0.01)()
        assert seen == {n}
    assert torch.get_num_threads() == before


def test_harness_check_end_to_end_tiny():
    s = V.Settings(model="resnet18", image_size=32, threads=1, rounds=2, round_time_s=0.05, warmup_s=0.3,
                   runner_timing=FAST_RUNNER)
    rows = V.harness_check(s)
    assert [r["path"] for r in rows] == ["measure()", "CaseRunner.run"]
    for r in rows:
        assert r["status"] == "ok", r.get("error")
        assert set(V.HARNESS_COLUMNS) - {"error"} <= set(r)
        assert r["ratio_of_medians"] == pytest.approx(r["ours_ms"] / r["ref_ms"])
        assert r["ratio"] == pytest.approx(ratios.ratio_over_rounds(r["ours_rounds_ms"], r["ref_rounds_ms"]).ratio)
        assert r["verdict"] in ("pass", "fail") and r["threads"] == 1
        assert r["ours_samples"] >= 2 * 3 and r["ref_samples"] >= 2


# ---------------------------------------------------------------- resnet_impl vs torchvision
def test_pair_has_the_same_weights():
    ours, ref = V.build_pair("resnet18")
    sd_a, sd_b = ours.state_dict(), ref.state_dict()
    assert sd_a.keys() == sd_b.keys() and all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(ours(x), ref(x))


def test_mode_list_cpu_default_and_explicit():
    plan = V.mode_list("cpu")  # every mode this CPU can run
    assert len(plan) == 12 and {m[2] for m in plan} == {"none", "default", "max-autotune"}
    assert {m[1] for m in plan} == {"fp32", "bf16"} and {m[0] for m in plan} == {"contiguous", "channels_last"}
    assert V.mode_list("cpu", compiles=("max-autotune",), layouts=("contiguous",)) == [
        ("contiguous", "fp32", "max-autotune"), ("contiguous", "bf16", "max-autotune")]


def test_cpu_cannot_modes_are_skipped_rows():
    s = V.Settings(model="resnet18", image_size=32, threads=1, rounds=2)
    rows = V.torchvision_check(s, [("contiguous", "fp16", "none"), ("contiguous", "fp32", "reduce-overhead")])
    assert [r["status"] for r in rows] == ["skipped", "skipped"]
    assert all("CUDA" in r["error"] for r in rows)


@pytest.fixture(scope="module")
def tiny_torchvision(tmp_path_factory):
    out = tmp_path_factory.mktemp("validate")
    (out / "README.md").write_text("kept\n")
    (out / "harness.csv").write_text("stale\n")
    code = main(["validate", "--check", "torchvision", *TINY, "--layouts", "contiguous,channels_last",
                 "--precisions", "fp32", "--compile", "none", "--out", str(out), "--format", "json"])
    return out, code


def test_torchvision_check_end_to_end(tiny_torchvision, capsys):
    out, code = tiny_torchvision
    doc = json.loads((out / "validation.json").read_text())
    rows = doc["checks"]["torchvision"]
    assert [(r["layout"], r["precision"], r["compile"]) for r in rows] == [
        ("contiguous", "fp32", "none"), ("channels_last", "fp32", "none")]
    for r in rows:
        assert r["status"] == "ok", r.get("error")
        assert set(V.TORCHVISION_COLUMNS) - {"error"} <= set(r)
        assert r["max_abs_diff"] == 0.0  # same weights, same arithmetic: identical logits
        assert r["ratio_of_medians"] == pytest.approx(r["ours_ms"] / r["ref_ms"])
        assert r["ratio"] == pytest.approx(ratios.ratio_over_rounds(r["ours_rounds_ms"], r["ref_rounds_ms"]).ratio)
        assert r["reference"] == "torchvision.models.resnet18" and r["rounds"] == 2
        assert len(r["ours_round_samples_ms"]) == 2 and all(len(x) >= 3 for x in r["ours_round_samples_ms"])
        assert r["ours_faults_per_call"] >= 0 and r["ref_faults_per_call"] >= 0
    # exit code follows the verdicts (a noisy 2-round run may fail; the code must say so)
    assert code == (1 if any(r["verdict"] == "fail" for r in rows) else 0)
    assert doc["exit_code"] == code and doc["passed"] == (code == 0)
    assert doc["environment"]["torch"] == torch.__version__ and doc["settings"]["threads"] == 1
    assert len(doc["load_average"]["start"]) == 3 and doc["command"].startswith("resnet-bench")


def test_outputs_written(tiny_torchvision):
    out, _ = tiny_torchvision
    with open(out / "torchvision.csv") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == V.TORCHVISION_COLUMNS
        assert len(list(reader)) == 2
    assert not (out / "harness.csv").exists()  # stale file of a check not run: removed
    assert (out / "README.md").read_text() == "kept\n"  # not ours: left alone
    md = (out / "validation.md").read_text()
    assert "torchvision ms" in md and "| channels_last | fp32 | none |" in md and "Load average" in md


def test_table_format_prints_rich_tables(tmp_path, capsys):
    code = main(["validate", "--check", "torchvision", *TINY, "--layouts", "contiguous", "--precisions", "fp32",
                 "--compile", "none", "--out", str(tmp_path)])
    text = capsys.readouterr().out
    assert code in (0, 1)
    assert "resnet_impl vs torchvision" in text and "validate: " in text


def test_oversubscription_warning():
    assert V.oversubscription_warning(2, 2, 3.0) and "--threads 1" in V.oversubscription_warning(2, 2, 3.0)
    assert V.oversubscription_warning(2, 2, 0.1) is None
    assert V.oversubscription_warning(1, 2, 3.0) is None


@pytest.mark.slow
def test_compiled_mode_tiny():
    s = V.Settings(model="resnet18", image_size=32, threads=1, rounds=2, round_time_s=0.05, warmup_s=0.5)
    (row,) = V.torchvision_check(s, [("contiguous", "fp32", "default")])
    assert row["status"] == "ok", row.get("error")
    assert row["max_abs_diff"] <= 1e-4 and row["ours_first_call_s"] > 0.5  # compile happened
    assert row["verdict"] in ("pass", "fail")


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("argv", [
    ["--rounds", "1"], ["--rounds", "x"], ["--check", "speed"], ["--check", ""], ["--image-size", "16"],
    ["--batch-size", "0"], ["--threads", "0"], ["--model", "nope"], ["--model", "resnet50*"],
    ["--model", "resnet50d"], ["--round-time", "0"], ["--round-time", "nan"], ["--warmup-time", "-1"],
    ["--layouts", "diagonal"], ["--precisions", "fp8"], ["--compile", "fast"], ["--format", "xml"],
    ["--device", "tpu"], ["--bogus"],
])
def test_bad_input_one_line_exit_2(argv, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["validate", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("resnet-bench: error:") and "\n" not in err
    assert not out.exists()  # nothing measured, nothing written


def test_out_is_a_file(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["validate", "--out", str(f)]) == 2
    assert "not a directory" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda(tmp_path, capsys):
    assert main(["validate", "--device", "cuda", "--out", str(tmp_path / "o")]) == 2
    assert "CUDA is not available" in capsys.readouterr().err
