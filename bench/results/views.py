"""Rows -> pandas tables, and the tables derived from them: speedup over eager fp32, the best
mode per variant, latency ratios to a baseline variant. Computing only; rendering is
bench.report."""

from __future__ import annotations

import os
from collections.abc import Iterable

import pandas as pd

from bench.core.case import FIELD_DEFAULTS, REFERENCE_MODE
from bench.errors import UserError
from bench.results import columns

# A variant's cases that share everything but the mode.
_SAME_CASE = ["model", "device", "workload", "batch_size", "image_size", "ddp"]
_MODE = ["layout", "precision", "compile"]
DDP_TITLE = "Data-parallel training (img/s over all ranks; scaling = img/s / (world_size x img/s at ddp 1))"


def to_frame(rows: Iterable[dict]) -> pd.DataFrame:
    """Rows -> DataFrame with every stored column (missing ones NA) in the schema's order, then
    any extra columns; raw samples dropped. The header never depends on the first row."""
    raw = set(columns.raw())
    df = pd.DataFrame([{k: v for k, v in r.items() if k not in raw} for r in rows])
    names = columns.stored()
    for col in names:
        if col not in df.columns:
            df[col] = pd.NA
    for col, default in FIELD_DEFAULTS.items():  # rows written before the field existed
        df[col] = pd.to_numeric(df[col], errors="coerce").fillna(default).astype(type(default))
    extra = [c for c in df.columns if c not in names]
    return df[names + extra]


def busy(row: dict, cpu_count: int | None = None) -> bool:
    """A CPU case measured while more runnable work than cores was competing (load average
    above the core count, which already includes the measuring process itself)."""
    load, cores = row.get("load_avg_1m"), cpu_count or os.cpu_count() or 1
    return row.get("device") == "cpu" and isinstance(load, (int, float)) and load > cores + 0.5


def with_speedup(df: pd.DataFrame) -> pd.DataFrame:
    """Adds `speedup_vs_eager`: the reference mode's (eager fp32 contiguous) latency of the same
    model/workload/batch/size divided by this row's latency (> 1 = faster than eager fp32)."""
    df = df.copy()
    ok = df["status"].isin(columns.OK_STATUSES)
    is_ref = (df[_MODE] == pd.Series(REFERENCE_MODE, index=_MODE)).all(axis=1)
    ref = df[ok & is_ref].groupby(_SAME_CASE)["latency_ms_p50"].first().rename("_ref_ms")
    df = df.join(ref, on=_SAME_CASE)
    df["speedup_vs_eager"] = (df["_ref_ms"] / pd.to_numeric(df["latency_ms_p50"], errors="coerce")).where(ok)
    return df.drop(columns="_ref_ms")


def best_modes(df: pd.DataFrame) -> pd.DataFrame:
    """Per model/workload/batch/size: the fastest ok mode and its speedup over eager fp32."""
    df = with_speedup(df)
    ok = df[df["status"].isin(columns.OK_STATUSES) & df["latency_ms_p50"].notna()].copy()
    if ok.empty:
        return ok
    ok["latency_ms_p50"] = pd.to_numeric(ok["latency_ms_p50"])
    idx = ok.groupby(_SAME_CASE)["latency_ms_p50"].idxmin()
    same = [c for c in _SAME_CASE if c != "ddp" or (ok["ddp"] > 0).any()]  # ddp only where a row has it
    best = ok.loc[idx, same + _MODE + ["latency_ms_p50", "throughput_ips", "speedup_vs_eager"]]
    return best.reset_index(drop=True)


def ratio_to_baseline(df: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Each variant's latency divided by the baseline variant's, per identical case settings
    (> 1 = slower than the baseline)."""
    if baseline not in set(df["model"]):
        raise UserError(f"baseline model {baseline!r} is not in these results; "
                        f"models: {', '.join(sorted(set(df['model'])))}")
    keys = [c for c in columns.CASE_COLUMNS if c != "model"]
    ok = df[df["status"].isin(columns.OK_STATUSES)].copy()
    ok["latency_ms_p50"] = pd.to_numeric(ok["latency_ms_p50"])
    base = ok[ok["model"] == baseline].groupby(keys)["latency_ms_p50"].first().rename("_base_ms")
    ok = ok.join(base, on=keys)
    ok[f"latency_ratio_to_{baseline}"] = ok["latency_ms_p50"] / ok["_base_ms"]
    return ok.drop(columns="_base_ms")[["model"] + keys + ["latency_ms_p50", f"latency_ratio_to_{baseline}"]]


def with_scaling(df: pd.DataFrame) -> pd.DataFrame:
    """Adds `scaling_efficiency` to data-parallel rows: throughput_ips / (world_size x the
    throughput_ips of the same case with ddp 1), where the run measured that case (ok)."""
    df = df.copy()
    ranks = pd.to_numeric(df["ddp"], errors="coerce").fillna(0)
    ok = df["status"].isin(columns.OK_STATUSES) & (ranks > 0)
    keys = [c for c in _SAME_CASE if c != "ddp"] + _MODE
    df["_thr"] = pd.to_numeric(df["throughput_ips"], errors="coerce")
    one = df[ok & (ranks == 1)].groupby(keys)["_thr"].first().rename("_one")
    df = df.join(one, on=keys)
    world = pd.to_numeric(df["world_size"], errors="coerce")
    df["scaling_efficiency"] = (df["_thr"] / (world * df["_one"])).where(ok)
    return df.drop(columns=["_thr", "_one"])


def ddp_scaling(df: pd.DataFrame) -> pd.DataFrame:
    """The data-parallel rows, one per case: global throughput, the slowest rank's median step
    time, the scaling efficiency against ddp 1, the fastest and slowest rank, the host."""
    if "ddp" not in df.columns:
        return df.iloc[0:0]
    view = with_scaling(df)
    view = view[pd.to_numeric(view["ddp"], errors="coerce").fillna(0) > 0]
    cols = ["model", "batch_per_rank", "image_size", "layout", "precision", "compile", "ddp", "world_size",
            "status", "throughput_ips", "latency_ms_p50", "scaling_efficiency", "rank_step_ms_min",
            "rank_step_ms_max", "host", "device_name"]
    view = view.assign(batch_per_rank=view["batch_size"])
    return view[cols].rename(columns={"throughput_ips": "img/s (all ranks)", "latency_ms_p50": "step ms p50",
                                      "scaling_efficiency": "scaling"}).reset_index(drop=True)
