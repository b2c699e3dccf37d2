"""`resnet-bench check`: the exact gate against the committed table, the speed gate's decision
rule on synthetic samples, and the speed gate end to end (--baseline, --base-ref) on a tiny case."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.cli import check as check_cli
from bench.core import stats
from bench.gates import exact, speed
from bench.cli import main
from bench.errors import UserError

REPO = Path(__file__).resolve().parents[2]
TINY = ["--image-sizes", "32", "--rounds", "3", "--max-time", "0.2", "--min-time", "0.2",
        "--max-warmup", "0.2", "--quiet"]


def run_main(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


# ---------------------------------------------------------------- exact gate
def test_exact_gate_passes_on_the_committed_table(capsys):
    rc, out, _ = run_main(capsys, "check", "--exact")
    assert rc == 0, out
    assert "exact gate: OK" in out


def test_committed_table_matches_published_numbers():
    # torchvision's Weights metadata (REFERENCE.md): num_params and _ops (GMACs, conv + linear)
    table = exact.read_table(exact.REFERENCE_TABLE)
    assert table["resnet50"]["params"] == 25_557_032
    assert round(table["resnet50"]["macs"] / 1e9, 3) == 4.089
    assert table["resnet18"]["params"] == 11_689_512
    assert table["resnet50"]["flops"] == 2 * table["resnet50"]["macs"] == table["resnet50"]["flop_counter_flops"]


def test_exact_gate_fails_with_a_readable_diff(tmp_path, capsys):
    lines = exact.REFERENCE_TABLE.read_text().splitlines()
    header = next(i for i, ln in enumerate(lines) if ln.startswith("model,"))
    edited = []
    for ln in lines:
        if ln.startswith("resnet50,"):
            cells = ln.split(",")
            cells[2] = str(int(cells[2]) + 1000)  # params
            ln = ",".join(cells)
        edited.append(ln)
    ghost = lines[header + 1].split(",")
    ghost[0] = "resnet_ghost"
    edited.append(",".join(ghost))
    table = tmp_path / "counts.csv"
    table.write_text("\n".join(edited) + "\n")
    rc, out, _ = run_main(capsys, "check", "--exact", "--table", str(table))
    assert rc == 1
    assert "resnet50: params 25,558,032 -> 25,557,032 (-1,000, -0.004%)" in out
    assert "resnet_ghost: removed (in the table, not registered)" in out
    assert "check --exact --update" in out
    assert exact.REFERENCE_TABLE.read_text().splitlines() == lines  # the real table is untouched


def test_changed_trace_is_recounted_with_fvcore(tmp_path, capsys):
    """A trace hash that differs triggers a real fvcore recount; equal counts pass with a note."""
    text = exact.REFERENCE_TABLE.read_text()
    row = next(ln for ln in text.splitlines() if ln.startswith("resnet18,"))
    table = tmp_path / "counts.csv"
    table.write_text(text.replace(row, row.rsplit(",", 1)[0] + "," + "0" * 64))
    rc, out, _ = run_main(capsys, "check", "--exact", "--table", str(table), "--models", "resnet18")
    assert rc == 0, out
    assert "resnet18: operator trace changed but every count is equal" in out


def test_update_writes_a_table_the_check_accepts(tmp_path, capsys):
    table = tmp_path / "t.csv"
    assert run_main(capsys, "check", "--exact", "--update", "--table", str(table), "--models", "resnet18")[0] == 0
    ref = exact.read_table(exact.REFERENCE_TABLE)["resnet18"]
    assert exact.read_table(table)["resnet18"] == ref


@pytest.mark.parametrize("content,needle", [
    (None, "no reference table"),
    ("model,params\nresnet18,1\n", "lacks column"),
    ("model,image_size,params,macs,flops,macs_all,activations,flop_counter_flops,trace_sha256\n"
     "resnet18,224,x,1,2,3,4,5,ab\n", "non-integer"),
])
def test_exact_gate_bad_table_is_a_one_line_error(tmp_path, capsys, content, needle):
    table = tmp_path / "t.csv"
    if content is not None:
        table.write_text(content)
    rc, _, err = run_main(capsys, "check", "--exact", "--table", str(table))
    assert rc == 2
    assert needle in err and err.count("\n") == 1


# ---------------------------------------------------------------- decision rule
def rounds(center: float, n: int = 8, spread: float = 0.01, seed: int = 0, per: int = 30) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    return [list(center * np.exp(rng.normal(0, spread, per) + rng.normal(0, spread))) for _ in range(n)]


def test_no_change_passes():
    c = speed.compare(rounds(10.0, seed=1), rounds(10.0, seed=2))
    assert c.unit == "rounds" and c.n_base == c.n_cand == 8
    assert not c.fails and c.verdict in ("no-change", "slower-within-threshold", "faster")
    assert c.ci_low < 1.0 < c.ci_high


def test_clear_10_percent_slowdown_fails():
    c = speed.compare(rounds(10.0, seed=1), rounds(11.0, seed=2))
    assert c.fails and c.verdict == "regression"
    assert 1.07 < c.ratio < 1.13 and c.ci_high > 1.05 and c.p_slower < 0.05


def test_speedup_passes():
    c = speed.compare(rounds(10.0, seed=1), rounds(9.0, seed=2))
    assert not c.fails and c.verdict == "faster" and c.ratio < 0.95


def test_slowdown_within_threshold_passes():
    c = speed.compare(rounds(10.0, seed=1, spread=0.002), rounds(10.15, seed=2, spread=0.002))
    assert c.p_slower < 0.05  # significant...
    assert not c.fails and c.verdict == "slower-within-threshold" and c.ci_high <= 1.05  # ...but under 5%


def test_one_bad_round_does_not_fail_the_gate():
    cand = rounds(10.0, seed=2)
    cand[3] = [v * 3 for v in cand[3]]  # a neighbour's job landed on one candidate process
    c = speed.compare(rounds(10.0, seed=1), cand)
    assert not c.fails


def test_hodges_lehmann_recovers_an_exact_ratio():
    base = [10.0, 10.5, 11.0, 9.8, 10.2, 10.9]
    ratio, lo, hi = stats.hodges_lehmann_ratio(base, [b * 1.1 for b in base])
    assert ratio == pytest.approx(1.1, rel=1e-9)
    assert lo <= 1.1 <= hi


def test_few_processes_fall_back_to_samples():
    c = speed.compare([[10.0, 10.1, 9.9, 10.05] * 10], rounds(10.0, n=2))
    assert c.unit == "samples" and c.rounds_slower is None


@pytest.mark.parametrize("text,value", [("5%", 0.05), ("0.05", 0.05), ("12.5%", 0.125), (" 1% ", 0.01)])
def test_threshold_parsing(text, value):
    assert check_cli.parse_threshold(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["5", "abc", "0", "-5%", "150%", "nan"])
def test_bad_threshold_is_refused(text):
    with pytest.raises(UserError):
        check_cli.parse_threshold(text)


# ---------------------------------------------------------------- speed gate, bad input
@pytest.mark.parametrize("argv,needle", [
    (["--threshold", "5"], "ambiguous"),
    (["--baseline", "/nonexistent/results.json"], "not found"),
    (["--base-ref", "no-such-ref-xyz"], "unknown git ref"),
    ([], "exactly one of --base-ref"),
    (["--base-ref", "HEAD", "--baseline", "x.json"], "exactly one of --base-ref"),
    (["--baseline", "x.json", "--rounds", "0"], "--rounds"),
    (["--baseline", "x.json", "--models", "resnet9000"], "unknown model"),
])
def test_speed_gate_bad_input_is_a_one_line_error(capsys, argv, needle):
    rc, _, err = run_main(capsys, "check", "--speed", *argv)
    assert rc == 2
    assert needle in err and err.count("\n") == 1, err


def test_corrupt_baseline_is_a_one_line_error(tmp_path, capsys):
    bad = tmp_path / "results.json"
    bad.write_text('{"benchmarks": [')
    rc, _, err = run_main(capsys, "check", "--speed", "--baseline", str(bad), *TINY)
    assert rc == 2 and "not valid JSON" in err and err.count("\n") == 1


def test_baseline_without_the_case_is_a_one_line_error(tmp_path, capsys):
    doc = saved_results([0.1] * 20, image_size=64)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(doc))
    rc, _, err = run_main(capsys, "check", "--speed", "--baseline", str(path), *TINY)
    assert rc == 2 and "no raw samples for resnet18 infer bs1 32px" in err


def test_gate_subcommand_flags_are_checked(capsys):
    assert run_main(capsys, "check")[0] == 2
    assert run_main(capsys, "check", "--exact", "--speed")[0] == 2
    assert run_main(capsys, "check", "--exact", "--base-ref", "HEAD")[0] == 2


# ---------------------------------------------------------------- speed gate, end to end
def saved_results(samples_ms: list[float], image_size: int = 32) -> dict:
    import torch

    from bench.core.env import cpu_model

    case = {"model": "resnet18", "device": "cpu", "workload": "infer", "batch_size": 1, "image_size": image_size,
            "layout": "contiguous", "precision": "fp32", "compile": "none"}
    return {"format": "resnet-bench/results", "version": 1,
            "environment": {"device": "cpu", "device_name": cpu_model(), "torch": torch.__version__},
            "settings": {}, "command": "synthetic", "rows": [{**case, "status": "ok", "samples_ms": samples_ms}]}


def test_speed_gate_against_saved_samples_end_to_end(tmp_path, capsys):
    """A saved baseline 100x faster than this machine: a certain, significant slowdown -> exit 1;
    raw samples of both sides land in --out; --recheck re-decides them without measuring."""
    base = tmp_path / "results.json"
    base.write_text(json.dumps(saved_results([0.05 + 0.001 * (i % 7) for i in range(40)])))
    out = tmp_path / "gate.json"
    rc, text, _ = run_main(capsys, "check", "--speed", "--baseline", str(base), "--out", str(out), *TINY)
    assert rc == 1, text
    assert "REGRESSION" in text and "speed gate: FAIL" in text
    doc = json.loads(out.read_text())
    entry = doc["cases"][0]
    assert doc["format"] == speed.SPEED_FORMAT and doc["exit_code"] == 1
    assert len(entry["base_rounds"]) == 1 and len(entry["base_rounds"][0]) == 40
    assert len(entry["candidate_rounds"]) == 3 and all(len(r) >= 5 for r in entry["candidate_rounds"])
    assert entry["comparison"]["unit"] == "samples" and entry["comparison"]["ratio"] > 10
    assert doc["settings"]["threads"] == 1
    rc, text, _ = run_main(capsys, "check", "--speed", "--recheck", str(out))
    assert rc == 1 and "REGRESSION" in text
    rc, text, _ = run_main(capsys, "check", "--speed", "--recheck", str(out), "--report-only")
    assert rc == 0 and "report only" in text


def _copy_checkout(dst: Path) -> Path:
    """This checkout's files (tracked and untracked, not ignored) committed in a fresh repo."""
    files = subprocess.run(["git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard"],
                           capture_output=True, text=True, check=True).stdout.split("\n")
    for f in files:
        if f and (REPO / f).is_file() and not f.startswith("results/"):
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, dst / f)
    for args in (["init", "-q"], ["add", "-A"],
                 ["-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-q", "-m", "base"]):
        subprocess.run(["git", "-C", str(dst), *args], check=True, capture_output=True)
    return dst


def _gate(cwd: Path, *argv: str) -> subprocess.CompletedProcess:
    from tests._cli import env_with_plugins

    env = env_with_plugins()
    env["PYTHONPATH"] = str(cwd)
    return subprocess.run([sys.executable, "-m", "bench", "check", "--speed", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_speed_gate_base_ref_head_end_to_end(tmp_path):
    repo = _copy_checkout(tmp_path / "repo")
    out = tmp_path / "gate.json"
    r = _gate(repo, "--base-ref", "HEAD", "--out", str(out), *TINY)
    assert r.returncode in (0, 1), r.stderr  # no code change: almost always 0, but it is a measurement
    assert "resnet18 infer bs1 32px contiguous/fp32/none cpu" in r.stdout
    doc = json.loads(out.read_text())
    entry = doc["cases"][0]
    assert doc["base"]["kind"] == "git" and len(doc["base"]["commit"]) == 40
    assert len(entry["base_rounds"]) == len(entry["candidate_rounds"]) == 3
    assert entry["comparison"]["unit"] == "rounds"
    worktrees = subprocess.run(["git", "-C", str(repo), "worktree", "list"], capture_output=True, text=True).stdout
    assert len(worktrees.strip().splitlines()) == 1  # the temporary worktree is gone


def test_report_only_survives_a_missing_base_ref(tmp_path):
    """CI's cheap report: HEAD~1 does not exist in a one-commit repo -> a line, exit 0."""
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "-C", str(repo), "init", "-q"], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.email=t@e.invalid", "-c", "user.name=t", "commit", "-q",
                    "--allow-empty", "-m", "only"], check=True)
    r = subprocess.run([sys.executable, "-m", "bench", "check", "--speed", "--base-ref", "HEAD~1", "--report-only",
                        *TINY], cwd=repo, env={**__import__("os").environ, "PYTHONPATH": str(REPO)},
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "skipped" in r.stdout and "unknown git ref" in r.stdout
    r = subprocess.run([sys.executable, "-m", "bench", "check", "--speed", "--base-ref", "HEAD", "--report-only",
                        *TINY], cwd=repo, env={**__import__("os").environ, "PYTHONPATH": str(REPO)},
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "has no bench/worker.py" in r.stdout
