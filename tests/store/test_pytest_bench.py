"""pytest-benchmark JSON -> our rows: a real `pytest tests/perf --benchmark-json` file round-trips
into rows with the case fields, raw samples and environment; `report` renders it;
`check --speed --baseline` accepts it; foreign or broken files are one-line errors."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli import main
from bench.errors import UserError
from bench.results.pytest_bench import rows_from_pytest_benchmark
from bench.store.load import load_results

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def perf_json(tmp_path_factory) -> Path:
    """A real pytest-benchmark run of tests/perf's 32 px case, kept short."""
    path = tmp_path_factory.mktemp("perf") / "perf.json"
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/perf", "-q", "-p", "no:cacheprovider", "-k", "32px",
         f"--benchmark-json={path}", "--benchmark-max-time=0.2", "--benchmark-min-rounds=5"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        # an xdist worker's variables would tell the inner pytest it is one too (no benchmarks)
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return path


def test_perf_json_round_trips_into_rows(perf_json):
    doc = json.loads(perf_json.read_text())
    bench = doc["benchmarks"][0]
    rs = load_results(perf_json)
    assert rs.source == "pytest-benchmark" and len(rs.rows) == 1
    row = rs.rows[0]
    assert {k: row[k] for k in ("model", "device", "workload", "batch_size", "image_size", "layout",
                                "precision", "compile")} == {
        "model": "resnet18", "device": "cpu", "workload": "infer", "batch_size": 1, "image_size": 32,
        "layout": "contiguous", "precision": "fp32", "compile": "none"}
    assert len(row["samples_ms"]) == bench["stats"]["rounds"] >= 5
    assert row["samples_ms"][0] == pytest.approx(bench["stats"]["data"][0] * 1e3)
    assert row["latency_ms_p50"] == pytest.approx(bench["stats"]["median"] * 1e3)
    assert row["latency_ms_min"] == pytest.approx(bench["stats"]["min"] * 1e3)
    assert row["status"] == "ok" and row["threads"] == 1


def test_machine_info_carries_device_and_versions(perf_json):
    import torch

    mi = json.loads(perf_json.read_text())["machine_info"]
    assert mi["torch"] == torch.__version__ and mi["device"] == "cpu" and mi["device_name"]
    env = load_results(perf_json).env
    assert env["torch"] == torch.__version__ and env["device_name"] == mi["device_name"]


def test_report_renders_pytest_benchmark_json(perf_json, capsys):
    assert main(["report", str(perf_json), "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("model,device,workload") and "resnet18,cpu,infer,1,32" in out


def test_speed_gate_accepts_pytest_benchmark_baseline(perf_json, capsys):
    rc = main(["check", "--speed", "--baseline", str(perf_json), "--image-sizes", "32", "--rounds", "1",
               "--max-time", "0.2", "--min-time", "0.2", "--max-warmup", "0.2", "--quiet", "--report-only"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "resnet18 infer bs1 32px contiguous/fp32/none cpu" in out and "warning" not in err


def test_stats_without_raw_data_still_give_medians(perf_json):
    doc = json.loads(perf_json.read_text())
    del doc["benchmarks"][0]["stats"]["data"]  # a --benchmark-save file without --benchmark-save-data
    rows, _ = rows_from_pytest_benchmark(doc, perf_json)
    assert "samples_ms" not in rows[0]
    assert rows[0]["latency_ms_p50"] == pytest.approx(doc["benchmarks"][0]["stats"]["median"] * 1e3)


@pytest.mark.parametrize("mutate,needle", [
    (lambda d: d["benchmarks"][0].pop("extra_info"), "holds no resnet-bench benchmarks"),
    (lambda d: d["benchmarks"][0].update(stats="broken"), "no 'stats' object"),
    (lambda d: d["benchmarks"][0]["stats"].update(data=["x"]), "unusable stats"),
    (lambda d: d.update(benchmarks={}), "'benchmarks' must be a list"),
])
def test_foreign_or_broken_files_are_user_errors(perf_json, tmp_path, capsys, mutate, needle):
    doc = copy.deepcopy(json.loads(perf_json.read_text()))
    mutate(doc)
    with pytest.raises(UserError, match=needle.replace("'", ".")):
        rows_from_pytest_benchmark(doc, perf_json)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    assert main(["report", str(bad)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
