"""Rows -> files -> rows: CSV/JSON round trips, streaming writes, derived views, bad files."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from bench.results import columns, files, views
from bench.store import load, rundir
from bench.errors import UserError
from _cli import finish


def row(model="resnet50", layout="contiguous", precision="fp32", compile="none", p50=10.0, status="ok", **kw):
    r = {"model": model, "device": "cpu", "workload": "infer", "batch_size": 1, "image_size": 224,
         "layout": layout, "precision": precision, "compile": compile, "status": status, "error": "",
         "latency_ms_p50": p50, "throughput_ips": 1e3 / p50 if p50 else None, "macs": 4_089_184_256,
         "params": 25_557_032, "samples_ms": [p50, p50 * 1.01, p50 * 0.99] if p50 else []}
    r.update(kw)
    return r


ROWS = [row(), row(layout="channels_last", p50=8.0), row(layout="channels_last", compile="default", p50=5.0),
        row(model="resnet50d", p50=11.0), row(model="resnet50d", layout="channels_last", p50=8.8),
        row(model="resnet50", precision="fp16", p50=None, status="skipped", error="fp16 autocast needs CUDA")]
ENV = {"torch": "2.14.1", "device": "cpu", "device_name": "Test CPU", "threads": 2, "git_commit": "abc"}


def write(tmp_path, rows=ROWS, fp="fp1"):
    w = rundir.ResultsWriter.create(tmp_path / "run", ENV, {"planned_cases": []}, "resnet-bench run", fingerprint=fp)
    for r in rows:
        w.append(r)
    finish(w)
    return w


def test_header_is_fixed_whatever_the_first_row():
    a = views.to_frame([{"model": "x", "status": "skipped"}])
    b = views.to_frame(ROWS)
    assert list(a.columns)[: len(columns.stored())] == list(b.columns)[: len(columns.stored())] == columns.stored()
    assert "samples_ms" not in b.columns


def test_the_log_is_valid_after_every_record_and_the_answer_files_come_at_the_end(tmp_path):
    w = rundir.ResultsWriter.create(tmp_path / "run", ENV, {}, "cmd", fingerprint="f")
    assert json.loads((w.out / "run.json").read_text())["fingerprint"] == "f"
    for i, r in enumerate(ROWS, 1):
        w.append(r)
        assert len((w.out / "rows.jsonl").read_text().splitlines()) == i
        assert len(load.load_results(w.out).rows) == i  # readable at every moment
        assert not (w.out / "results.csv").exists()  # nothing rewritten per record: O(1) appends
    finish(w)
    assert len(pd.read_csv(w.out / "results.csv")) == len(ROWS)
    doc = json.loads((w.out / "results.json").read_text())
    assert len(doc["rows"]) == len(doc["records"]) == len(ROWS)


def test_csv_and_json_round_trip(tmp_path):
    w = write(tmp_path)
    for src in ("results.csv", "results.json", "rows.jsonl", ""):
        rs = load.load_results(w.out / src if src else w.out)
        df = rs.frame()
        assert len(df) == len(ROWS)
        got = df.set_index(["model", "layout", "precision", "compile"])["latency_ms_p50"]
        assert got[("resnet50", "channels_last", "fp32", "default")] == 5.0
        assert df["params"].iloc[0] == 25_557_032
    js = load.load_results(w.out / "results.json")
    assert js.env["device_name"] == "Test CPU"
    assert js.records[0]["samples_ms"] == [10.0, 10.1, 9.9]  # raw samples kept in JSON
    assert js.rows[0]["torch"] == "2.14.1"  # environment columns on every row


def test_json_has_no_nan(tmp_path):
    w = write(tmp_path, [row(latency_ms_p90=float("nan"))])
    assert "NaN" not in (w.out / "results.json").read_text()
    assert files.json_safe({"a": (1.0, math.inf)}) == {"a": [1.0, None]}


def test_speedup_and_best_mode_views():
    df = views.with_speedup(views.to_frame(ROWS))
    s = df.set_index(["model", "layout", "compile", "precision"])["speedup_vs_eager"]
    assert s[("resnet50", "contiguous", "none", "fp32")] == 1.0
    assert s[("resnet50", "channels_last", "default", "fp32")] == pytest.approx(2.0)
    assert s[("resnet50d", "channels_last", "none", "fp32")] == pytest.approx(11.0 / 8.8)
    assert pd.isna(s[("resnet50", "contiguous", "none", "fp16")])  # skipped rows get no speedup
    best = views.best_modes(views.to_frame(ROWS)).set_index("model")
    assert best.loc["resnet50", "compile"] == "default" and best.loc["resnet50", "speedup_vs_eager"] == pytest.approx(2)


def test_ratio_to_baseline():
    view = views.ratio_to_baseline(views.to_frame(ROWS), "resnet50")
    r = view.set_index(["model", "layout", "compile"])["latency_ratio_to_resnet50"]
    assert r[("resnet50d", "contiguous", "none")] == pytest.approx(1.1)
    assert r[("resnet50d", "channels_last", "none")] == pytest.approx(1.1)
    with pytest.raises(UserError, match="not in these results"):
        views.ratio_to_baseline(views.to_frame(ROWS), "resnet152")


def test_markdown_names_environment_and_command(tmp_path):
    md = (write(tmp_path).out / "results.md").read_text()
    assert "Test CPU" in md and "resnet-bench run" in md and "Best mode per variant" in md


def test_a_cut_last_line_is_dropped_not_fatal(tmp_path):
    w = write(tmp_path)
    with open(w.out / "rows.jsonl", "a") as f:
        f.write('{"model": "resnet50", "dev')  # killed mid-write
    assert len(load.load_results(w.out / "rows.jsonl").rows) == len(ROWS)


@pytest.mark.parametrize("content,match", [
    (None, "not found"),
    ("{not json", "not valid JSON"),
    ('{"hello": 1}', "not a resnet-bench results file"),
    ('[1, 2]', "not a resnet-bench results file"),
    ('{"format": "resnet-bench/results", "rows": [{"model": "x"}]}', "lacks column"),
])
def test_bad_results_files(tmp_path, content, match):
    p = tmp_path / "r.json"
    if content is not None:
        p.write_text(content)
    with pytest.raises(UserError, match=match):
        load.load_results(p)


def test_bad_csv(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(UserError, match="lacks column"):
        load.load_results(p)


def test_new_run_refuses_a_directory_with_results(tmp_path):
    w = write(tmp_path)
    before = (w.out / "results.csv").read_text()
    with pytest.raises(UserError, match="already holds results"):
        rundir.ResultsWriter.create(w.out, ENV, {}, "cmd", fingerprint="x")
    assert (w.out / "results.csv").read_text() == before


def test_resume_requires_the_same_fingerprint(tmp_path):
    w = write(tmp_path, fp="fp1")
    w.close()
    fingerprint = lambda env, settings: "fp1" if env["torch"] == "2.14.1" else "fp2"  # noqa: E731
    with pytest.raises(UserError, match="cannot resume"):
        rundir.ResultsWriter.resume(w.out, dict(ENV, torch="9.9"), "cmd", fingerprint=fingerprint)
    again = rundir.ResultsWriter.resume(w.out, ENV, "cmd", fingerprint=fingerprint)
    assert len(again.records) == len(ROWS)


def test_unwritable_output_directory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="cannot write|not a directory"):
        rundir.check_writable_dir(blocker / "sub", must_be_new=True)


@pytest.mark.parametrize("fmt", ["table", "json", "csv", "markdown"])
def test_results_written_before_the_layout_change_still_load_and_report(fmt, capsys):
    """results/quick-cpu-v0 was written by the flat bench/ of commit 77bc56e (re-measured later as
    results/quick-cpu, kept as data)."""
    from pathlib import Path

    from bench.cli import main

    run = Path(__file__).resolve().parents[2] / "results" / "quick-cpu-v0"
    rs = load.load_results(run)
    assert len(rs.rows) == 24 and rs.fingerprint and rs.settings["planned_cases"]
    assert load.load_results(run / "rows.jsonl").rows == rs.rows
    assert len(load.load_results(run / "results.csv").rows) == 24
    assert main(["report", str(run), "--format", fmt]) == 0
    out = capsys.readouterr().out
    assert "resnext50_32x4d" in out
