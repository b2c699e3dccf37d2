"""Sweeps that survive faults: a crashing, a hanging, an OOM and a failing model each become
a row with its status while the sweep goes on; a killed sweep resumes to completion with every
case exactly once. Test-only models come from tests/fixtures/faulty.py."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from _cli import FAST, REPO, consistent, env_with_plugins, run_cli
from bench.store import load, rundir
from bench.core.case import Case

PLUGIN = ("tests.fixtures.faulty",)
ONE_MODE = ["--layouts", "contiguous", "--compile", "none", "--precisions", "fp32", "--device", "cpu"]


@pytest.mark.slow
def test_crash_hang_oom_error_each_get_their_status_and_the_sweep_goes_on(tmp_path):
    out = tmp_path / "run"
    t0 = time.monotonic()
    p = run_cli("run", "--models", "test_abort,test_hang,test_oom,test_error,resnet18", "--batch-sizes", "4",
                "--image-sizes", "32", *ONE_MODE, "--case-timeout", "10", "--out", str(out),
                "--format", "json", *FAST, plugins=PLUGIN)
    assert p.returncode == 0, p.stderr
    assert time.monotonic() - t0 < 240  # the hang was cut at its limit
    rows = {r["model"]: r for r in json.loads(p.stdout)}
    assert rows["test_abort"]["status"] == "crashed" and "SIGABRT" in rows["test_abort"]["error"]
    assert rows["test_hang"]["status"] == "timeout" and "10 s" in rows["test_hang"]["error"]
    assert rows["test_oom"]["status"] == "oom" and "out of memory" in rows["test_oom"]["error"]
    assert rows["test_oom"]["batch_size"] == 4  # never silently reduced
    assert rows["test_error"]["status"] == "error" and "deliberate failure" in rows["test_error"]["error"]
    assert rows["resnet18"]["status"] == "ok"  # the models after the faults were measured
    assert len(consistent(out)) == 5


@pytest.mark.slow
def test_oom_backoff_in_an_isolated_worker(tmp_path):
    p = run_cli("run", "--models", "test_oom", "--batch-sizes", "8", "--image-sizes", "32", *ONE_MODE,
                "--oom-backoff", "--out", str(tmp_path / "r"), "--format", "json", *FAST, plugins=PLUGIN)
    (row,) = json.loads(p.stdout)
    assert row["status"] == "ok-reduced" and row["batch_size_requested"] == 8 and row["batch_size"] == 2


def _planned(out) -> list[str]:
    doc = json.loads((out / "run.json").read_text())
    return [Case.from_dict(c).key() for c in doc["settings"]["planned_cases"]]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill"])
def test_killed_sweep_resumes_with_every_case_exactly_once(tmp_path, sig):
    out = tmp_path / "run"
    args = ["run", "--models", "resnet18", "--image-sizes", "32,40,48", "--batch-sizes", "2",
            "--layouts", "contiguous,channels_last", "--compile", "none", "--device", "cpu",
            "--out", str(out), *FAST]
    proc = subprocess.Popen([sys.executable, "-m", "bench", *args], cwd=REPO, env=env_with_plugins(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = out / "rows.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if log.exists() and len(log.read_text().splitlines()) >= 2:
            break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and "--resume" in err and "Traceback" not in err
    partial = load.load_results(out)  # the log and run.json are valid whenever the run dies
    if sig == signal.SIGINT:  # an interrupted session writes the answer files from what it kept
        assert len(pd.read_csv(out / "results.csv")) == len(partial.rows)
    n_before = len(load.load_results(log).rows)
    assert 2 <= n_before < 6

    p = run_cli("run", "--resume", str(out), "--quiet")
    assert p.returncode == 0, p.stderr
    assert f"{n_before} case(s) measured" in p.stderr
    keys = [Case.from_dict(r).key() for r in load.load_results(log).rows]
    assert sorted(keys) == sorted(_planned(out)) and len(keys) == len(set(keys)) == 6
    assert len(pd.read_csv(out / "results.csv")) == 6
    assert {r["status"] for r in consistent(out)} == {"ok"}
    assert partial.rows  # the interrupted state was readable


def test_resume_refuses_sweep_flags_and_other_environments(tmp_path, capsys):
    from bench.cli import main

    w = rundir.ResultsWriter.create(tmp_path / "r", {"torch": "0.0-other"}, {"planned_cases": []}, "cmd",
                                     fingerprint="not-this-machine")
    w.close()
    assert main(["run", "--resume", str(w.out), "--models", "resnet18"]) == 2
    assert "drop the sweep flags" in capsys.readouterr().err
    assert main(["run", "--resume", str(w.out)]) == 2
    assert "cannot resume" in capsys.readouterr().err
