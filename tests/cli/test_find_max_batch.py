"""`run --find-max-batch` and `run --trace` end to end on CPU: the search, the batch ladder,
the stamped rows, resume, the tables; bad flags are one line and exit 2."""

from __future__ import annotations

import json

import pytest

from _cli import FAST, run_cli
from bench.cli import main

BASE = ["run", "--image-sizes", "32", "--threads", "1", "--device", "cpu", "--compile", "none", *FAST]


def rows_of(out) -> list[dict]:
    return [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]


def test_find_max_batch_measures_the_ladder_up_to_the_planted_limit(tmp_path, faulty_models, capsys):
    out = tmp_path / "r"
    assert main([*BASE, "--models", "test_oom", "--find-max-batch", "--max-batch", "64", "--no-isolate",
                 "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "max-batch probe test_oom infer 32px contiguous/fp32/none cpu: batch 4 does not fit (oom in forward" in err
    assert "max batch test_oom infer 32px contiguous/fp32/none cpu: 2 (first not fitting: 3" in err
    rows = rows_of(out)
    assert [r["batch_size"] for r in rows] == [1, 2] and all(r["status"] == "ok" for r in rows)
    for r in rows:
        assert (r["max_batch_searched"], r["max_batch_fail"], r["max_batch_stop"]) == (2, 3, "bracketed")
        assert [p["batch"] for p in r["max_batch_probes"]] == [1, 2, 4, 3]
    header = (out / "results.csv").read_text().splitlines()[0].split(",")
    assert "max_batch_searched" in header and "max_batch_probes" not in header  # probes: JSON only
    md = (out / "results.md").read_text()
    assert "Throughput against batch" in md
    doc = json.loads((out / "results.json").read_text())
    assert [c["batch_size"] for c in doc["settings"]["planned_cases"]] == [1, 2]
    assert doc["settings"]["max_batch_search"]["options"]["max_batch"] == 64
    assert doc["settings"]["search"] is None  # the saved settings measure cases, they do not search

    # a resume measures what is missing and stamps it with the saved search
    (out / "rows.jsonl").write_text((out / "rows.jsonl").read_text().splitlines()[0] + "\n")
    assert main(["run", "--resume", str(out), "--quiet"]) == 0
    again = rows_of(out)
    assert [r["batch_size"] for r in again] == [1, 2] and again[1]["max_batch_searched"] == 2


def test_nothing_fits_is_an_oom_row_at_the_start_batch(tmp_path, capsys, monkeypatch):
    from bench.core import devices

    monkeypatch.setattr(devices.CpuDevice, "free_memory_bytes", lambda self, device: 1 << 20)  # 1 MiB free
    out = tmp_path / "r"
    assert main([*BASE, "--models", "resnet18", "--find-max-batch", "--no-isolate", "--out", str(out)]) == 0
    (row,) = rows_of(out)
    assert row["status"] == "oom" and row["batch_size"] == 1 and row["oom_phase"] == "estimate"
    assert row["max_batch_searched"] is None and row["max_batch_fail"] == 1


@pytest.mark.parametrize("flags,message", [
    (["--max-batch", "8"], "--max-batch go with --find-max-batch"),
    (["--find-max-batch", "--batch-sizes", "4"], "drop --batch-sizes"),
    (["--find-max-batch", "--max-batch", "0"], "--max-batch must be a positive integer"),
    (["--find-max-batch", "--mem-cap-mb", "-5"], "--mem-cap-mb must be a positive number"),
    (["--find-max-batch", "--max-batch-probes", "0"], "--max-batch-probes must be a positive integer"),
])
def test_bad_search_flags_are_one_line(tmp_path, capsys, flags, message):
    assert main([*BASE, "--models", "resnet18", "--out", str(tmp_path / "r"), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "r").exists()


def test_trace_refuses_a_directory_that_holds_files(tmp_path, capsys):
    t = tmp_path / "traces"
    t.mkdir()
    (t / "mine.json").write_text("{}")
    assert main([*BASE, "--models", "resnet18", "--batch-sizes", "1", "--out", str(tmp_path / "r"), "--trace",
                 str(t)]) == 2
    assert "already holds files" in capsys.readouterr().err
    assert (t / "mine.json").read_text() == "{}"


@pytest.mark.slow
def test_find_max_batch_and_trace_in_isolated_workers(tmp_path):
    out, traces = tmp_path / "r", tmp_path / "traces"
    # 64 px: at 32 px a training batch of 1 leaves BatchNorm one value per channel in layer4 (an error)
    p = run_cli(*BASE, "--image-sizes", "64", "--models", "test_oom_backward", "--workloads", "train",
                "--find-max-batch", "--max-batch", "16", "--out", str(out), "--trace", str(traces), "--format", "json", plugins=("tests.fixtures.faulty",))
    assert p.returncode == 0, p.stderr[-2000:]
    rows = json.loads(p.stdout)
    assert [r["batch_size"] for r in rows] == [1, 2]
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == 2 and all(r["max_batch_searched"] == 2 for r in rows)
    probes = rows[0]["max_batch_probes"]
    assert any("oom in backward" in p["why"] for p in probes)
    for r in ok:
        assert (traces / (r["trace_file"].rsplit("/", 1)[-1])).is_file()
