"""`history run`, `bisect` and the CI script end to end, each on a tiny case (resnet18 planted with
an extra conv, 64 px, 3 short rounds) in a temporary git repository of this checkout whose
commits change the planted width; and the proof tool on a tiny configuration."""

from __future__ import annotations

import importlib.util
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROUNDS = 3  # two rounds give a t interval 12.7 standard errors wide: no step is ever certain
TINY = ["--models", "planted_resnet18", "--image-sizes", "64", "--max-time", "0.2", "--min-time", "0.2",
        "--max-warmup", "0.2", "--rounds", str(ROUNDS)]

# They decide on measured time (a step's CI, a probe's verdict) from 2 short rounds: beside
# another test on a 2-core runner one disturbed round makes any CI hold 1. They run alone.
pytestmark = [pytest.mark.slow, pytest.mark.serial]


def proof_tool():
    spec = importlib.util.spec_from_file_location("history_proof", REPO / "tools" / "history_proof.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def bench(repo: Path, *argv: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.update({"PYTHONPATH": str(repo), "RESNET_BENCH_PLUGINS": "tests.fixtures.planted", **(env_extra or {})})
    env.pop("RESNET_BENCH_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "bench", *argv], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """4 commits: width 0, 0, 1600, 1600: a step at the third. At 64 px the planted conv adds 236 M
    MACs to resnet18's 148 M (at 32 px +160% MACs gave only +25% time: resnet18 at 32 px, batch 1,
    is mostly per-op overhead)."""
    root = tmp_path_factory.mktemp("hist")
    repo, shas, _ = proof_tool().make_repo(root, 4, {2: 1600})
    return repo, shas


def rows(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as c:
        return c.execute("SELECT commit_sha, session, round, status FROM records ORDER BY id").fetchall()


def test_history_run_measures_skips_and_resumes(repo, tmp_path):
    repo, shas = repo
    db = tmp_path / "h.sqlite"
    r = bench(repo, "history", "run", f"{shas[0]}..{shas[-1]}", *TINY, "--window", "2", "--db", str(db), "--quiet")
    assert r.returncode == 0, r.stderr
    got = rows(db)
    # commits 1..3 in windows [1,2], [2,3]: commit 2 (the anchor) twice; ROUNDS rounds each; every record ok
    assert sorted({c for c, *_ in got}) == sorted(shas[1:])
    assert len(got) == ROUNDS * 4 and all(s == "ok" for *_, s in got)
    assert len({s for _, s, *_ in got}) == 2
    worktrees = subprocess.run(["git", "-C", str(repo), "worktree", "list"], capture_output=True, text=True).stdout
    assert len(worktrees.strip().splitlines()) == 1  # every temporary worktree is gone
    # again: everything is measured already
    r = bench(repo, "history", "run", f"{shas[0]}..{shas[-1]}", *TINY, "--window", "2", "--db", str(db))
    assert r.returncode == 0 and "3 already measured" in r.stdout and len(rows(db)) == ROUNDS * 4
    # a run killed before the last commit's records: the same command measures only that window
    with sqlite3.connect(db) as c:
        c.execute("DELETE FROM records WHERE commit_sha = ?", (shas[3],))
    r = bench(repo, "history", "run", f"{shas[0]}..{shas[-1]}", *TINY, "--window", "2", "--db", str(db))
    assert r.returncode == 0, r.stderr
    assert "2 already measured" in r.stdout and "1 window(s)" in r.stdout
    new = rows(db)[ROUNDS * 3:]
    assert sorted({c for c, *_ in new}) == sorted([shas[2], shas[3]])  # with its anchor: still paired
    # the report finds the planted step at the third commit, paired
    r = bench(repo, "history", "report", "--format", "json", "--db", str(db))
    assert r.returncode == 0, r.stderr
    (series,) = json.loads(r.stdout)["series"]
    assert [p["commit"] for p in series["points"]] == shas[1:]
    (step,) = series["steps"]
    assert step["commit"] == shas[2] and step["method"] == "paired" and step["ci_low"] > 1.1


def test_bisect_finds_the_first_commit_and_stores_every_probe(repo, tmp_path):
    repo, shas = repo
    db = tmp_path / "b.sqlite"
    r = bench(repo, "bisect", shas[0], shas[-1], *TINY, "--db", str(db))
    assert r.returncode == 0, r.stderr + r.stdout
    assert f"first commit of the step: {shas[2]}" in r.stdout
    probes = [ln for ln in r.stderr.splitlines() if ln.startswith("probe ")]
    assert 3 <= len(probes) <= 4  # step, halvings (ceil(log2 3) = 2 at most), the final pair
    with sqlite3.connect(db) as c:
        stored = c.execute("SELECT probe, verdict FROM probes ORDER BY id").fetchall()
        n_records = c.execute("SELECT count(*) FROM records").fetchone()[0]
    assert len(stored) == len(probes) and stored[0] == (shas[-1], "step")
    assert stored[-1][0] == shas[2]  # the last probe measured the first bad commit beside the last good one
    assert n_records == 2 * ROUNDS * len(probes)  # two sides, ROUNDS rounds per probe
    # no step between two commits of one level: exit 1, one probe
    r = bench(repo, "bisect", shas[0], shas[1], *TINY, "--db", str(db), "--quiet")
    assert r.returncode == 1 and "no step" in r.stdout


def test_the_ci_script_writes_the_step_summary(repo, tmp_path):
    """examples/github-actions/perf-gate.sh, exactly as perf.yml runs it, with
    GITHUB_STEP_SUMMARY pointing at a temporary file."""
    repo, shas = repo
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    env = {"GITHUB_STEP_SUMMARY": str(summary), "RESNET_BENCH": f"{sys.executable} -m bench",
           "PERF_HTML": str(tmp_path / "perf.html"), "PERF_JSON": str(tmp_path / "gate.json"),
           "PERF_DB": str(tmp_path / "ci.sqlite")}
    r = subprocess.run(["bash", str(REPO / "examples" / "github-actions" / "perf-gate.sh"), shas[1], *TINY,
                        "--quiet"], cwd=repo, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "PYTHONPATH": str(repo), "RESNET_BENCH_PLUGINS": "tests.fixtures.planted",
                            **env})
    # the working tree is commit 3 (width 1600) against commit 1 (width 0): a regression, exit 1
    assert r.returncode == 1, r.stderr[-2000:]
    text = summary.read_text()
    assert text.startswith("earlier step\n")  # appended, as GitHub expects
    # the exact gate sees the test-only plugin variant, which the committed table does not hold
    assert "**Exact gate**: FAIL" in text and "- planted_resnet18" in text
    assert "**Speed gate**" in text and "| regression |" in text and "| planted_resnet18 infer" in text
    page = (tmp_path / "perf.html").read_text()
    assert "Content-Security-Policy" in page and "<script" not in page.lower()
    doc = json.loads((tmp_path / "gate.json").read_text())
    assert doc["exit_code"] == 1 and doc["base"]["commit"] == shas[1]
    with sqlite3.connect(tmp_path / "ci.sqlite") as c:
        commits = {row[0] for row in c.execute("SELECT DISTINCT commit_sha FROM records")}
    assert commits == {shas[1], shas[3]}  # both sides appended to the history


def test_the_proof_tool_on_a_tiny_configuration(tmp_path):
    out = tmp_path / "proof"
    r = subprocess.run([sys.executable, str(REPO / "tools" / "history_proof.py"), "--commits", "6", "--steps", "3:1600",
                        "--rounds", "3", "--bisect-rounds", "3", "--image-size", "64", "--max-time", "0.2",
                        "--threshold", "5%", "--out-dir", str(out)], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    text = (out / "README.md").read_text()
    assert "## Planted against found" in text and "| 3 | 0 -> 1600 | yes | 3 |" in text
    assert "Named commit: 3 (planted: 3)" in text
    assert (out / "report.html").is_file() and json.loads((out / "report.json").read_text())["series"]
