"""Rows -> pandas tables, and the tables derived from them: speedup over eager fp32, the best
mode per variant, latency ratios to a baseline variant. Computing only; rendering is
bench.report."""

from __future__ import annotations

import os
from collections.abc import Iterable

import pandas as pd

from bench.core.case import REFERENCE_MODE
from bench.errors import UserError
from bench.results import columns

# A variant's cases that share everything but the mode.
_SAME_CASE = ["model", "device", "workload", "batch_size", "image_size"]
_MODE = ["layout", "precision", "compile"]


def to_frame(rows: Iterable[dict]) -> pd.DataFrame:
    """Rows -> DataFrame with every stored column (missing ones NA) in the schema's order, then
    any extra columns; raw samples dropped. The header never depends on the first row."""
    raw = set(columns.raw())
    df = pd.DataFrame([{k: v for k, v in r.items() if k not in raw} for r in rows])
    names = columns.stored()
    for col in names:
        if col not in df.columns:
            df[col] = pd.NA
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
    best = ok.loc[idx, _SAME_CASE + _MODE + ["latency_ms_p50", "throughput_ips", "speedup_vs_eager"]]
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


# A mode of a variant across batch sizes (a --find-max-batch ladder).
_MODE_CASE = ["model", "device", "workload", "image_size"] + _MODE


def with_best_batch(df: pd.DataFrame) -> pd.DataFrame:
    """Adds `best_batch_throughput`: per model/device/workload/size/mode, the batch size with the
    highest throughput_ips among the ok rows (NA where none)."""
    df = df.copy()
    ok = df[df["status"].isin(columns.OK_STATUSES) & df["throughput_ips"].notna()].copy()
    if ok.empty:
        df["best_batch_throughput"] = pd.NA
        return df
    ok["throughput_ips"] = pd.to_numeric(ok["throughput_ips"])
    best = ok.loc[ok.groupby(_MODE_CASE)["throughput_ips"].idxmax(), _MODE_CASE + ["batch_size"]]
    return df.join(best.set_index(_MODE_CASE)["batch_size"].rename("best_batch_throughput"), on=_MODE_CASE)


def batch_curves(df: pd.DataFrame) -> pd.DataFrame:
    """Throughput against batch per mode, for rows of a max-batch search: the searched max, the
    first batch that did not fit, the best batch and its img/s, and img/s at every measured
    batch ("batch: img/s", ascending). Empty when no row carries a search."""
    if "max_batch_searched" not in df.columns or df["max_batch_searched"].isna().all():
        return pd.DataFrame()
    df = with_best_batch(df[df["max_batch_searched"].notna() | df["max_batch_stop"].notna()])
    out = []
    for key, g in df.groupby(_MODE_CASE, sort=False, dropna=False):
        ok = g[g["status"].isin(columns.OK_STATUSES) & g["throughput_ips"].notna()].sort_values("batch_size")
        best = g["best_batch_throughput"].dropna()
        best_ips = ok.loc[ok["batch_size"] == best.iloc[0], "throughput_ips"].max() if len(best) else pd.NA
        out.append(dict(zip(_MODE_CASE, key)) | {
            "max_batch_searched": g["max_batch_searched"].iloc[0], "max_batch_fail": g["max_batch_fail"].iloc[0],
            "best_batch_throughput": best.iloc[0] if len(best) else pd.NA, "best_throughput_ips": best_ips,
            "throughput_by_batch": ", ".join(f"{int(b)}: {float(v):.4g}" for b, v in
                                             zip(ok["batch_size"], pd.to_numeric(ok["throughput_ips"])))})
    return pd.DataFrame(out)


_ENERGY_MEMORY = ["model", "workload", "batch_size", "image_size", "layout", "precision", "compile", "throughput_ips",
                  "energy_j_per_image", "power_w_mean", "throughput_ips_per_w", "mem_peak_allocated_mb",
                  "mem_peak_reserved_mb", "nvml_mem_used_mb", "gpu_sm_clock_mhz", "gpu_throttled"]


def energy_memory(df: pd.DataFrame) -> pd.DataFrame:
    """Energy, memory-pass and clock columns of the rows that have any (GPU rows); empty otherwise."""
    have = [c for c in ("energy_j_per_image", "mem_peak_allocated_mb") if c in df.columns]
    if not have:
        return pd.DataFrame()
    rows = df[df[have].notna().any(axis=1)]
    return rows[[c for c in _ENERGY_MEMORY if c in rows.columns]].reset_index(drop=True)
