"""Data-parallel training throughput (bench.execute.ddp, ddp_worker): a 2-rank gloo case
gives one row with world_size 2 and each rank's step time; a rank that segfaults or hangs
becomes a crashed or timeout row, never a hang; the case key of results written before the
``ddp`` field existed is unchanged, and the scaling efficiency comes from the rows."""

from __future__ import annotations

import json
import platform
import signal
import time

import pytest

from _cli import FAST, REPO, consistent, run_cli
from bench.core import env as E
from bench.core.case import Case, Sweep
from bench.execute import ddp
from bench.execute.base import RunSettings
from bench.store.load import load_results

pytestmark = pytest.mark.serial  # 2 ranks x 1 thread within a 16 s case timeout on 2 cores

torch_dist = pytest.importorskip("torch.distributed")
needs_gloo = pytest.mark.skipif(not torch_dist.is_available() or not torch_dist.is_gloo_available(),
                                reason="torch.distributed with gloo is not available in this torch build")
# resnet20 (0.27 M parameters): gloo's all-reduce of resnet18's 47 MB of gradients would dominate
DDP_ARGS = ["--models", "resnet20", "--workloads", "train", "--batch-sizes", "2", "--image-sizes", "32",
            "--layouts", "contiguous", "--precisions", "fp32", "--compile", "none", "--device", "cpu",
            "--threads", "1", "--format", "json", *FAST]


@pytest.fixture(scope="module")
def ddp_sweep(tmp_path_factory):
    """One sweep, 2 ranks each: resnet20 (measured), a rank 1 that aborts, a rank 1 that hangs
    (--case-timeout 16 s); the rows by model, the output directory, the wall time, and the
    processes this test process had before."""
    import psutil

    before = {q.pid for q in psutil.Process().children(recursive=True)}
    out = tmp_path_factory.mktemp("ddp") / "run"
    t0 = time.monotonic()
    p = run_cli("run", *DDP_ARGS, "--models", "resnet20,test_abort_rank1,test_hang_rank1", "--ddp", "2",
                "--case-timeout", "16", "--out", str(out), plugins=("tests.fixtures.faulty",), timeout=400)
    assert p.returncode == 0, p.stderr
    return {r["model"]: r for r in json.loads(p.stdout)}, out, time.monotonic() - t0, before


@pytest.mark.slow
@needs_gloo
def test_a_two_rank_gloo_case_gives_one_row_with_world_size_and_per_rank_times(ddp_sweep):
    rows, out, _, _ = ddp_sweep
    row = rows["resnet20"]
    assert row["status"] == "ok", row["error"]
    assert row["ddp"] == 2 and row["world_size"] == 2 and row["batch_per_rank"] == 2
    assert row["ddp_backend"] == "gloo" and row["ddp_steps"] == 10
    ranks = row["rank_step_ms"]
    assert len(ranks) == 2 and all(t > 0 for t in ranks)
    assert row["rank_step_ms_max"] == max(ranks) and row["rank_step_ms_min"] == min(ranks)
    # a sample is the slowest rank's window time / K: never below any rank's own median step time
    assert row["latency_ms_p50"] >= min(ranks) * 0.999
    # images/s = world_size x batch_per_rank x K / max time of K steps = 2 x 2 / (median step s)
    assert row["throughput_ips"] == pytest.approx(2 * 2 / (row["latency_ms_p50"] / 1e3))
    assert row["n_samples"] >= 3 and len(row["samples_ms"]) == row["n_samples"]
    assert row["host"] == platform.node() and row["threads"] == 1
    assert row["params"] > 0  # rank 0 profiled the model
    assert Case.from_row(row).key().endswith("|2")  # a ddp case has its own key
    assert len(consistent(out)) == 3


@pytest.mark.slow
@needs_gloo
def test_a_crashed_or_stuck_rank_is_a_row_never_a_hang(ddp_sweep):
    import psutil

    rows, _, wall_s, before = ddp_sweep
    crashed, hung = rows["test_abort_rank1"], rows["test_hang_rank1"]
    assert crashed["status"] == "crashed" and "rank 1" in crashed["error"] and "SIGABRT" in crashed["error"], crashed
    # the waiting rank's collective timed out (half the case timeout), or the launch was killed at it
    assert hung["status"] == "timeout" and ("16 s" in hung["error"] or "timed out" in hung["error"].lower()), hung
    assert wall_s < 300  # the hang was cut at its limit
    left = [q for q in psutil.Process().children(recursive=True) if q.pid not in before]
    assert not left, [q.cmdline() for q in left]  # launchers and ranks are gone


def test_the_row_of_a_launch_comes_from_what_the_ranks_left(tmp_path):
    """bench.execute.ddp.outcome on planted rank files and torchrun summaries."""
    case = Case("resnet20", "train", 2, 32, "contiguous", "fp32", "none", "cpu", 2)
    summary = ("torch.distributed.elastic.multiprocessing.errors.ChildFailedError: \n"
               "============================================================\n"
               "bench.execute.ddp_worker FAILED\n------------------------------------------------------------\n"
               "Failures:\n[1]:\n  time      : 2026-01-01_00:00:01\n  host      : h\n  rank      : 0 (local_rank: 0)\n"
               "  exitcode  : 1 (pid: 11)\n  error_file: <N/A>\n  traceback : To enable traceback see: ...\n"
               "------------------------------------------------------------\n"
               "Root Cause (first observed failure):\n[0]:\n  time      : 2026-01-01_00:00:00\n  host      : h\n"
               "  rank      : 1 (local_rank: 1)\n  exitcode  : {code} (pid: 12)\n  error_file: <N/A>\n"
               "  traceback : {tb}\n============================================================\n")
    segv = summary.format(code=-11, tb="Signal 11 (SIGSEGV) received by PID 12")
    assert ddp.root_cause(segv) == {"rank": 1, "exitcode": -11, "pid": 12,
                                    "message": "Signal 11 (SIGSEGV) received by PID 12"}
    row = ddp.outcome(case, 1, tmp_path, segv)
    assert row["status"] == "crashed" and "rank 1 killed by signal SIGSEGV" in row["error"]
    # the peer's error seen first (same second): the rank killed by a signal is still the cause
    swapped = segv.replace("rank      : 0 (local_rank: 0)", "rank      : X").replace(
        "rank      : 1 (local_rank: 1)", "rank      : 0 (local_rank: 0)").replace("rank      : X", "rank      : 1")
    swapped = swapped.replace("exitcode  : 1 (pid: 11)", "exitcode  : -11 (pid: 11)").replace(
        "exitcode  : -11 (pid: 12)", "exitcode  : 1 (pid: 12)")
    assert ddp.root_cause(swapped)["rank"] == 0 and ddp.root_cause(swapped)["exitcode"] == 1
    assert "rank 1 killed by signal SIGSEGV" in ddp.outcome(case, 1, tmp_path, swapped)["error"]
    # ... unless torchrun itself signalled it while ending the ranks after rank 0 failed
    ended = "W1202 api.py:1028] Sending process 11 closing signal SIGTERM\n" + swapped.replace("-11 (pid", "-15 (pid")
    # rank 1 raised (it left its status): that status, even though rank 0 failed too
    (tmp_path / ddp.rank_file(1)).write_text(json.dumps({"status": "oom", "error": "CUDA out of memory", "time": 2}))
    (tmp_path / ddp.rank_file(0)).write_text(json.dumps({"status": "error", "error": "Connection closed", "time": 1}))
    row = ddp.outcome(case, 1, tmp_path, summary.format(code=1, tb="To enable traceback see: ..."))
    assert row["status"] == "oom" and row["error"] == "rank 1: CUDA out of memory"
    (tmp_path / ddp.rank_file(1)).unlink()  # only rank 0 left its status: a collective that timed out
    (tmp_path / ddp.rank_file(0)).write_text(json.dumps({"status": "timeout", "error": "Timed out waiting", "time": 1}))
    row = ddp.outcome(case, 1, tmp_path, ended)
    assert row["status"] == "timeout" and row["error"] == "rank 0: Timed out waiting"
    # no summary at all (the launcher itself died): crashed, with its exit
    row = ddp.outcome(case, -9, tmp_path / "nothing", "")
    assert row["status"] == "crashed" and "SIGKILL" in row["error"]
    # every rank finished: rank 0's row
    (tmp_path / ddp.ROW_FILE).write_text(json.dumps({"row": {"status": "ok", "x": 1}, "env": {"host": "h"}}))
    assert ddp.outcome(case, 0, tmp_path, "")["x"] == 1


def test_ddp_is_a_sweep_axis_of_train_cases_and_plain_keys_stay_as_they_were():
    sweep = Sweep(("resnet20",), (4,), (32,), (("contiguous", "fp32", "none"),), ("infer", "train"), "cpu",
                  ddp=(1, 2, 8))
    labels = [c.label() for c in sweep.cases()]
    assert labels == ["resnet20 infer bs4 32px contiguous/fp32/none cpu"] + [
        f"resnet20 train bs4 32px contiguous/fp32/none cpu ddp{n}" for n in (1, 2, 8)]
    plain = Case("resnet50", "infer", 1, 224, "contiguous", "fp32", "none", "cpu")
    assert plain.key() == "resnet50|infer|1|224|contiguous|fp32|none|cpu"  # the key before ddp existed
    assert Case.from_dict({k: v for k, v in plain.as_dict().items() if k != "ddp"}) == plain


@pytest.mark.parametrize("run", ["quick-cpu-v0", "cifar-cpu"])
def test_results_written_before_ddp_load_and_keep_their_keys_and_fingerprint(run):
    """Committed runs were written by code without ddp: their rows answer their planned cases and
    their stored fingerprint is still the one this code computes (so they still resume)."""
    doc = json.loads((REPO / "results" / run / "results.json").read_text())
    assert all("ddp" not in c for c in doc["settings"]["planned_cases"])
    rows = load_results(REPO / "results" / run).rows
    assert {Case.from_row(r).key() for r in rows} == {Case.from_dict(c).key() for c in doc["settings"]["planned_cases"]}
    saved = {k: v for k, v in doc["settings"].items() if k != "planned_cases"}
    assert E.fingerprint(doc["environment"], RunSettings.from_dict(saved).fingerprint_part()) == doc["fingerprint"]
    assert E.fingerprint(doc["environment"], RunSettings.from_dict(saved).fingerprint_part(),
                         E.scope_keys("host")) == doc["fingerprint"]
    rep = run_cli("report", str(REPO / "results" / run), "--format", "csv")
    assert rep.returncode == 0, rep.stderr
    header, *lines = rep.stdout.splitlines()
    assert len(lines) == len(rows) and "ddp" in header.split(",")  # the default filled in


def test_scaling_efficiency_is_throughput_over_world_size_times_the_one_rank_throughput():
    from bench.results import views

    base = {"model": "m", "device": "cuda", "workload": "train", "batch_size": 64, "image_size": 224,
            "layout": "channels_last", "precision": "bf16", "compile": "none", "status": "ok"}
    rows = [{**base, "ddp": 1, "world_size": 1, "throughput_ips": 1000.0},
            {**base, "ddp": 2, "world_size": 2, "throughput_ips": 1900.0},
            {**base, "ddp": 8, "world_size": 8, "throughput_ips": 7000.0},
            {**base, "ddp": 4, "world_size": 4, "throughput_ips": 10.0, "status": "crashed"},
            {**base, "precision": "fp32", "ddp": 2, "world_size": 2, "throughput_ips": 500.0},  # no ddp 1 measured
            {**base, "ddp": 0, "throughput_ips": 1100.0}]  # a plain train case
    df = views.with_scaling(views.to_frame(rows))
    eff = dict(zip(zip(df["precision"], df["ddp"]), df["scaling_efficiency"]))
    assert eff[("bf16", 1)] == pytest.approx(1.0)
    assert eff[("bf16", 2)] == pytest.approx(1900 / (2 * 1000))
    assert eff[("bf16", 8)] == pytest.approx(7000 / (8 * 1000))
    for key in (("bf16", 4), ("fp32", 2), ("bf16", 0)):
        assert eff[key] != eff[key]  # NaN: failed, or no one-rank row, or not data-parallel
    table = views.ddp_scaling(views.to_frame(rows))
    assert list(table["ddp"]) == [1, 2, 8, 4, 2]


def test_ddp_flags_are_checked_before_anything_runs(tmp_path, capsys):
    from bench.cli import main

    args = ["run", "--models", "resnet20", "--device", "cpu", "--out", str(tmp_path / "r")]
    assert main([*args, "--ddp", "2"]) == 2
    assert "add --workloads train" in capsys.readouterr().err
    assert main([*args, "--workloads", "train", "--ddp", "0"]) == 2
    assert "positive integer" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_signal_names_of_rank_deaths():
    assert ddp._signal(-signal.SIGABRT) == "killed by signal SIGABRT"


def test_a_data_parallel_case_is_never_measured_as_a_plain_one():
    from bench.execute.case_runner import CaseRunner

    row = CaseRunner(RunSettings()).run(Case("resnet20", "train", 2, 32, "contiguous", "fp32", "none", "cpu", 2))
    assert row["status"] == "error" and "bench.execute.ddp" in row["error"]
