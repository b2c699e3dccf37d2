"""Rows -> pandas tables, and the tables derived from them: which rows can be trusted, speedup
over eager fp32, the best mode per variant, latency ratios to a baseline variant. Computing
only; rendering is bench.report.

**Reliability** has one definition, :func:`flags`: a row is fit to rank only when its status is
``ok`` and it is steady, not noisy, not measured on a busy CPU and its output matches eager
fp32. Every view that crowns or divides (best mode, speedup, ratio to a baseline, the Pareto
front and the heat map of bench.report.figures) uses it: a flagged row is shown marked, never
ranked.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

import pandas as pd

from bench.core.case import FIELD_DEFAULTS, REFERENCE_MODE
from bench.errors import UserError
from bench.results import columns

# A variant's cases that share everything but the mode.
SAME_CASE = ["model", "device", "workload", "batch_size", "image_size", "ddp"]
MODE = ["layout", "precision", "compile"]
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


# ------------------------------------------------------------------ reliability
def busy(row: Mapping, cpu_count: int | None = None) -> bool:
    """A CPU case measured while more runnable work than cores was competing (load average
    above the core count, which already includes the measuring process itself). `cpu_count`:
    the measuring machine's (the run's environment); this machine's when not given."""
    load, cores = row.get("load_avg_1m"), cpu_count or os.cpu_count() or 1
    return (row.get("device") == "cpu" and isinstance(load, (int, float)) and not isinstance(load, bool)
            and load > cores + 0.5)


def _is(value, want: bool) -> bool:
    """`value` is the flag `want` (a bool or numpy bool; NA, None and text are neither)."""
    return type(value).__name__ in ("bool", "bool_") and bool(value) == want


def flags(row: Mapping, cpu_count: int | None = None) -> list[str]:
    """Why a row's timing cannot be ranked, in a fixed order; [] for a reliable row.

    A status other than ``ok`` (``ok-reduced`` reads "batch reduced": measured at another batch
    than asked), ``noisy`` (IQR / median above 10%), ``unsteady`` (the warm-up never settled),
    ``busy CPU`` (:func:`busy`), ``output differs`` (the mode's output is off eager fp32's)."""
    status = row.get("status")
    out = [] if status == "ok" else ["batch reduced" if status == "ok-reduced" else str(status)]
    if _is(row.get("noisy"), True):
        out.append("noisy")
    if _is(row.get("steady"), False):
        out.append("unsteady")
    if busy(row, cpu_count):
        out.append("busy CPU")
    if _is(row.get("output_ok"), False):
        out.append("output differs")
    return out


def reliable(row: Mapping, cpu_count: int | None = None) -> bool:
    return not flags(row, cpu_count)


def with_flags(df: pd.DataFrame, cpu_count: int | None = None) -> pd.DataFrame:
    """Adds `flags` (:func:`flags` joined by ", "; "" for a reliable row) and `reliable`."""
    df = df.copy()
    df["flags"] = [", ".join(flags(r, cpu_count)) for r in df.to_dict("records")] if len(df) else []
    df["reliable"] = df["flags"] == ""
    return df


def _ok(df: pd.DataFrame) -> pd.Series:
    return df["status"].isin(columns.OK_STATUSES) & pd.to_numeric(df["latency_ms_p50"], errors="coerce").notna()


def with_speedup(df: pd.DataFrame, cpu_count: int | None = None) -> pd.DataFrame:
    """Adds `flags`, `reliable`, `speedup_vs_eager`: the reference mode's (eager fp32
    contiguous) latency of the same model/workload/batch/size divided by this row's (> 1 =
    faster than eager fp32), and `speedup_trusted`: this row and its reference are both
    reliable. An untrusted speedup is shown marked, never ranked."""
    df = with_flags(df, cpu_count)
    ok = _ok(df)
    is_ref = (df[MODE] == pd.Series(REFERENCE_MODE, index=MODE)).all(axis=1)
    ref = (df[ok & is_ref].assign(_ref_ms=lambda d: pd.to_numeric(d["latency_ms_p50"]))
           .groupby(SAME_CASE)[["_ref_ms", "reliable"]].first().rename(columns={"reliable": "_ref_reliable"}))
    df = df.join(ref, on=SAME_CASE)
    df["speedup_vs_eager"] = (df["_ref_ms"] / pd.to_numeric(df["latency_ms_p50"], errors="coerce")).where(ok)
    df["speedup_trusted"] = (df["reliable"] & (df["_ref_reliable"] == True)).astype(bool)  # noqa: E712 (NA -> False)
    return df.drop(columns=["_ref_ms", "_ref_reliable"])


def _mode_text(r: Mapping) -> str:
    return f"{r['layout']}/{r['precision']}/{r['compile']}"


def best_modes(df: pd.DataFrame, cpu_count: int | None = None) -> pd.DataFrame:
    """Per model/workload/batch/size: the fastest **reliable** mode and its speedup over eager
    fp32 (NA when the eager row itself is flagged). Flagged rows are never ranked: a flagged
    mode that looked faster is named in `note`; a case with no reliable mode keeps its line,
    with empty mode columns and the reason in `note`."""
    view = with_speedup(df, cpu_count)
    view = view[_ok(view)].copy()
    cols = SAME_CASE + MODE + ["latency_ms_p50", "throughput_ips", "speedup_vs_eager", "note"]
    if view.empty:
        return pd.DataFrame(columns=cols)
    view["latency_ms_p50"] = pd.to_numeric(view["latency_ms_p50"])
    out = []
    for _, g in view.groupby(SAME_CASE, sort=False):
        good = g[g["reliable"]]
        if good.empty:
            why = sorted({f for text in g["flags"] for f in text.split(", ") if f})
            first = g.iloc[0]
            out.append({**{k: first[k] for k in SAME_CASE}, **{k: None for k in MODE},
                        "latency_ms_p50": None, "throughput_ips": None, "speedup_vs_eager": None,
                        "note": f"not ranked: all {len(g)} measured mode(s) flagged ({', '.join(why)})"})
            continue
        best = good.loc[good["latency_ms_p50"].idxmin()]
        notes = []
        if not best["speedup_trusted"]:
            ref = _ref_flags(g)
            notes.append(f"no speedup: the eager fp32 row is {ref}" if ref else "no speedup: no ok eager fp32 row")
        faster = g[~g["reliable"] & (g["latency_ms_p50"] < best["latency_ms_p50"])]
        notes += [f"not ranked: {_mode_text(r)} {r['latency_ms_p50']:.4g} ms ({r['flags']})"
                  for r in faster.to_dict("records")]
        out.append({**{k: best[k] for k in SAME_CASE + MODE + ["latency_ms_p50", "throughput_ips"]},
                    "speedup_vs_eager": best["speedup_vs_eager"] if best["speedup_trusted"] else None,
                    "note": "; ".join(notes)})
    best = pd.DataFrame(out, columns=cols)
    if not (pd.to_numeric(best["ddp"], errors="coerce").fillna(0) > 0).any():
        best = best.drop(columns="ddp")  # ddp shown only where a case has it
    return best


def _ref_flags(g: pd.DataFrame) -> str:
    ref = g[(g[MODE] == pd.Series(REFERENCE_MODE, index=MODE)).all(axis=1)]
    return ref["flags"].iloc[0] if len(ref) else ""


def ratio_to_baseline(df: pd.DataFrame, baseline: str, cpu_count: int | None = None) -> pd.DataFrame:
    """Each variant's latency divided by the baseline variant's, per identical case settings
    (> 1 = slower than the baseline). `note` names the flags of the row or of the baseline's
    row: such a ratio is shown marked, not trusted."""
    if baseline not in set(df["model"]):
        raise UserError(f"baseline model {baseline!r} is not in these results; "
                        f"models: {', '.join(sorted(set(df['model'])))}")
    keys = [c for c in columns.CASE_COLUMNS if c != "model"]
    ok = with_flags(df[df["status"].isin(columns.OK_STATUSES)], cpu_count)
    ok["latency_ms_p50"] = pd.to_numeric(ok["latency_ms_p50"])
    base = (ok[ok["model"] == baseline].groupby(keys)[["latency_ms_p50", "flags"]].first()
            .rename(columns={"latency_ms_p50": "_base_ms", "flags": "_base_flags"}))
    ok = ok.join(base, on=keys)
    name = f"latency_ratio_to_{baseline}"
    ok[name] = ok["latency_ms_p50"] / ok["_base_ms"]
    ok["note"] = [_join(f, f"{baseline}: {b}" if isinstance(b, str) and b and m != baseline else "")
                  for f, b, m in zip(ok["flags"], ok["_base_flags"], ok["model"])]
    return ok[["model"] + keys + ["latency_ms_p50", name, "note"]]


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


# A mode of a variant across batch sizes (a --find-max-batch ladder).
_MODE_CASE = ["model", "device", "workload", "image_size"] + MODE


def with_best_batch(df: pd.DataFrame, cpu_count: int | None = None) -> pd.DataFrame:
    """Adds `best_batch_throughput`: per model/device/workload/size/mode, the batch size with the
    highest throughput_ips among the reliable rows (:func:`flags`; NA where none)."""
    df = df.copy()
    flagged = with_flags(df, cpu_count)["reliable"]
    ok = df[flagged & df["throughput_ips"].notna()].copy()
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


def with_scaling(df: pd.DataFrame) -> pd.DataFrame:
    """Adds `scaling_efficiency` to data-parallel rows: throughput_ips / (world_size x the
    throughput_ips of the same case with ddp 1), where the run measured that case (ok)."""
    df = df.copy()
    ranks = pd.to_numeric(df["ddp"], errors="coerce").fillna(0)
    ok = df["status"].isin(columns.OK_STATUSES) & (ranks > 0)
    keys = [c for c in SAME_CASE if c != "ddp"] + MODE
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
