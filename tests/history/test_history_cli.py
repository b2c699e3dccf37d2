"""`db import`, `db info` and `history report` from the command line: idempotent imports, every
format of the report (table, Markdown, JSON, one self-contained HTML page) with text we did not
write escaped, and every bad input one line with exit 2."""

from __future__ import annotations

import json
import re

import pytest

from bench.cli import main
from tests.history._data import run_dir

HOSTILE = "evil<script>alert(1)</script>|$x^2$\x1b[31m"


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def filled(tmp_path, capsys):
    """A database of 12 commits of resnet18 with a +10% step at the 7th, and a hostile-named
    model's flat series, imported from run directories."""
    dirs = [run_dir(tmp_path / f"r{i}", f"{i:012x}", 20.0 * (1.10 if i >= 6 else 1.0), seed=i) for i in range(12)]
    dirs += [run_dir(tmp_path / f"h{i}", f"{i:012x}", 5.0, seed=50 + i, model=HOSTILE) for i in range(4)]
    path = tmp_path / "h.sqlite"
    rc, out, err = cli(capsys, "db", "import", *map(str, dirs), "--db", str(path))
    assert rc == 0, err
    assert out.splitlines()[-1].endswith("48 record(s) added")
    return path


def test_import_twice_adds_nothing_and_info_counts(filled, tmp_path, capsys):
    rc, out, _ = cli(capsys, "db", "import", str(tmp_path / "r0"), "--db", str(filled))
    assert rc == 0 and "0 record(s) added, 3 already in the database" in out
    rc, out, _ = cli(capsys, "db", "info", "--db", str(filled))
    assert rc == 0 and "schema version 2" in out and "records: 48" in out and "commits: 12" in out


def test_report_formats_find_the_step(filled, capsys):
    rc, out, _ = cli(capsys, "history", "report", "--db", str(filled), "--format", "json")
    assert rc == 0
    doc = json.loads(out)
    (flat, stepped) = sorted(doc["series"], key=lambda s: len(s["points"]))
    assert flat["steps"] == [] and len(stepped["points"]) == 12
    (step,) = stepped["steps"]
    assert step["commit"] == f"{6:012x}" and step["kind"] == "regression" and step["method"] == "unpaired"
    assert step["ci_low"] > 1.05 and 1.05 < step["ratio"] < 1.15
    rc, out, _ = cli(capsys, "history", "report", "--db", str(filled), "--format", "markdown", "--threshold", "20%")
    assert rc == 0 and "minor" in out and "\x1b" not in out and "<script>" not in out and "evil\\<script\\>" in out
    rc, out, _ = cli(capsys, "history", "report", "--db", str(filled))
    assert rc == 0 and "regression" in out and "\x1b[" not in out
    rc, out, _ = cli(capsys, "history", "report", "--db", str(filled), "--models", "resnet*", "--format", "json")
    assert [s["case"].split("|")[0] for s in json.loads(out)["series"]] == ["resnet18"]


def test_html_is_one_safe_page(filled, tmp_path, capsys):
    page = tmp_path / "history.html"
    rc, _, err = cli(capsys, "history", "report", "--db", str(filled), "--html", str(page))
    assert rc == 0, err
    text = page.read_text()
    assert "Content-Security-Policy" in text and "<script" not in text.lower()
    assert "evil&lt;script&gt;" in text and text.count("data:image/png;base64,") == 2
    assert not re.search(r"(src|href)=\"(?!data:|#)", text)  # loads nothing
    rc, _, _ = cli(capsys, "history", "report", "--db", str(filled), "--html", str(page))  # ours: replaced
    assert rc == 0


@pytest.mark.parametrize("argv, needle", [
    (["db"], "db needs an action"),
    (["history"], "history needs an action"),
    (["db", "import", "/no/such/run"], "not found"),
    (["history", "report", "--db", "/no/such/dir/h.sqlite"], "no results database"),
    (["history", "report", "--db", "mysql://x/y"], "unsupported database URL"),
    (["history", "report", "--threshold", "5"], "ambiguous"),
    (["history", "run", "HEAD", "--rounds", "1"], "--rounds must be at least 2"),
    (["history", "run", "HEAD", "--window", "1"], "--window must be at least 2"),
    (["history", "run", "--every", "0", "HEAD"], "--every must be a positive integer"),
    (["history", "run", "no-such-rev-xyz..HEAD"], "unknown git revision"),
    (["bisect", "HEAD", "HEAD"], "same commit"),
    (["bisect", "HEAD", "no-such-rev-xyz"], "unknown git revision"),
    (["bisect", "HEAD~1", "HEAD", "--budget", "-3"], "--budget must be a positive"),
    (["ci"], "--base-ref"),
    (["ci", "--base-ref", "HEAD", "--threshold", "0"], "--threshold"),
])
def test_bad_input_is_one_line_exit_2(capsys, tmp_path, monkeypatch, argv, needle):
    monkeypatch.chdir(tmp_path if argv[0] == "db" else monkeypatch_repo())
    rc, out, err = cli(capsys, *argv)
    assert rc == 2, (out, err)
    assert needle in err and len(err.strip().splitlines()) == 1


def monkeypatch_repo():
    from tests._cli import REPO

    return REPO


def test_a_report_never_replaces_a_foreign_file(filled, tmp_path, capsys):
    mine = tmp_path / "notes.html"
    mine.write_text("<p>my notes</p>")
    rc, _, err = cli(capsys, "history", "report", "--db", str(filled), "--html", str(mine))
    assert rc == 2 and "not written by resnet-bench" in err and mine.read_text() == "<p>my notes</p>"
