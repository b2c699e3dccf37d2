"""Read pytest-benchmark JSON (``pytest --benchmark-json=FILE`` or a ``--benchmark-save`` file)
into resnet-bench rows, so `resnet-bench report` renders it and `check --speed --baseline`
compares with it.

A benchmark maps to a row when its ``extra_info`` names the case, as tests/perf records it:
model, device, workload, batch_size, image_size, layout, precision, compile (threads optional).
Benchmarks without those fields (other projects' benchmarks in the same file) are skipped; a
file with none is a UserError. Units: pytest-benchmark's stats are seconds per call (one round
= ``iterations`` calls; ``data`` holds one value per round, already divided by iterations); our
columns are milliseconds. With ``data`` (always in --benchmark-json, in saved runs only with
--benchmark-save-data) every latency statistic is recomputed from the raw samples by
bench.core.stats.summarize, exactly as for our own rows; without it, p50/mean/min/IQR come from
pytest-benchmark's own stats and the percentiles it does not keep are left empty.
The environment comes from ``machine_info`` (tests/perf/conftest.py adds torch, device, ...).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from bench.core.case import FIELD_DEFAULTS, FIELDS, REQUIRED_FIELDS
from bench.errors import UserError
from bench.results import columns
ENV_KEYS = ("torch", "torchvision", "cuda", "cudnn", "device", "device_name", "threads")


def _env(doc: dict) -> dict[str, Any]:
    mi = doc.get("machine_info") or {}
    if not isinstance(mi, dict):
        raise UserError("pytest-benchmark JSON: 'machine_info' must be an object")
    env: dict[str, Any] = {}
    full = mi.get("resnet_bench_env")
    if isinstance(full, dict):
        env.update(full)
    for k in ENV_KEYS:
        if mi.get(k) is not None:
            env[k] = mi[k]
    cpu = mi.get("cpu") if isinstance(mi.get("cpu"), dict) else {}
    env.setdefault("cpu_model", cpu.get("brand_raw") or mi.get("processor"))
    if env.get("device") == "cpu" or not env.get("device"):
        env.setdefault("device_name", env.get("cpu_model"))
    env.setdefault("python", mi.get("python_version"))
    env.setdefault("hostname", mi.get("node"))
    commit = doc.get("commit_info") or {}
    if isinstance(commit, dict) and commit.get("id"):
        env.setdefault("git_commit", str(commit["id"])[:12] + ("+dirty" if commit.get("dirty") else ""))
    if doc.get("datetime"):
        env.setdefault("time_utc", doc["datetime"])
    return env


def _row(bench: dict, env: dict, path: Path) -> dict[str, Any] | None:
    from bench.core.stats import summarize

    extra = bench.get("extra_info") or {}
    params = bench.get("params") or {}
    if not isinstance(extra, dict):
        return None
    fields = {f: extra.get(f, params.get(f) if isinstance(params, dict) else None) for f in FIELDS}
    if any(fields[f] is None for f in REQUIRED_FIELDS):
        return None  # not one of our benchmarks
    fields = {f: FIELD_DEFAULTS[f] if v is None else v for f, v in fields.items()}
    name = bench.get("fullname") or bench.get("name") or "?"
    try:
        fields["batch_size"] = int(fields["batch_size"])
        fields["image_size"] = int(fields["image_size"])
        fields["ddp"] = int(fields["ddp"])
    except (TypeError, ValueError):
        raise UserError(f"{path}: benchmark {name}: batch_size/image_size in extra_info must be integers") from None
    stats = bench.get("stats")
    if not isinstance(stats, dict):
        raise UserError(f"{path}: benchmark {name} has no 'stats' object; not pytest-benchmark output?")
    row: dict[str, Any] = {**fields, "status": "ok", "error": "", "batch_size_requested": fields["batch_size"],
                           "benchmark": name}
    if extra.get("threads") is not None:
        row["threads"] = extra["threads"]
    for k in ("device_name", "torch", "torchvision", "cuda", "cudnn", "cpu_model", "git_commit", "time_utc"):
        if env.get(k) is not None:
            row[k] = env[k]
    data = stats.get("data")
    try:
        if isinstance(data, list) and data:
            samples = [float(s) * 1e3 for s in data]
            row.update(summarize(samples))
            row["samples_ms"] = samples
        else:
            med = float(stats["median"]) * 1e3
            row.update(latency_ms_p50=med, latency_ms_mean=float(stats["mean"]) * 1e3,
                       latency_ms_min=float(stats["min"]) * 1e3, latency_iqr_ms=float(stats["iqr"]) * 1e3,
                       n_samples=int(stats["rounds"]))
            row["latency_rel_iqr"] = row["latency_iqr_ms"] / med if med > 0 else math.inf
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"{path}: benchmark {name} has unusable stats ({type(e).__name__}: {e})") from None
    columns.derive(row)
    row["iterations_per_round"] = stats.get("iterations")
    return row


def rows_from_pytest_benchmark(doc: dict, path: str | Path) -> tuple[list[dict], dict]:
    """pytest-benchmark JSON document -> (rows, environment). Foreign or broken content -> UserError."""
    path = Path(path)
    benches = doc.get("benchmarks") if isinstance(doc, dict) else None
    if not isinstance(benches, list):
        raise UserError(f"{path}: 'benchmarks' must be a list; not pytest-benchmark JSON?")
    env = _env(doc)
    rows = []
    skipped = []
    for b in benches:
        if not isinstance(b, dict):
            raise UserError(f"{path}: every entry of 'benchmarks' must be an object")
        row = _row(b, env, path)
        if row is None:
            skipped.append(str(b.get("name", "?")))
        else:
            rows.append(row)
    if not rows:
        what = f" ({len(skipped)} benchmark(s) without resnet-bench case fields: {', '.join(skipped[:3])})" if skipped else ""
        raise UserError(f"{path} holds no resnet-bench benchmarks{what}; extra_info must name model, device, "
                        "workload, batch_size, image_size, layout, precision, compile (as tests/perf records)")
    return rows, env
