"""Helpers for tests that run the CLI: in-process (fast) or as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FAST = ["--max-time", "0.3", "--min-samples", "3", "--max-warmup", "1", "--quiet"]


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
    """rows.jsonl, results.json, results.csv and `report --format json` hold the same cases, each once."""
    import pandas as pd

    from bench.core.case import Case

    lines = (out / "rows.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]  # every line is complete JSON
    keys = [Case.from_row(r).key() for r in rows]
    assert len(keys) == len(set(keys)), "a case has two rows"
    doc = json.loads((out / "results.json").read_text())
    assert [Case.from_row(r).key() for r in doc["rows"]] == keys
    assert len(pd.read_csv(out / "results.csv")) == len(keys)
    rep = run_cli("report", str(out), "--format", "json")
    assert rep.returncode == 0, rep.stderr
    assert sorted(Case.from_row(r).key() for r in json.loads(rep.stdout)) == sorted(keys)
    assert "more than one row" not in rep.stderr
    return rows
