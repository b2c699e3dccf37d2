"""Helpers for tests that run the CLI: in-process (fast) or as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# One short round per case: tests of what a run does (faults, resume, files) need no statistics;
# tests of rounds ask for them (--rounds N after FAST wins).
FAST = ["--max-time", "0.3", "--min-samples", "3", "--max-warmup", "1", "--quiet", "--rounds", "1", "--no-stages"]


def env_with_plugins(*modules: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if modules:
        env["RESNET_BENCH_PLUGINS"] = ",".join(modules)
    env.pop("RESNET_BENCH_DEBUG", None)
    return env


def run_cli(*args: str, plugins: tuple[str, ...] = (), timeout: float = 600, cwd: Path | None = None):
    """Run `python -m bench ARGS` in a subprocess; returns CompletedProcess (text)."""
    return subprocess.run(
        [sys.executable, "-m", "bench", *args], capture_output=True, text=True, timeout=timeout,
        cwd=cwd or REPO, env=env_with_plugins(*plugins),
    )


def consistent(out) -> list[dict]:
    """rows.jsonl holds each case's round once; results.json keeps those records and one pooled
    row per case; results.csv and `report --format json` hold one row per case. Returns the
    report's rows (one per case)."""
    import pandas as pd

    from bench.core.case import Case
    from bench.results.rounds import record_key

    lines = (out / "rows.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line is complete JSON
    keys = [record_key(r) for r in records]
    assert len(keys) == len(set(keys)), "a case's round has two records"
    cases = list(dict.fromkeys(Case.from_row(r).key() for r in records))
    doc = json.loads((out / "results.json").read_text())
    assert [record_key(r) for r in doc["records"]] == keys
    assert [Case.from_row(r).key() for r in doc["rows"]] == cases
    assert len(pd.read_csv(out / "results.csv")) == len(cases)
    rep = run_cli("report", str(out), "--format", "json")
    assert rep.returncode == 0, rep.stderr
    rows = json.loads(rep.stdout)
    assert sorted(Case.from_row(r).key() for r in rows) == sorted(cases)
    assert "set aside" not in rep.stderr
    return rows


def finish(writer):
    """What `run` does when a session of a run ends: the answer files (results.json/.csv/.md)
    from the records the writer holds (bench.report.summary)."""
    from bench.report import summary
    from bench.results.analysis import analyse

    analysis = analyse(writer.records, writer.run_env, writer.settings, writer.command)
    summary.write(writer.out, writer.meta(), analysis, writer.records)
    return analysis
