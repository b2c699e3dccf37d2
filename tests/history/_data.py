"""Synthetic data for the history tests: run directories as `resnet-bench run` writes them
(run.json + rows.jsonl, records with raw samples), and a real local PostgreSQL server."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

CASE = {"model": "resnet18", "workload": "infer", "batch_size": 1, "image_size": 64, "layout": "contiguous",
        "precision": "fp32", "compile": "none", "device": "cpu"}
ENV = {"torch": "2.14.1", "torchvision": "0.29.1", "cuda": None, "cudnn": None, "device": "cpu",
       "device_name": "Test CPU", "cpu_model": "Test CPU", "cpu_isa": "AVX512", "threads": 1}
SETTINGS = {"timing": {"max_time_s": 0.5}, "threads": 1, "check_outputs": False, "seed": 0, "overrides": {},
            "weights": None}


def records(commit: str, level_ms: float, rounds: int = 3, *, seed: int = 0, model: str = "resnet18",
            env: dict | None = None) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for r in range(1, rounds + 1):
        samples = (level_ms * np.exp(rng.normal(0, 0.01, 40)) * (1 + 0.002 * r)).tolist()
        out.append({**CASE, "model": model, "status": "ok", "error": "", "round": r, "samples_ms": samples,
                    "latency_ms_p50": float(np.median(samples)), "n_samples": len(samples), "git_commit": commit,
                    "time_utc": f"2026-12-01T10:00:{r:02d}+00:00", **(env or ENV)})
    return out


def run_dir(path: Path, commit: str, level_ms: float, *, rounds: int = 3, seed: int = 0, model: str = "resnet18",
            env: dict | None = None, command: str = "resnet-bench run (synthetic)") -> Path:
    """A run directory of one case measured at `commit` (rounds x 40 samples around level_ms)."""
    path.mkdir(parents=True, exist_ok=True)
    env = {**(env or ENV), "git_commit": commit, "time_utc": f"2026-12-01T10:{seed % 60:02d}:00+00:00"}
    meta = {"format": "resnet-bench/run", "version": 2, "fingerprint": "synthetic", "environment": env,
            "settings": SETTINGS, "command": command}
    (path / "run.json").write_text(json.dumps(meta))
    recs = records(commit, level_ms, rounds, seed=seed, model=model, env=env)
    (path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


# ------------------------------------------------------------------ a real PostgreSQL
def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@contextlib.contextmanager
def postgres_server():
    """A PostgreSQL server in a temporary directory, listening on a unix socket there only; yields
    (socket dir, user). Run as the `postgres` user when this process is root (initdb refuses
    root)."""
    bindir = postgres_bin()
    root = Path(tempfile.mkdtemp(prefix="rb-pg-"))
    user_kw: dict = {}
    if os.geteuid() == 0:
        import pwd

        pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        user_kw = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
    data, log = root / "data", root / "log"

    def run(*a):
        return subprocess.run([str(a[0]), *map(str, a[1:])], check=True, capture_output=True, text=True,
                              timeout=120, cwd=root, **user_kw)

    started = False
    try:
        run(bindir / "initdb", "-D", data, "-A", "trust", "-U", "bench", "-E", "UTF8", "--locale=C", "--no-sync")
        run(bindir / "pg_ctl", "-D", data, "-l", log, "-w", "-t", "60", "-o",
            f"-k {root} -c listen_addresses='' -F", "start")
        started = True
        yield root, "bench"
    finally:
        if started:
            subprocess.run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                           capture_output=True, timeout=60, cwd=root, **user_kw)
        shutil.rmtree(root, ignore_errors=True)
