"""Why a variant costs what it costs: the stage pass's times (bench.core.stages) beside the
counts per stage (bench.core.profile) and the device's measured peak (bench.core.peak).

Per case and stage (stem, layer1..layer4, head):

- ``ms`` and ``share`` of the step (the stage pass's median times);
- ``gmacs_per_s``: conv+linear MACs x batch / time; ``peak_frac``: that over the device's peak
  for the case's precision (the larger of the run's matmul and conv GMAC/s);
- ``intensity`` (MACs per byte): the stage's MACs over an estimate of the bytes it moves, from
  the counts: its weights once plus every conv/linear output it writes (fvcore's activations)
  x batch, at the precision's element size (4 bytes fp32/tf32, 2 bf16/fp16). An estimate from
  counts, not measured memory traffic: it places a stage on the roofline, it does not prove
  where the roofline bends.

:func:`stage_diff` explains a variant against a baseline variant stage by stage: "+x ms, of
which stem +y ms". Computing only; rendering is bench.report.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from bench.core.profile import STAGES

ELEM_BYTES = {"fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2}
CASE = ["model", "workload", "batch_size", "image_size", "layout", "precision", "compile", "device"]


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v


def device_peak(env: Mapping, precision: str) -> float | None:
    """The device's peak GMAC/s for `precision` from the run's environment (bench.core.peak)."""
    p = (env.get("peak") or {}).get(precision) or {}
    vals = [v for v in (p.get("matmul_gmacs_per_s"), p.get("conv_gmacs_per_s")) if _num(v)]
    return max(vals) if vals else None


def stage_long(df: pd.DataFrame, env: Mapping | None = None) -> pd.DataFrame:
    """One line per case with stage times and stage: ms, share, macs, gmacs_per_s, peak_frac,
    bytes (estimate), intensity. Empty when no row has stage times."""
    cols = CASE + ["stage", "ms", "share", "macs", "gmacs_per_s", "peak_frac", "bytes", "intensity"]
    if "stage_ms_stem" not in df.columns:
        return pd.DataFrame(columns=cols)
    env = env or {}
    out = []
    for r in df.to_dict("records"):
        total = r.get("stage_total_ms")
        if not _num(r.get("stage_ms_stem")) or not _num(total) or total <= 0:
            continue
        peak = device_peak(env, str(r.get("precision")))
        eb = ELEM_BYTES.get(str(r.get("precision")), 4)
        bs = r.get("batch_size") or 1
        for s in STAGES:
            ms, macs = r.get(f"stage_ms_{s}"), r.get(f"macs_{s}")
            if not _num(ms):
                continue
            gm = macs * bs / (ms * 1e-3) / 1e9 if _num(macs) and ms > 0 else None
            params, acts = r.get(f"params_{s}"), r.get(f"activations_{s}")
            moved = eb * (params + bs * acts) if _num(params) and _num(acts) else None
            out.append({**{k: r.get(k) for k in CASE}, "stage": s, "ms": ms, "share": ms / total,
                        "macs": macs * bs if _num(macs) else None, "gmacs_per_s": gm,
                        "peak_frac": gm / peak if gm is not None and peak else None, "bytes": moved,
                        "intensity": macs * bs / moved if moved and _num(macs) else None})
    return pd.DataFrame(out, columns=cols)


def stage_table(df: pd.DataFrame, env: Mapping | None = None) -> pd.DataFrame:
    """One line per case with stage times: each stage's ms (share), GMAC/s and % of peak,
    the residue, and the whole step."""
    long = stage_long(df, env)
    if long.empty:
        return pd.DataFrame()
    rows = []
    for key, g in long.groupby(CASE, sort=False):
        r = dict(zip(CASE, key))
        src = df[(df[CASE] == pd.Series(key, index=CASE)).all(axis=1)].iloc[0]
        for s in g.to_dict("records"):
            r[f"{s['stage']} ms"] = s["ms"]
            r[f"{s['stage']} share"] = s["share"]
            r[f"{s['stage']} GMAC/s"] = s["gmacs_per_s"]
            r[f"{s['stage']} % peak"] = s["peak_frac"]
        r["residue ms"] = src.get("stage_residue_ms")
        r["residue share"] = src.get("stage_residue_frac")
        r["step ms (stage pass)"] = src.get("stage_total_ms")
        rows.append(r)
    return pd.DataFrame(rows)


def stage_diff(df: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Each variant's stage times against `baseline`'s in the same case and mode: the whole
    difference (ms) and each stage's share of it, with one sentence: "resnet50s vs resnet50:
    +12.3 ms, of which stem +9.1 ms, layer1 +3.0 ms"."""
    keys = [c for c in CASE if c != "model"]
    have = df[df.get("stage_total_ms", pd.Series(dtype=float)).notna()] if "stage_total_ms" in df.columns else df.iloc[0:0]
    base = {tuple(r[k] for k in keys): r for r in have.to_dict("records") if r["model"] == baseline}
    out = []
    for r in have.to_dict("records"):
        b = base.get(tuple(r[k] for k in keys))
        if b is None or r["model"] == baseline:
            continue
        d = {s: r.get(f"stage_ms_{s}") - b.get(f"stage_ms_{s}") for s in STAGES
             if _num(r.get(f"stage_ms_{s}")) and _num(b.get(f"stage_ms_{s}"))}
        total = r["stage_total_ms"] - b["stage_total_ms"]
        big = sorted(d.items(), key=lambda kv: -abs(kv[1]))[:3]
        text = (f"{r['model']} vs {baseline}: {total:+.2f} ms, of which "
                + ", ".join(f"{s} {v:+.2f} ms" for s, v in big))
        out.append({**{k: r.get(k) for k in CASE}, "baseline": baseline, "delta_ms": total,
                    **{f"delta_{s}_ms": v for s, v in d.items()}, "explained": text})
    return pd.DataFrame(out)
