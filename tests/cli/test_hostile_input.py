"""Input a hostile new user gives: every class is one line on stderr with the right exit code
(2: bad input), nothing written, no markup eaten, nothing the user typed taken as rich markup."""

from __future__ import annotations

import json
import os
import stat
import sys

import pytest

from _cli import FAST, REPO
from bench.cli import main

TINY = ["run", "--models", "resnet18", "--batch-sizes", "1", "--image-sizes", "32", "--threads", "1",
        "--compile", "none", "--device", "cpu", *FAST]


def one_line_error(capsys, argv, code=2) -> str:
    assert main(argv) == code
    cap = capsys.readouterr()
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("resnet-bench: error:"), cap.err
    assert "Traceback" not in cap.err and cap.out == ""
    return lines[0]


# ---------------------------------------------------------------- bounded resources
def test_more_threads_than_cpus_is_refused(tmp_path, capsys):
    line = one_line_error(capsys, [*TINY, "--threads", "10000", "--out", str(tmp_path / "r")])
    assert "more than the" in line and not (tmp_path / "r").exists()


def test_a_case_that_cannot_fit_is_an_oom_row_at_once(tmp_path, capsys):
    t0 = __import__("time").monotonic()
    assert main([*TINY, "--image-sizes", "16000", "--no-isolate", "--format", "json", "--out", str(tmp_path / "r")]) == 0
    (row,) = [r for r in json.loads(capsys.readouterr().out) if r["image_size"] == 16000]
    assert row["status"] == "oom" and "estimated before running" in row["error"] and "--no-memory-check" in row["error"]
    assert __import__("time").monotonic() - t0 < 60


def test_the_memory_check_can_be_overridden(tmp_path, capsys, monkeypatch):
    from bench.core import devices

    monkeypatch.setattr(devices.CpuDevice, "free_memory_bytes", lambda self, device: 1 << 20)  # 1 MiB free
    assert main([*TINY, "--no-isolate", "--format", "json", "--out", str(tmp_path / "a")]) == 0
    assert json.loads(capsys.readouterr().out)[0]["status"] == "oom"
    assert main([*TINY, "--no-isolate", "--no-memory-check", "--format", "json", "--out", str(tmp_path / "b")]) == 0
    assert json.loads(capsys.readouterr().out)[0]["status"] == "ok"


def test_an_allocation_that_fails_at_once_is_oom():
    from bench.core import devices

    assert devices.is_oom(RuntimeError("[enforce fail at alloc_cpu.cpp:115] DefaultCPUAllocator: can't allocate "
                                       "memory: you tried to allocate 120000000000 bytes"))
    assert devices.is_oom(MemoryError())


# ---------------------------------------------------------------- no markup
def test_brackets_in_out_and_messages_are_text_not_markup(tmp_path, capsys):
    out = tmp_path / "exp[v2][/x]"
    assert main([*TINY, "--out", str(out)]) == 0
    cap = capsys.readouterr()
    assert str(out) in cap.err  # the results line names the directory exactly
    assert main(["run", "--resume", str(out)]) == 0
    assert f"resuming {out}" in capsys.readouterr().err
    assert main(["report", str(out)]) == 0


def test_error_text_and_model_names_render_literally():
    from rich.console import Console

    from bench.report import tables, terminal

    row = {"model": "evil[link=https://example.invalid]x[/link]", "status": "error", "device": "cpu",
           "error": "RuntimeError: [enforce fail at alloc_cpu.cpp:115] no", "workload": "infer"}
    con = Console(record=True, width=300)
    con.print(terminal.render(tables.results([row], busy=lambda r: False)))
    text = con.export_text()
    assert "evil[link=https://example.invalid]x[/link]" in text
    assert "[enforce fail" in tables.problems([row | {"batch_size": 1, "image_size": 32, "layout": "contiguous",
                                                      "precision": "fp32", "compile": "none"}], str)[0]


# ---------------------------------------------------------------- bad files: exit 2, not 1
def _results(tmp_path, **change):
    doc = {"format": "resnet-bench/results", "version": 1, "environment": {}, "settings": {}, "command": "",
           "rows": [{"model": "resnet18", "device": "cpu", "workload": "infer", "batch_size": 1, "image_size": 32,
                     "layout": "contiguous", "precision": "fp32", "compile": "none", "status": "ok"}]}
    doc.update(change)
    p = tmp_path / "results.json"
    p.write_text(json.dumps(doc))
    return p


@pytest.mark.parametrize("change,needle", [
    ({"rows": [{"model": 5, "device": "cpu", "workload": "infer", "batch_size": 1, "image_size": 32,
                "layout": "contiguous", "precision": "fp32", "compile": "none", "status": "ok"}]}, "model must be"),
    ({"rows": [{"model": "resnet18", "device": "cpu", "workload": "infer", "batch_size": "big", "image_size": 32,
                "layout": "contiguous", "precision": "fp32", "compile": "none", "status": "ok"}]}, "batch_size must"),
    ({"rows": [7]}, "row 1 is not an object"),
    ({"environment": [1, 2]}, "'environment' must be an object"),
    ({"settings": "x"}, "'settings' must be an object"),
], ids=["model int", "batch text", "row not object", "env list", "settings str"])
def test_results_with_wrong_types(tmp_path, capsys, change, needle):
    assert needle in one_line_error(capsys, ["report", str(_results(tmp_path, **change))])


def test_json_nested_too_deep(tmp_path, capsys):
    p = tmp_path / "deep.json"
    p.write_text("[" * 200_000 + "]" * 200_000)
    assert "nested too deeply" in one_line_error(capsys, ["report", str(p)])


def test_a_non_object_jsonl_line(tmp_path, capsys):
    p = tmp_path / "rows.jsonl"
    p.write_text('[1, 2]\n')
    assert "not an object" in one_line_error(capsys, ["report", str(p)])


def test_garbage_csv_prints_nothing_before_its_error(tmp_path, capsys):
    p = tmp_path / "results.csv"
    p.write_text("model,device,workload,batch_size,image_size,layout,precision,compile,status\n"
                 "resnet18,cpu,infer,many,32,contiguous,fp32,none,ok\n")
    assert "batch_size must be a whole number" in one_line_error(capsys, ["report", str(p)])


def test_a_resume_with_broken_planned_cases(tmp_path, capsys):
    out = tmp_path / "r"
    assert main([*TINY, "--out", str(out)]) == 0
    capsys.readouterr()
    doc = json.loads((out / "run.json").read_text())
    doc["settings"]["planned_cases"] = [{"model": "resnet18"}]
    (out / "run.json").write_text(json.dumps(doc))
    assert "planned cases or settings are unreadable" in one_line_error(capsys, ["run", "--resume", str(out)])


def test_an_edited_environment_is_refused_on_resume(tmp_path, capsys):
    out = tmp_path / "r"
    assert main([*TINY, "--out", str(out)]) == 0
    capsys.readouterr()
    doc = json.loads((out / "run.json").read_text())
    doc["environment"]["git_commit"] = "0123456789ab"  # the fingerprint says otherwise
    (out / "run.json").write_text(json.dumps(doc))
    assert "was edited" in one_line_error(capsys, ["run", "--resume", str(out)])


def test_resumed_rows_carry_the_environment_measured(tmp_path, capsys):
    import torch

    out = tmp_path / "r"
    assert main([*TINY, "--image-sizes", "32,40", "--out", str(out)]) == 0
    lines = (out / "rows.jsonl").read_text().splitlines()
    (out / "rows.jsonl").write_text(lines[0] + "\n")
    capsys.readouterr()
    assert main(["run", "--resume", str(out), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 2 and {r["torch"] for r in rows} == {torch.__version__}


@pytest.mark.parametrize("source,needle", [
    ("", None),  # a missing module is named below
    ("raise RuntimeError('plugin broke')", "plugin broke"),
    ("def broken(:\n", "SyntaxError"),
    ("import resnet_impl\nresnet_impl.register_model(resnet_impl.get_spec('resnet18'))", "already registered"),
    ("import sys\nsys.exit(3)", "called sys.exit(3)"),
], ids=["missing", "raises", "syntax error", "duplicate name", "sys.exit"])
def test_broken_plugins_are_one_line_exit_2(tmp_path, source, needle):
    name = "missing_plugin_xyz" if not source else "hostile_plugin"
    if source:
        (tmp_path / f"{name}.py").write_text(source)
    env = dict(os.environ, RESNET_BENCH_PLUGINS=name, PYTHONPATH=os.pathsep.join([str(REPO), str(tmp_path)]))
    import subprocess

    p = subprocess.run([sys.executable, "-m", "bench", "list"], capture_output=True, text=True, env=env,
                       cwd=tmp_path, timeout=120)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and lines[0].startswith("resnet-bench: error:"), p.stderr
    assert (needle or name) in lines[0]


def test_a_printing_plugin_does_not_break_json_stdout(tmp_path):
    (tmp_path / "chatty_plugin.py").write_text("print('hello from a plugin')\n")
    import subprocess

    env = dict(os.environ, RESNET_BENCH_PLUGINS="chatty_plugin",
               PYTHONPATH=os.pathsep.join([str(REPO), str(tmp_path)]))
    p = subprocess.run([sys.executable, "-m", "bench", "list", "--format", "json"], capture_output=True, text=True,
                       env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) and "hello from a plugin" in p.stderr


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS file systems refuse non-UTF-8 names themselves")
def test_a_non_utf8_out_is_refused_and_nothing_is_written(tmp_path, capsys):
    out = os.fsdecode(os.fsencode(str(tmp_path)) + b"/bad\xff")
    assert "not valid UTF-8" in one_line_error(capsys, [*TINY, "--out", out])
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------- not accepted without a word
@pytest.mark.parametrize("argv,needle", [
    (["--case-timeout", "nan"], "positive number of seconds"),
    (["--case-timeout", "inf"], "positive number of seconds"),
    (["--out", ""], "empty"),
    (["--models", ""], "no model given"),
    (["--batch-sizes", ""], "no batch size given"),
    (["--baseline-model", "nosuch"], "not among the models"),
])
def test_silently_accepted_before(tmp_path, capsys, argv, needle):
    base = [a for a in TINY]
    for flag in argv[::2]:  # the flag under test replaces TINY's own
        if flag in base:
            i = base.index(flag)
            del base[i:i + 2]
    if "--out" not in argv:
        argv = argv + ["--out", str(tmp_path / "r")]
    assert needle in one_line_error(capsys, base + argv)
    assert not (tmp_path / "r").exists()


def test_result_files_have_the_same_mode(tmp_path, capsys):
    out = tmp_path / "r"
    assert main([*TINY, "--out", str(out)]) == 0
    modes = {f: stat.S_IMODE(os.stat(out / f).st_mode) for f in ("rows.jsonl", "results.json", "results.csv",
                                                                  "results.md")}
    mask = os.umask(0o022)
    os.umask(mask)
    assert set(modes.values()) == {0o666 & ~mask}, modes


def test_report_sets_aside_a_repeated_record_and_warns_about_a_torn_line(tmp_path, capsys):
    out = tmp_path / "r"
    assert main([*TINY, "--out", str(out)]) == 0
    capsys.readouterr()
    log = out / "rows.jsonl"
    line = log.read_text().splitlines()[0]
    log.write_text(line + "\n" + line + "\n" + line[:20])
    before = log.read_bytes()
    assert main(["report", str(log), "--format", "json"]) == 0
    cap = capsys.readouterr()
    assert len(json.loads(cap.out)) == 1  # the repeated record is not taken in
    assert "1 record(s) set aside" in cap.err and "repeats the case and round" in cap.err
    assert "last line is incomplete" in cap.err
    assert log.read_bytes() == before  # report never writes
