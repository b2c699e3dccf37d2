"""Rows -> pandas tables, and the tables derived from them: which rows can be trusted, speedup
over eager fp32, the best mode per variant, latency ratios to a baseline variant. Computing
only; rendering is bench.report.

**Ratios are paired.** A speedup over eager fp32 and a ratio to a baseline variant divide the
two rows' latencies round by round, over the rounds both measured (bench.results.rounds.pair),
and carry a 95% CI and the number of rounds: ``1.91x [1.85, 1.97]``. A run of one round (or a
table of medians) gives the ratio without an interval.

**Reliability** has one definition (bench.results.reliability): every view here that crowns
or divides (best mode, speedup, ratio to a baseline; the Pareto front and the heat map of
bench.report.figures) asks it, and a flagged row or a wide ratio is shown marked, never ranked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd

from bench.core.ratios import Ratio
from bench.core.case import FIELD_DEFAULTS, REFERENCE_BACKEND, REFERENCE_MODE
from bench.errors import UserError
from bench.results import columns, rounds
# the one definition of a row fit to rank and of a ratio to trust, used by every view here
from bench.results.reliability import (WIDE_CI, blocking, busy, flags, n_rounds, ratio_note, reliable,  # noqa: F401
                                       trusted_ratio, with_flags)


# A variant's cases that share everything but the mode.
SAME_CASE = ["model", "device", "workload", "batch_size", "image_size", "ddp"]
MODE = ["layout", "precision", "compile", "backend"]
#: The reference mode (eager fp32 contiguous, PyTorch) as a row's MODE values.
REFERENCE = REFERENCE_MODE + (REFERENCE_BACKEND,)
DDP_TITLE = "Data-parallel training (img/s over all ranks; scaling = img/s / (world_size x img/s at ddp 1))"


def to_frame(rows: Iterable[dict]) -> pd.DataFrame:
    """Rows -> DataFrame with every stored column (missing ones NA) in the schema's order, then
    any extra columns; raw samples dropped. The header never depends on the first row."""
    raw = set(columns.raw())
    df = pd.DataFrame([{k: v for k, v in r.items() if k not in raw} for r in rows])
    names = columns.stored()
    missing = [c for c in names if c not in df.columns]
    if missing:
        df = pd.concat([df, pd.DataFrame(pd.NA, index=df.index, columns=missing)], axis=1)
    for col, default in FIELD_DEFAULTS.items():  # rows written before the field existed
        if isinstance(default, str):
            df[col] = df[col].where(df[col].notna() & (df[col] != ""), default).astype(object)
        else:
            df[col] = pd.to_numeric(df[col], errors="coerce").fillna(default).astype(type(default))
    extra = [c for c in df.columns if c not in names]
    return df[names + extra]


def analysed(df: pd.DataFrame, cpu_count: int | None = None) -> pd.DataFrame:
    """`df` as :func:`with_speedup` leaves it: unchanged when it already is (an analysed frame,
    bench.results.analysis), else analysed now."""
    if {"reliable", "flags", "speedup_trusted", "speedup_vs_eager"} <= set(df.columns):
        return df
    return with_speedup(df, cpu_count)


def _ok(df: pd.DataFrame) -> pd.Series:
    return df["status"].isin(columns.OK_STATUSES) & pd.to_numeric(df["latency_ms_p50"], errors="coerce").notna()


def _ratio_columns(df: pd.DataFrame, name: str, values: list[Ratio | None]) -> None:
    df[name] = [None if r is None else r.ratio for r in values]
    df[f"{name}_ci_low"] = [None if r is None else r.ci_low for r in values]
    df[f"{name}_ci_high"] = [None if r is None else r.ci_high for r in values]
    df[f"{name}_rounds"] = [None if r is None else r.n for r in values]
    for col in (name, f"{name}_ci_low", f"{name}_ci_high", f"{name}_rounds"):
        df[col] = pd.to_numeric(df[col], errors="coerce")


def with_speedup(df: pd.DataFrame, cpu_count: int | None = None) -> pd.DataFrame:
    """Adds `flags`, `reliable`, `rounds`, `speedup_vs_eager`: the reference mode's (eager fp32
    contiguous) latency of the same model/workload/batch/size over this row's, paired round by
    round (> 1 = faster than eager fp32), with `speedup_vs_eager_ci_low/high` and
    `speedup_vs_eager_rounds`; and `speedup_trusted` (:func:`trusted_ratio`). The speedups of
    reliable rows pool their variance per device, workload, batch and size
    (bench.results.rounds.pair_many). An untrusted speedup is shown marked, never ranked."""
    df = with_flags(df, cpu_count)
    records = df.to_dict("records")
    ok = _ok(df).tolist()
    is_ref = (df[MODE] == pd.Series(REFERENCE, index=MODE)).all(axis=1).tolist() if len(df) else []
    refs = {tuple(r[k] for k in SAME_CASE): r for r, good, ref in zip(records, ok, is_ref) if good and ref}
    pairs, groups = {}, {}
    for i, (r, good) in enumerate(zip(records, ok)):
        ref = refs.get(tuple(r[k] for k in SAME_CASE)) if good else None
        if ref is not None:
            pairs[i] = (ref, r)
            if r["reliable"] and ref["reliable"]:
                groups[i] = tuple(r[k] for k in SAME_CASE if k != "model")
    ratios = rounds.pair_many(pairs, groups)
    values = [ratios.get(i) for i in range(len(records))]
    trust = [trusted_ratio(values[i], r, pairs[i][0], cpu_count) if i in pairs else False
             for i, r in enumerate(records)]
    _ratio_columns(df, "speedup_vs_eager", values)
    df["speedup_trusted"] = pd.Series(trust, index=df.index, dtype=bool)
    return df


def _mode_text(r: Mapping) -> str:
    backend = r.get("backend") or REFERENCE_BACKEND
    return f"{r['layout']}/{r['precision']}/{r['compile']}" + ("" if backend == REFERENCE_BACKEND else f" {backend}")


def best_modes(df: pd.DataFrame, cpu_count: int | None = None) -> pd.DataFrame:
    """Per model/workload/batch/size: the mode with the highest **trusted** speedup over eager
    fp32 (:func:`with_speedup`), its latency and the speedup's interval. Untrusted rows are
    never ranked: one that looked faster is named in `note` with why (its flags, or its wide
    interval). Without any trusted speedup (no ok eager fp32 row, or a flagged one) the
    fastest reliable mode is named without a speedup, and `note` says why; a case with no
    reliable mode keeps its line, with empty mode columns and the reason in `note`."""
    view = with_speedup(df, cpu_count)
    view = view[_ok(view)].copy()
    cols = SAME_CASE + MODE + ["latency_ms_p50", "throughput_ips", "speedup_vs_eager", "speedup_vs_eager_ci_low",
                               "speedup_vs_eager_ci_high", "rounds", "note"]
    if view.empty:
        return pd.DataFrame(columns=cols)
    view["latency_ms_p50"] = pd.to_numeric(view["latency_ms_p50"])
    out = []
    for _, g in view.groupby(SAME_CASE, sort=False):
        trusted = g[g["reliable"] & g["speedup_trusted"]]
        good = g[g["reliable"]]
        if good.empty:
            why = sorted({f for text in g["flags"] for f in text.split(", ") if f})
            first = g.iloc[0]
            out.append({**{k: first[k] for k in SAME_CASE}, **{k: None for k in MODE},
                        "latency_ms_p50": None, "throughput_ips": None, "speedup_vs_eager": None,
                        "note": f"not ranked: all {len(g)} measured mode(s) flagged ({', '.join(why)})"})
            continue
        notes = []
        if len(trusted):
            best = trusted.loc[trusted["speedup_vs_eager"].idxmax()]
        else:
            best = good.loc[good["latency_ms_p50"].idxmin()]
            notes.append("no speedup: " + _why_no_speedup(g, best))
        shown = best["speedup_trusted"] and len(trusted)
        faster = g[~(g["reliable"] & g["speedup_trusted"]) & (g["latency_ms_p50"] < best["latency_ms_p50"])]
        for r in faster.to_dict("records"):
            why = r["flags"] if not r["reliable"] else (_wide(r) or "its eager fp32 row is not reliable")
            value = _speed_text(r) or f"{r['latency_ms_p50']:.4g} ms"
            notes.append(f"not ranked: {_mode_text(r)} {value} ({why})")
        out.append({**{k: best[k] for k in SAME_CASE + MODE + ["latency_ms_p50", "throughput_ips", "rounds"]},
                    **{k: best[k] if shown else None
                       for k in ("speedup_vs_eager", "speedup_vs_eager_ci_low", "speedup_vs_eager_ci_high")},
                    "note": "; ".join(notes)})
    best = pd.DataFrame(out, columns=cols)
    if not (pd.to_numeric(best["ddp"], errors="coerce").fillna(0) > 0).any():
        best = best.drop(columns="ddp")  # ddp shown only where a case has it
    return best


def _speed_text(r: Mapping) -> str:
    v = r.get("speedup_vs_eager")
    if v is None or v != v:
        return ""
    lo, hi = r.get("speedup_vs_eager_ci_low"), r.get("speedup_vs_eager_ci_high")
    if lo is None or lo != lo:
        return f"{v:.2f}x"
    return f"{v:.2f}x [{lo:.2f}, {hi:.2f}]"


def _wide(r: Mapping) -> str:
    lo, hi, v = r.get("speedup_vs_eager_ci_low"), r.get("speedup_vs_eager_ci_high"), r.get("speedup_vs_eager")
    if lo is None or lo != lo or v is None or v != v:
        return ""
    return f"CI +-{(hi - lo) / 2 / v:.0%} over {int(r['speedup_vs_eager_rounds'])} round(s)"


def _why_no_speedup(g: pd.DataFrame, best) -> str:
    ref = g[(g[MODE] == pd.Series(REFERENCE, index=MODE)).all(axis=1)]
    if ref.empty:
        return "no ok eager fp32 row"
    if not ref["reliable"].iloc[0] or (ref["flags"].iloc[0] and int(ref["rounds"].iloc[0]) <= 1):
        return f"the eager fp32 row is {ref['flags'].iloc[0]}"
    return _wide(best) or "its interval is too wide"


def ratio_to_baseline(df: pd.DataFrame, baseline: str, cpu_count: int | None = None) -> pd.DataFrame:
    """Each variant's latency divided by the baseline variant's, per identical case settings,
    paired round by round (> 1 = slower than the baseline), with its interval and rounds. `note`
    names the flags of the row or of the baseline's row, or the interval's width: such a ratio is
    shown marked, not trusted (`trusted`)."""
    if baseline not in set(df["model"]):
        raise UserError(f"baseline model {baseline!r} is not in these results; "
                        f"models: {', '.join(sorted(set(df['model'])))}")
    keys = [c for c in columns.CASE_COLUMNS if c != "model"]
    ok = with_flags(df[_ok(df)], cpu_count)
    ok["latency_ms_p50"] = pd.to_numeric(ok["latency_ms_p50"])
    records = ok.to_dict("records")
    base = {tuple(r[k] for k in keys): r for r in records if r["model"] == baseline}
    pairs, groups = {}, {}
    for i, r in enumerate(records):
        b = base.get(tuple(r[k] for k in keys))
        if b is not None:
            pairs[i] = (r, b)
            if r["reliable"] and b["reliable"]:
                groups[i] = tuple(r[k] for k in SAME_CASE if k != "model")
    found = rounds.pair_many(pairs, groups)
    ratios, trusted, notes = [], [], []
    for i, r in enumerate(records):
        b = pairs[i][1] if i in pairs else None
        ratio = found.get(i)
        good = trusted_ratio(ratio, r, b, cpu_count) if b is not None else False
        ratios.append(ratio)
        trusted.append(good)
        notes.append(_join(r["flags"], f"{baseline}: {b['flags']}" if b is not None and b["flags"] and r["model"] != baseline
                           else "", ratio_note(ratio, good)))
    name = f"latency_ratio_to_{baseline}"
    _ratio_columns(ok, name, ratios)
    ok["trusted"] = pd.Series(trusted, index=ok.index, dtype=bool)
    ok["note"] = notes
    return ok[["model"] + keys + ["latency_ms_p50", name, f"{name}_ci_low", f"{name}_ci_high", f"{name}_rounds",
                                  "trusted", "note"]]


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


# ------------------------------------------------------------------ when to stop measuring
def needs_rounds(df: pd.DataFrame, target: float, baseline: str | None = None,
                 cpu_count: int | None = None) -> set[str]:
    """The case keys a next round should measure (bench.execute.rounds): every reliable row
    whose speedup over eager fp32, or ratio to the baseline variant, has no interval yet or
    one wider than `target` (half-width over the ratio), together with the row it is divided
    by; a row compared with nothing (a sweep of one mode and no baseline): its own latency's
    interval over rounds. Rows that are not reliable (failed, unsteady, output differs) are
    never wanted: more rounds would not rank them."""
    from bench.core.case import Case

    if df.empty:
        return set()
    view = with_speedup(df, cpu_count)
    rows = view.to_dict("records")
    keys = [Case.from_row(r).key() for r in rows]
    by_key = dict(zip(keys, rows))
    need: set[str] = set()
    compared: set[str] = set()

    def wide(lo, hi, v) -> bool:
        if lo is None or lo != lo or v is None or v != v or v <= 0:
            return True
        return (hi - lo) / 2 / v > target

    refs = {tuple(r[k] for k in SAME_CASE): k for k, r in by_key.items()
            if tuple(r[m] for m in MODE) == REFERENCE}
    for k, r in by_key.items():
        if not r["reliable"] or r["status"] not in columns.OK_STATUSES:
            continue
        ref = refs.get(tuple(r[c] for c in SAME_CASE))
        if ref is None or ref == k or not by_key[ref]["reliable"]:
            continue
        compared |= {k, ref}
        if wide(r["speedup_vs_eager_ci_low"], r["speedup_vs_eager_ci_high"], r["speedup_vs_eager"]):
            need |= {k, ref}
    if baseline is not None and baseline in set(df["model"]):
        name = f"latency_ratio_to_{baseline}"
        case_cols = [c for c in columns.CASE_COLUMNS if c != "model"]
        base_key = {tuple(r[c] for c in case_cols): k for k, r in by_key.items() if r["model"] == baseline}
        for r in ratio_to_baseline(df, baseline, cpu_count).to_dict("records"):
            k = Case.from_row(r).key()
            b = base_key.get(tuple(r[c] for c in case_cols))
            if r["model"] == baseline or b is None or k not in by_key or not (by_key[k]["reliable"] and by_key[b]["reliable"]):
                continue
            compared |= {k, b}
            if wide(r[f"{name}_ci_low"], r[f"{name}_ci_high"], r[name]):
                need |= {k, b}
    for k, r in by_key.items():
        if k in compared or not r["reliable"] or r["status"] not in columns.OK_STATUSES:
            continue
        if n_rounds(r) < 2 or wide(r.get("latency_ms_ci_low"), r.get("latency_ms_ci_high"), r.get("latency_ms_p50")):
            need.add(k)
    return need
