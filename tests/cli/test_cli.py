"""The CLI end to end: a tiny sweep, JSON on stdout, re-rendering, and bad input
(one line on stderr, exit code 2, no traceback, nothing overwritten)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from _cli import FAST, run_cli
from bench.results import columns, files
from bench.store import load
from bench.cli import main

NO_COMPILE = ["--compile", "none", "--layouts", "contiguous"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """resnet18 at 32 and 48 px, two layouts, infer + train, one isolated worker."""
    out = tmp_path_factory.mktemp("cli") / "run"
    p = run_cli("run", "--models", "resnet18", "--image-sizes", "32,48", "--batch-sizes", "2",
                "--layouts", "contiguous,channels_last", "--compile", "none", "--workloads", "infer,train",
                "--device", "cpu", "--out", str(out), "--format", "json", *FAST)
    assert p.returncode == 0, p.stderr
    return out, p


def test_tiny_sweep_end_to_end(tiny_run):
    out, p = tiny_run
    rows = json.loads(p.stdout)  # stdout holds only JSON
    assert len(rows) == 2 * 2 * 2
    assert {r["status"] for r in rows} == {"ok"}, [r["error"] for r in rows]
    assert {(r["image_size"], r["layout"], r["workload"]) for r in rows} == {
        (s, lay, w) for s in (32, 48) for lay in ("contiguous", "channels_last") for w in ("infer", "train")}
    df = pd.read_csv(out / "results.csv")
    assert list(df.columns[: len(columns.stored())]) == columns.stored()
    assert (df["params"] == 11_689_512).all()
    assert str(out) in p.stderr  # says where the results went
    assert load.load_results(out).env["torch"] == torch.__version__


def test_report_rerenders(tiny_run, capsys):
    out, _ = tiny_run
    assert main(["report", str(out)]) == 0
    text = capsys.readouterr().out
    assert "resnet18" in text and "Best mode per variant" in text
    assert main(["report", str(out / "results.csv"), "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 8
    assert main(["report", str(out), "--format", "markdown"]) == 0
    assert "| resnet18" in capsys.readouterr().out


def test_list_and_profile(capsys):
    assert main(["list", "resnet50*", "--format", "json"]) == 0
    names = [r["name"] for r in json.loads(capsys.readouterr().out)]
    assert names == ["resnet50", "resnet50_cifar", "resnet50_v1", "resnet50c", "resnet50d", "resnet50s"]
    assert main(["profile", "resnet18", "--image-size", "64", "--format", "json"]) == 0
    prof = json.loads(capsys.readouterr().out)[0]
    assert prof["params"] == 11_689_512 and prof["flops"] == 2 * prof["macs"] and prof["counters_agree"]


@pytest.mark.parametrize("name,words", [
    ("resnet20", ("CIFAR-10", "option-A")), ("resnet18_cifar", ("CIFAR-10", "stride-1 stem")),
    ("resnetv2_50", ("pre-activation",)), ("resnet200d", ("deep stem", "avg-pool shortcut")),
])
def test_list_teaches_what_a_name_is(capsys, monkeypatch, name, words):
    monkeypatch.setenv("COLUMNS", "400")  # rich wraps at the terminal width; a wide console keeps the line whole
    assert main(["list", name]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.strip().startswith(name + " "))
    assert all(w in line for w in words), line


def test_profile_with_override_counts_the_overridden_variant(capsys):
    assert main(["profile", "resnet50", "--set", "stride_at=1x1", "--format", "json", "--image-size", "64"]) == 0
    v1 = json.loads(capsys.readouterr().out)[0]
    assert main(["profile", "resnet50_v1", "--format", "json", "--image-size", "64"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["macs"] == v1["macs"]


def _bad(tmp_path):
    out = tmp_path / "out"
    ckpt = tmp_path / "other.pth"
    import resnet_impl

    torch.save(resnet_impl.create_model("resnet34").state_dict(), ckpt)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00not a checkpoint")
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text('{"format": "resnet-bench/results", "rows": [')
    foreign = tmp_path / "foreign.json"
    foreign.write_text('{"name": "something else"}')
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    run = ["run", "--out", str(out), *FAST]
    return {
        "unknown model": (run + ["--models", "resnet5O"], "unknown model 'resnet5O'"),
        "pattern matches nothing": (run + ["--models", "vgg*"], "matches no registered model"),
        "batch size zero": (run + ["--models", "resnet18", "--batch-sizes", "0"], "positive integer"),
        "batch size text": (run + ["--models", "resnet18", "--batch-sizes", "eight"], "positive integer"),
        "image size too small": (run + ["--models", "resnet18", "--image-sizes", "16"], "at least 32"),
        "image size negative": (run + ["--models", "resnet18", "--image-sizes", "-64"], "positive integer"),
        "unknown compile mode": (run + ["--models", "resnet18", "--compile", "fast"], "valid: none, default"),
        "unknown precision": (run + ["--models", "resnet18", "--precisions", "fp8"], "valid: fp32, tf32"),
        "unknown layout": (run + ["--models", "resnet18", "--layouts", "nhwc"], "valid: contiguous, channels_last"),
        "unknown workload": (run + ["--models", "resnet18", "--workloads", "eval"], "valid: infer, train"),
        "unknown device": (run + ["--models", "resnet18", "--device", "tpu"], "unknown device"),
        "unknown preset": (run + ["--preset", "huge"], "unknown preset"),
        "unwritable out": (["run", "--models", "resnet18", "--out", str(blocker / "x"), *FAST], "cannot write"),
        "missing results": (["report", str(tmp_path / "nope.json")], "not found"),
        "corrupt results": (["report", str(corrupt)], "not valid JSON"),
        "foreign results": (["report", str(foreign)], "not a resnet-bench results file"),
        "missing checkpoint": (run + ["--models", "resnet18", "--weights", str(tmp_path / "no.pth")], "not found"),
        "garbage checkpoint": (run + ["--models", "resnet18", "--weights", str(garbage)], "cannot read checkpoint"),
        "mismatched checkpoint": (run + ["--models", "resnet18", "--weights", str(ckpt)], "layer"),
        "unknown override": (run + ["--models", "resnet18", "--set", "colour=red"], "valid fields"),
        "bad override value": (run + ["--models", "resnet50", "--set", "stem=tall"], "classic"),
        "override without =": (run + ["--models", "resnet50", "--set", "stem"], "KEY=VALUE"),
        "unknown flag": (["run", "--fast"], "unrecognized arguments: --fast"),
        "bad timeout": (run + ["--models", "resnet18", "--case-timeout", "-1"], "positive"),
        "bad threads": (run + ["--models", "resnet18", "--threads", "0"], "positive"),
        "resume missing": (["run", "--resume", str(tmp_path / "nothing")], "not found"),
    }


CASES = ["unknown model", "pattern matches nothing", "batch size zero", "batch size text", "image size too small",
         "image size negative", "unknown compile mode", "unknown precision", "unknown layout", "unknown workload",
         "unknown device", "unknown preset", "unwritable out", "missing results", "corrupt results",
         "foreign results", "missing checkpoint", "garbage checkpoint", "mismatched checkpoint",
         "unknown override", "bad override value", "override without =", "unknown flag", "bad timeout",
         "bad threads", "resume missing"]


@pytest.mark.parametrize("name", CASES)
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, name):
    argv, expected = _bad(tmp_path)[name]
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("resnet-bench: error:"), captured.err
    assert expected in lines[0]
    assert "Traceback" not in captured.err and captured.out == ""
    assert not (tmp_path / "out").exists()  # nothing written for a run that never started


def test_cuda_without_cuda(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["run", "--models", "resnet18", "--device", "cuda", "--out", str(tmp_path / "o")]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_existing_results_are_never_overwritten(tiny_run, capsys):
    out, _ = tiny_run
    before = {f: (out / f).read_bytes() for f in files.RESULT_FILES}
    assert main(["run", "--models", "resnet18", "--out", str(out), *FAST]) == 2
    assert "already holds results" in capsys.readouterr().err
    assert {f: (out / f).read_bytes() for f in files.RESULT_FILES} == before


def test_bad_input_in_a_real_process_has_no_traceback(tmp_path):
    p = run_cli("run", "--models", "resnet18", "--image-sizes", "31", "--out", str(tmp_path / "o"))
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip() == ("resnet-bench: error: image size 31 is below resnet18's total stride (32 px): its last "
                                 "stage would get no pixels; use at least 32")


def test_internal_error_is_one_line_unless_debug(monkeypatch, capsys):
    import bench.cli as cli

    def boom(args):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(cli.list_cmd, "run", boom)
    assert cli.main(["list"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: RuntimeError: kaboom" in err and "Traceback" not in err
    assert cli.main(["--debug", "list"]) == 1
    assert "Traceback" in capsys.readouterr().err
