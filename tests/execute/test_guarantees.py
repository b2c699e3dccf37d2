"""What survives what (README "Guarantees"), each fault from a fresh process: a torn last line,
a second writer, back-off rows, a resume with a new timeout, --retry-failed, SIGTERM, a full
disk, and the current directory's modules. After each, rows.jsonl, the tables and `report`
agree, with no key twice."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time

import pytest

from _cli import FAST, REPO, consistent, env_with_plugins, run_cli
from bench.core.case import Case

PLUGIN = ("tests.fixtures.faulty",)
ONE_MODE = ["--layouts", "contiguous", "--compile", "none", "--precisions", "fp32", "--device", "cpu",
            "--threads", "1"]
TWO_ROWS = ["run", "--models", "resnet18", "--batch-sizes", "1", "--image-sizes", "32,40", *ONE_MODE, *FAST]


def planned(out) -> list[str]:
    return [Case.from_dict(c).key() for c in json.loads((out / "run.json").read_text())["settings"]["planned_cases"]]


@pytest.mark.slow
def test_a_torn_last_line_is_set_aside_and_the_case_measured_again(tmp_path):
    out = tmp_path / "run"
    assert run_cli(*TWO_ROWS, "--out", str(out)).returncode == 0
    log = out / "rows.jsonl"
    first, second = log.read_text().splitlines()
    log.write_text(first + "\n" + second[: len(second) // 2])  # a crash in the middle of the second write
    p = run_cli("run", "--resume", str(out), "--quiet")
    assert p.returncode == 0, p.stderr
    assert "cut off by a crash" in p.stderr and "1 case(s) measured, 1 to measure" in p.stderr
    rows = consistent(out)
    assert sorted(Case.from_row(r).key() for r in rows) == sorted(planned(out))
    # the torn bytes exactly, one line (the cut may end in a space: never strip it)
    assert (out / "rows.jsonl.torn").read_text() == second[: len(second) // 2] + "\n"
    p = run_cli("run", "--resume", str(out), "--quiet")  # a second resume finds everything done
    assert p.returncode == 0 and "2 case(s) measured, 0 to measure" in p.stderr
    consistent(out)


@pytest.mark.slow
def test_ok_reduced_rows_count_as_done_on_resume(tmp_path):
    out = tmp_path / "run"
    p = run_cli("run", "--models", "test_oom", "--batch-sizes", "8", "--image-sizes", "32", *ONE_MODE, "--oom-backoff",
                "--out", str(out), *FAST, plugins=PLUGIN)
    assert p.returncode == 0, p.stderr
    for _ in range(2):
        p = run_cli("run", "--resume", str(out), "--quiet", plugins=PLUGIN)
        assert p.returncode == 0 and "1 case(s) measured, 0 to measure" in p.stderr
    (row,) = consistent(out)
    assert row["status"] == "ok-reduced" and (row["batch_size_requested"], row["batch_size"]) == (8, 2)


def _start(args, plugins=()) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bench", *args], cwd=REPO, env=env_with_plugins(*plugins),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_rows(out, n: int, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = out / "rows.jsonl"
        if log.exists() and len(log.read_text().splitlines()) >= n:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    raise AssertionError("no rows in time")


@pytest.mark.slow
def test_a_second_writer_is_refused_while_a_run_holds_the_directory(tmp_path):
    out = tmp_path / "run"
    proc = _start(["run", "--models", "resnet18,test_hang", "--batch-sizes", "1", "--image-sizes", "32", *ONE_MODE,
                   "--out", str(out), *FAST], plugins=PLUGIN)
    try:
        _wait_rows(out, 1, proc)  # resnet18 done; the run now hangs in test_hang, holding the directory
        for argv in (["run", "--resume", str(out)], ["run", "--resume", str(out), "--case-timeout", "5"],
                     ["run", "--models", "resnet18", "--out", str(out), "--overwrite", *FAST]):
            p = run_cli(*argv, plugins=PLUGIN)
            assert p.returncode == 2 and "in use by another resnet-bench run (pid" in p.stderr, p.stderr
    finally:
        proc.kill()
        proc.communicate()
    (record,) = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    assert record["model"] == "resnet18"  # the log, the truth `report` reads, survived kill -9
    rep = run_cli("report", str(out), "--format", "json")
    assert rep.returncode == 0 and [r["model"] for r in json.loads(rep.stdout)] == ["resnet18"]


@pytest.mark.slow
def test_a_resume_may_set_a_case_timeout_and_retry_failed_cases(tmp_path):
    out = tmp_path / "run"
    flaky = tmp_path / "flaky-once"
    os.environ["RESNET_BENCH_FLAKY_FILE"] = str(flaky)  # read by every child started below
    proc = _start(["run", "--models", "resnet18,test_flaky,test_hang", "--batch-sizes", "1", "--image-sizes", "32",
                   *ONE_MODE, "--out", str(out), *FAST], plugins=PLUGIN)
    try:
        _wait_rows(out, 2, proc)  # resnet18 ok, test_flaky error (first try); now hanging, no timeout given
    finally:
        proc.kill()  # kill -9 while test_hang hangs
        proc.communicate()
    try:
        t0 = time.monotonic()
        p = run_cli("run", "--resume", str(out), "--case-timeout", "5", "--quiet", plugins=PLUGIN)
        assert p.returncode == 0, p.stderr
        assert time.monotonic() - t0 < 120  # the new timeout applied to the pending hang
        rows = {r["model"]: r for r in consistent(out)}
        assert rows["test_hang"]["status"] == "timeout" and "5 s" in rows["test_hang"]["error"]
        assert rows["test_flaky"]["status"] == "error"  # not retried without --retry-failed
        p = run_cli("run", "--resume", str(out), "--retry-failed", "--case-timeout", "10", "--quiet", plugins=PLUGIN)
        assert p.returncode == 0, p.stderr
        rows = {r["model"]: r for r in consistent(out)}
        # the transient failure is gone (10 s: the retried case profiles and measures within it on a busy CPU)
        assert rows["test_flaky"]["status"] == "ok", rows["test_flaky"]["error"]
        assert rows["test_hang"]["status"] == "timeout" and "10 s" in rows["test_hang"]["error"]
        assert sorted(Case.from_row(r).key() for r in rows.values()) == sorted(planned(out))
        retried = [json.loads(line) for line in (out / "retried.jsonl").read_text().splitlines()]
        assert {(r["model"], r["status"]) for r in retried} == {("test_flaky", "error"), ("test_hang", "timeout")}
    finally:
        os.environ.pop("RESNET_BENCH_FLAKY_FILE", None)


@pytest.mark.slow
def test_sigterm_keeps_every_row_and_resume_completes(tmp_path):
    out = tmp_path / "run"
    proc = _start(["run", "--models", "resnet18", "--image-sizes", "32,40,48", "--batch-sizes", "1", *ONE_MODE,
                   "--out", str(out), *FAST])
    _wait_rows(out, 1, proc)
    proc.terminate()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "terminated" in err and "--resume" in err and "Traceback" not in err
    consistent(out)
    assert run_cli("run", "--resume", str(out), "--quiet").returncode == 0
    assert sorted(Case.from_row(r).key() for r in consistent(out)) == sorted(planned(out))


def test_a_full_disk_is_one_line_and_the_rows_kept_stay_valid(tmp_path, monkeypatch, capsys):
    from bench.cli import main
    from bench.store import rundir

    real = rundir.ResultsWriter.append
    calls = {"n": 0}

    def append(self, row):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, row)

    monkeypatch.setattr(rundir.ResultsWriter, "append", append)
    out = tmp_path / "run"
    assert main([*TWO_ROWS, "--no-isolate", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err and "--resume" in err
    monkeypatch.setattr(rundir.ResultsWriter, "append", real)
    assert len(consistent(out)) == 1
    assert main(["run", "--resume", str(out), "--quiet"]) == 0
    assert len(consistent(out)) == 2


@pytest.mark.slow
def test_modules_in_the_current_directory_never_run(tmp_path):
    cwd = tmp_path / "here"
    cwd.mkdir()
    marker = tmp_path / "hijacked"
    for name in ("json", "torch", "numpy"):
        (cwd / f"{name}.py").write_text(f"open({str(marker)!r}, 'a').write({name!r})\nraise SystemExit(7)\n")
    out = tmp_path / "run"
    p = run_cli(*TWO_ROWS, "--out", str(out), cwd=cwd)  # `python -m bench` from that directory
    assert p.returncode == 0, p.stderr
    assert not marker.exists(), marker.read_text()
    assert {r["status"] for r in consistent(out)} == {"ok"}
