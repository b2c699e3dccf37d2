"""Helpers for tests that run the CLI: in-process (fast) or as a real subprocess."""

from __future__ import annotations

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
