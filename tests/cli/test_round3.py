"""The hostile-user probe, round 3 (issue 21), at the command line: the first things a user
types, text from names and files escaped for every output, outputs that are not ours never
replaced, OS errors as one line, a closed pipe ended quietly."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from _cli import FAST, REPO
from bench.cli import build_parser, main

TINY = ["run", "--models", "resnet18", "--batch-sizes", "1", "--image-sizes", "32", "--threads", "1",
        "--device", "cpu", "--layouts", "contiguous", "--precisions", "fp32", "--compile", "none", *FAST]
ESC = "\x1b"
HOSTILE = "=cmd|' /C calc'!A0 evil\x1b]0;pwned\x07\x1b[2J"


def commands() -> list[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "cmd")
    return list(sub.choices)


def test_the_top_level_help_and_every_commands_help_render(capsys):
    for argv in (["--help"], ["-h"], *([c, "--help"] for c in commands())):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 0, argv
        out = capsys.readouterr().out
        assert out.startswith("usage: resnet-bench"), argv
    assert main([]) == 2  # no command: the help, and the usage exit code
    assert "COMMAND" in capsys.readouterr().out


def test_help_in_a_real_process():
    p = subprocess.run([sys.executable, "-m", "bench", "--help"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert p.returncode == 0 and "run" in p.stdout and p.stderr == ""


def _plugin_env(tmp_path, source: str) -> dict:
    (tmp_path / "hostile_names.py").write_text(source)
    return dict(os.environ, RESNET_BENCH_PLUGINS="hostile_names",
                PYTHONPATH=os.pathsep.join([str(REPO), str(tmp_path)]))


PLUGIN = f"""
import resnet_impl
resnet_impl.register_model(resnet_impl.get_spec("resnet18").replace(name={HOSTILE!r}, description="a hostile name"))
"""


@pytest.mark.slow
def test_a_hostile_model_name_reaches_no_output_raw(tmp_path):
    env = _plugin_env(tmp_path, PLUGIN)
    out = tmp_path / "run"

    def cli(*args):
        p = subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True, env=env,
                           cwd=tmp_path, timeout=600)
        assert p.returncode == 0, p.stderr[-2000:]
        return p

    shown = [cli("run", "--models", HOSTILE, "--batch-sizes", "1", "--image-sizes", "32", "--threads", "1",
                 "--device", "cpu", "--layouts", "contiguous", "--precisions", "fp32", "--compile", "none",
                 "--out", str(out), *FAST)]
    shown += [cli("report", str(out)), cli("report", str(out), "--format", "markdown"),
              cli("compare", str(out), str(out))]
    for p in shown:
        assert ESC not in p.stdout and "\x07" not in p.stdout and ESC not in p.stderr, p.args
    assert "\\x1b" in shown[1].stdout  # shown, escaped
    csv_out = cli("report", str(out), "--format", "csv").stdout
    for text in (csv_out, (out / "results.csv").read_text()):
        cell = next(c for c in text.splitlines()[1].split(",") if "cmd|" in c)
        assert cell.lstrip('"').startswith("'="), cell  # a spreadsheet shows it, never runs it
    md = (out / "results.md").read_text()
    assert ESC not in md and "\\|" in md
    figs = tmp_path / "figs"
    cli("report", str(out), "--plots", str(figs), "--html", str(tmp_path / "r.html"))
    assert any(figs.iterdir())
    from bench.store.load import load_results

    assert load_results(out / "results.csv").rows[0]["model"] == HOSTILE  # our own CSV reads back exactly


def test_a_multi_line_plugin_error_is_one_line(tmp_path):
    env = _plugin_env(tmp_path, "raise RuntimeError('first line\\nsecond line\\nthird')")
    p = subprocess.run([sys.executable, "-m", "bench", "list"], capture_output=True, text=True, env=env,
                       cwd=tmp_path, timeout=120)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and "first line" in lines[0] and "third" in lines[0], p.stderr


def test_a_newline_in_out_keeps_every_message_on_one_line(tmp_path, capsys):
    out = tmp_path / "a\nb"
    assert main([*TINY, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    final = [ln for ln in err.splitlines() if ln.startswith("results:")]
    assert len(final) == 1 and "a\\nb" in final[0]


def test_an_empty_trace_names_its_own_flag(tmp_path, capsys):
    assert main([*TINY, "--out", str(tmp_path / "r"), "--trace", ""]) == 2
    assert "--trace must name a directory" in capsys.readouterr().err


def test_the_gate_refuses_to_overwrite_a_file_that_is_not_a_gate_result_before_measuring(tmp_path, capsys):
    notes = tmp_path / "my_notes.txt"
    notes.write_text("my notes")
    assert main(["check", "--speed", "--base-ref", "HEAD", "--out", str(notes), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "not written by resnet-bench" in err and notes.read_text() == "my notes"
    link = tmp_path / "gate.json"
    link.symlink_to(notes)
    assert main(["check", "--speed", "--base-ref", "HEAD", "--out", str(link), "--quiet"]) == 2
    assert "symbolic link" in capsys.readouterr().err and notes.read_text() == "my notes"


def test_os_errors_are_one_line_that_names_the_path(tmp_path, capsys, monkeypatch):
    import bench.store.load as load

    def denied(path):
        raise PermissionError(13, "Permission denied", str(tmp_path / "secret"))

    monkeypatch.setattr(load, "load_results", denied)  # what a directory the user cannot read gives
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"resnet-bench: error: {tmp_path / 'secret'}: Permission denied"


@pytest.mark.slow
def test_a_reader_that_closes_the_pipe_ends_the_command_quietly(tmp_path):
    out = tmp_path / "r"
    assert main([*TINY, "--out", str(out)]) == 0
    p = subprocess.Popen([sys.executable, "-m", "bench", "report", str(out)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, cwd=REPO)
    p.stdout.read(1)
    p.stdout.close()  # `| head -c 1`
    p.wait(timeout=120)
    assert p.returncode in (-13, 141), p.returncode  # SIGPIPE, as `cat` ends
    assert p.stderr.read() == b""


def test_address_auto_is_handed_to_ray_as_it_is(monkeypatch):
    from bench.execute import ray_executor

    class FakeServices:
        @staticmethod
        def canonicalize_bootstrap_address_or_die(address):
            return "10.9.8.7:6379"

    class Conn:
        def close(self):
            pass

    monkeypatch.setitem(sys.modules, "ray._private.services", FakeServices)
    monkeypatch.setattr(ray_executor.socket, "create_connection", lambda *a, **k: Conn())
    assert ray_executor.RayExecutor._reachable(None, "auto") == "auto"
    assert ray_executor.RayExecutor._reachable(None, "10.9.8.7:6379") == "10.9.8.7:6379"


def test_rows_jsonl_of_json_output_keeps_raw_columns(tmp_path, capsys):
    assert main([*TINY, "--out", str(tmp_path / "r"), "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["samples_ms"] and row["rounds"] == 1 and row["threads_rule"] == "1 = --threads"
