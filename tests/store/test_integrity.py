"""What a run directory believes, round 3 of the hostile-user probe (issue 21): rows.jsonl is the
truth `report` reads; one integrity check sets aside repeated records, other runs' rows and
non-finite numbers (keeping the originals); a lost log is restored from results.json; nothing
is written through a link. In-process, on hand-written records (no measuring)."""

from __future__ import annotations

import json
import os

import pytest

from _cli import finish
from bench.cli import main
from bench.errors import UserError
from bench.results.files import META_FILE, ROWS_FILE
from bench.store import load, rundir

ENV = {"torch": "2.14.1", "torchvision": "0.29.1", "device": "cpu", "device_name": "Test CPU", "cpu_model": "Test CPU",
       "threads": 1, "git_commit": "abc", "host": "h1", "cpu_count": 2}
CASE = {"device": "cpu", "workload": "infer", "batch_size": 1, "image_size": 32, "layout": "contiguous",
        "precision": "fp32", "compile": "none"}


def record(model="resnet18", rnd=1, ms=10.0, **kw):
    r = {"model": model, **CASE, "status": "ok", "error": "", "latency_ms_p50": ms, "round": rnd,
         "samples_ms": [ms, ms * 1.01, ms * 0.99], **{k: ENV[k] for k in ("torch", "device_name", "threads",
                                                                           "git_commit", "host")}}
    r.update(kw)
    return r


def planned(*models):
    return {"planned_cases": [{"model": m, **CASE} for m in models]}


def fingerprint(env, settings):
    return "fp"


def make_run(tmp_path, records, models=("resnet18",), summary=True):
    w = rundir.ResultsWriter.create(tmp_path / "run", ENV, planned(*models), "resnet-bench run --test", fingerprint="fp")
    for r in records:
        w.append(r)
    if summary:
        finish(w)
    w.close()
    return w.out


def test_report_reads_the_log_even_when_results_json_lags(tmp_path, capsys):
    # a SIGKILL right after a record: rows.jsonl holds it, results.* were never written
    out = make_run(tmp_path, [record()], summary=False)
    assert not (out / "results.json").exists()
    assert main(["report", str(out), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in rows] == ["resnet18"]


def test_a_repeated_record_is_set_aside_not_counted(tmp_path, capsys):
    out = make_run(tmp_path, [record(), record(rnd=2, ms=10.2)])
    log = out / ROWS_FILE
    lines = log.read_text().splitlines()
    log.write_text("\n".join([lines[0], lines[0], lines[1]]) + "\n")
    rs = load.load_results(out)
    assert len(rs.records) == 2 and len(rs.rejected) == 1 and "repeats the case and round" in rs.rejected[0][1]
    assert rs.rows[0]["rounds"] == 2
    assert any("1 record(s) set aside" in n for n in rs.notes)


@pytest.mark.parametrize("change,needle", [
    ({"model": "resnet34"}, "not a case of this run"),
    ({"host": "elsewhere", "git_commit": "fff", "torch": "1.0"}, "measured elsewhere"),
])
def test_a_row_from_another_run_is_set_aside(tmp_path, change, needle):
    out = make_run(tmp_path, [record()])
    with open(out / ROWS_FILE, "a") as f:
        f.write(json.dumps(record(rnd=2, **change)) + "\n")
    rs = load.load_results(out)
    assert len(rs.records) == 1 and needle in rs.rejected[0][1]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_set_aside_while_reading(tmp_path, literal):
    out = make_run(tmp_path, [record()])
    bad = json.dumps(record(rnd=2)).replace('"latency_ms_p50": 10.0', f'"latency_ms_p50": {literal}')
    assert literal in bad
    with open(out / ROWS_FILE, "a") as f:
        f.write(bad + "\n")
    rs = load.load_results(out)
    assert len(rs.records) == 1 and literal in rs.rejected[0][1]


def test_resume_moves_what_the_check_refuses_and_keeps_the_original_lines(tmp_path):
    out = make_run(tmp_path, [record()])
    bad = json.dumps(record(rnd=2)).replace('"latency_ms_p50": 10.0', '"latency_ms_p50": NaN')
    dup = (out / ROWS_FILE).read_text().splitlines()[0]
    with open(out / ROWS_FILE, "a") as f:
        f.write(bad + "\n" + dup + "\n")
    notes = []
    w = rundir.ResultsWriter.resume(out, ENV, "cmd", fingerprint=fingerprint, notice=notes.append)
    w.close()
    assert [len(x) for x in (w.records,)] == [1] and any("2 record(s)" in n for n in notes)
    assert len((out / ROWS_FILE).read_text().splitlines()) == 1
    kept = [json.loads(line) for line in (out / rundir.REJECTED_FILE).read_text().splitlines()]
    assert {k["line"] for k in kept} == {bad, dup} and all(k["why"] for k in kept)


def test_a_lost_log_is_restored_from_results_json_before_anything_is_appended(tmp_path):
    out = make_run(tmp_path, [record(), record(rnd=2, ms=10.1)])
    (out / ROWS_FILE).unlink()
    notes = []
    w = rundir.ResultsWriter.resume(out, ENV, "cmd", fingerprint=fingerprint, notice=notes.append)
    w.append(record(rnd=3, ms=9.9))
    w.close()
    lines = [json.loads(x) for x in (out / ROWS_FILE).read_text().splitlines()]
    assert [x["round"] for x in lines] == [1, 2, 3]  # nothing dropped, nothing measured twice
    assert any("restored its 2 record(s)" in n for n in notes)


# ------------------------------------------------------------------ never through a link
@pytest.mark.parametrize("name", [".lock", ROWS_FILE, META_FILE])
def test_a_planted_link_in_a_new_run_directory_is_refused_and_its_target_untouched(tmp_path, name):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "run"
    out.mkdir()
    (out / name).symlink_to(victim)
    with pytest.raises(UserError, match="symbolic link|already holds results"):
        rundir.ResultsWriter.create(out, ENV, planned("resnet18"), "cmd", fingerprint="fp")
    assert victim.read_text() == "precious"


@pytest.mark.parametrize("name", [".lock", ROWS_FILE, "results.csv"])
def test_a_planted_link_in_a_run_being_resumed_is_refused_before_anything_is_written(tmp_path, name):
    out = make_run(tmp_path, [record()])
    victim = tmp_path / "victim.txt"
    victim.write_text("no newline at the end")
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    target = out / name
    if target.exists():
        target.unlink()
    target.symlink_to(victim)
    with pytest.raises(UserError, match="symbolic link"):
        rundir.ResultsWriter.resume(out, ENV, "cmd", fingerprint=fingerprint)
    assert victim.read_text() == "no newline at the end"
    assert not (out / (ROWS_FILE + ".torn")).exists()
    for f, data in before.items():
        if f != name:
            assert (out / f).read_bytes() == data


def test_overwrite_replaces_only_a_runs_files(tmp_path):
    out = tmp_path / "notes"
    out.mkdir()
    (out / "results.csv").write_text("my,own,table\n")
    with pytest.raises(UserError, match="did not write"):
        rundir.ResultsWriter.create(out, ENV, planned("resnet18"), "cmd", fingerprint="fp", overwrite=True)
    assert (out / "results.csv").read_text() == "my,own,table\n"


def test_a_failed_start_leaves_no_directory_or_lock_behind(tmp_path, monkeypatch):
    import bench.store.rundir as R

    def broken(self):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(R.ResultsWriter, "write_meta", broken)
    out = tmp_path / "new"
    with pytest.raises(OSError):
        rundir.ResultsWriter.create(out, ENV, planned("resnet18"), "cmd", fingerprint="fp")
    assert not out.exists()


# ------------------------------------------------------------------ reading what is not a file
def test_report_refuses_a_fifo_and_a_device_without_waiting(tmp_path, capsys):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    for path in (str(fifo), "/dev/zero"):
        assert main(["report", path]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "not a regular file" in err, err


def test_recheck_of_absurdly_nested_json_is_one_line(tmp_path, capsys):
    p = tmp_path / "gate.json"
    p.write_text("[" * 100_000 + "]" * 100_000)
    assert main(["check", "--speed", "--recheck", str(p)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nested too deeply" in err
