"""compare: ratios to the first run with CIs from raw samples, on runs with planted ratios;
environment differences; cases in one run only; files without samples; bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench.cli import main
from bench.errors import UserError
from bench.results.compare import Run, compare_runs
from bench.store import rundir
from _cli import finish

ENV_A = {"device": "cuda", "device_name": "GPU A", "torch": "2.14.1", "cudnn": 91000, "threads": 8,
         "cpu_model": "CPU X", "cuda": "13.0", "cpu_count": 16, "time_utc": "2030-01-01T00:00:00+00:00"}
ENV_B = {**ENV_A, "device_name": "GPU B", "torch": "2.15.0", "cudnn": 92000}


def case_row(model, ms_samples, *, layout="contiguous", bs=1, status="ok", **kw):
    x = np.asarray(ms_samples, dtype=float)
    r = {"model": model, "device": "cuda", "workload": "infer", "batch_size": bs, "image_size": 224,
         "layout": layout, "precision": "fp32", "compile": "none", "status": status, "error": "",
         "latency_ms_p50": float(np.median(x)) if x.size else None, "samples_ms": [float(v) for v in x],
         "noisy": False, "steady": True}
    r.update(kw)
    return r


def planted(seed: int, ratio: float, n: int = 120, ms: float = 5.0, sigma: float = 0.03):
    """Two independent draws of one log-normal latency distribution, the second scaled by `ratio`."""
    rng = np.random.default_rng(seed)
    return ms * rng.lognormal(0, sigma, n), ratio * ms * rng.lognormal(0, sigma, n)


def test_a_planted_ratio_of_1_10_lies_in_the_ci():
    a, b = planted(0, 1.10)
    cmp = compare_runs([Run("A", [case_row("resnet50", a)], ENV_A), Run("B", [case_row("resnet50", b)], ENV_A)])
    (c,) = cmp.cases
    assert c["ci_low"] <= 1.10 <= c["ci_high"]
    assert c["ci_low"] > 1.0 and c["change"] == "slower"  # 10% is far outside this noise
    assert c["method"] == "hodges-lehmann" and c["n_base"] == c["n"] == 120
    assert c["ratio"] == pytest.approx(1.10, abs=0.02)


def test_ci_coverage_over_many_planted_runs():
    """A 95% interval should hold the planted ratio in about 95% of independent runs."""
    hits = 0
    for seed in range(40):
        a, b = planted(seed, 1.10, n=60, sigma=0.05)
        (c,) = compare_runs([Run("A", [case_row("m", a)]), Run("B", [case_row("m", b)])]).cases
        hits += c["ci_low"] <= 1.10 <= c["ci_high"]
    assert hits >= 34  # P(Binomial(40, 0.95) < 34) < 1%


def test_no_change_is_not_called_a_change():
    a, b = planted(3, 1.0)
    (c,) = compare_runs([Run("A", [case_row("m", a)]), Run("B", [case_row("m", b)])]).cases
    assert c["ci_low"] <= 1.0 <= c["ci_high"] and c["change"] == "no significant change"


def test_three_runs_each_against_the_first_and_cases_in_one_run_listed():
    a, b = planted(1, 1.10)
    _, c = planted(2, 0.80)
    runs = [Run("A", [case_row("m", a), case_row("only_a", a)]),
            Run("B", [case_row("m", b), case_row("only_b", b)]),
            Run("C", [case_row("m", c)])]
    cmp = compare_runs(runs)
    got = {x["run"]: x for x in cmp.cases}
    assert set(got) == {"B", "C"} and got["C"]["change"] == "faster"
    assert got["C"]["ci_low"] <= 0.80 <= got["C"]["ci_high"]
    only = {o["model"]: o["runs"] for o in cmp.only_in}
    assert only == {"only_a": ["A"], "only_b": ["B"]}


def test_mismatched_environments_are_listed():
    a, b = planted(4, 1.0)
    cmp = compare_runs([Run("A", [case_row("m", a)], ENV_A), Run("B", [case_row("m", b)], ENV_B)])
    diff = {d["field"]: d["values"] for d in cmp.env_differences}
    assert diff == {"device_name": ["GPU A", "GPU B"], "torch": ["2.14.1", "2.15.0"], "cudnn": [91000, 92000]}


def test_environment_from_rows_when_the_file_keeps_none():
    rows_a = [case_row("m", [1.0, 1.1], threads=1, torch="2.14.1")]
    rows_b = [case_row("m", [1.0, 1.1], threads=2, torch="2.14.1")]
    cmp = compare_runs([Run("a.csv", rows_a), Run("b.csv", rows_b)])
    assert {d["field"] for d in cmp.env_differences} == {"threads"}
    cmp = compare_runs([Run("run", rows_a, {"cpu_count": 2, "threads": 1}), Run("b.csv", rows_a)])
    assert cmp.env_differences == []  # a file that records no CPU count is unknown there, not different


def test_flagged_rows_and_failed_cases():
    a, b = planted(5, 1.0)
    runs = [Run("A", [case_row("m", a, noisy=True), case_row("n", a)]),
            Run("B", [case_row("m", b), case_row("n", [], status="oom")])]
    got = {c["model"]: c for c in compare_runs(runs).cases}
    assert got["m"]["base_flags"] == "noisy" and got["m"]["ratio"] is not None
    assert got["n"]["ratio"] is None and got["n"]["status"] == "not comparable: run oom"


def test_no_case_in_common_is_a_user_error():
    with pytest.raises(UserError, match="no case in common"):
        compare_runs([Run("A", [case_row("m", [1.0])]), Run("B", [case_row("n", [1.0])])])


# ---------------------------------------------------------------- the command
def write_run(path, rows, env):
    w = rundir.ResultsWriter.create(path, env, {"planned_cases": []}, "resnet-bench run --test", fingerprint="f")
    for r in rows:
        w.append(r)
    finish(w)
    return path


@pytest.fixture
def two_runs(tmp_path):
    a, b = planted(0, 1.10)
    ra = write_run(tmp_path / "a", [case_row("resnet50", a), case_row("resnet18", a / 3)], ENV_A)
    rb = write_run(tmp_path / "b", [case_row("resnet50", b), case_row("resnet34", b)], ENV_B)
    return ra, rb


def test_compare_command_formats(two_runs, capsys):
    ra, rb = two_runs
    assert main(["compare", str(ra), str(rb), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (c,) = doc["cases"]
    assert c["ci_low"] <= 1.10 <= c["ci_high"]
    assert {o["model"] for o in doc["only_in"]} == {"resnet18", "resnet34"}
    assert main(["compare", str(ra), str(rb), "--format", "csv"]) == 0
    csv = capsys.readouterr().out
    assert csv.count("\n") == 4 and "only in: " + str(ra) in csv  # header, the shared case, two listed
    assert main(["compare", str(ra), str(rb), "--format", "markdown"]) == 0
    md = capsys.readouterr().out
    assert "| torch | 2.14.1 | 2.15.0 | DIFFERS |" in md and "resnet34" in md
    assert main(["compare", str(ra), str(rb)]) == 0
    assert "GPU B" in capsys.readouterr().out


def test_compare_a_csv_without_samples_says_so(two_runs, capsys):
    ra, rb = two_runs
    assert main(["compare", str(ra), str(rb / "results.csv"), "--format", "json"]) == 0
    out = capsys.readouterr()
    (c,) = json.loads(out.out)["cases"]
    assert c["method"] == "medians" and c["ci_low"] is None and c["ratio"] == pytest.approx(1.10, abs=0.03)
    lines = [ln for ln in out.err.splitlines() if "no raw samples" in ln]
    assert len(lines) == 1 and "results.csv" in lines[0]


@pytest.mark.parametrize("make", ["missing", "disjoint", "one", "html_dir", "html_no_parent", "html_foreign"])
def test_compare_bad_input_is_one_line_and_exit_2(two_runs, tmp_path, capsys, make):
    ra, rb = two_runs
    argv = {"missing": [str(ra), str(tmp_path / "nope")],
            "disjoint": [str(ra), str(write_run(tmp_path / "c", [case_row("resnet152", [1.0])], ENV_A))],
            "one": [str(ra)],
            "html_dir": [str(ra), str(rb), "--html", str(tmp_path)],
            "html_no_parent": [str(ra), str(rb), "--html", str(tmp_path / "no" / "r.html")],
            "html_foreign": [str(ra), str(rb), "--html", str(ra / "results.md")]}[make]
    before = (ra / "results.md").read_bytes()
    assert main(["compare", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("resnet-bench: error:"), err
    assert (ra / "results.md").read_bytes() == before  # nothing the user had is overwritten


def test_compare_html_is_one_page_with_the_ratios(two_runs, tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="the HTML embeds a matplotlib figure")
    ra, rb = two_runs
    out = tmp_path / "cmp.html"
    assert main(["compare", str(ra), str(rb), "--html", str(out)]) == 0
    assert capsys.readouterr().out == ""
    text = out.read_text()
    assert "<script" not in text and text.count("data:image/png;base64,") == 1
    assert "GPU B" in text and "DIFFERS" in text and "Cases not in every run" in text
    assert "resnet50 infer bs1 224px contiguous/fp32/none cuda" in text
