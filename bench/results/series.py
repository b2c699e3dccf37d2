"""The data behind the figures (bench.report.figures): computed here, drawn there, so a test can
check what a figure shows without reading pixels.

- :func:`pareto_front`: which (cost, throughput) points no other point beats.
- :func:`speedup_grid`: variant x mode speedups over eager fp32, with their trust.
- :func:`scaling`: multi-GPU rows (``world_size``, ``batch_per_rank``) -> throughput and
  scaling efficiency against the one-GPU row.

Reliability is bench.results.views.flags: a flagged row is drawn marked and never on a front.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bench.results import views

#: Columns of multi-GPU rows: ranks (one GPU each) and the batch each rank runs; their
#: ``throughput_ips`` is the global throughput (all ranks).
WORLD_SIZE, BATCH_PER_RANK = "world_size", "batch_per_rank"


def pareto_front(cost: Sequence[float], value: Sequence[float], eligible: Sequence[bool] | None = None) -> np.ndarray:
    """Boolean mask of the points on the Pareto front of lower `cost` and higher `value`: an
    eligible point with finite numbers that no other eligible point matches or beats on both
    (lower-or-equal cost and higher-or-equal value, strictly better on one). Points that are
    not eligible (flagged rows) are never on the front and never push a point off it. Two
    identical points are both on it."""
    x = np.asarray(cost, dtype=float)
    y = np.asarray(value, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    if eligible is not None:
        ok &= np.asarray(eligible, dtype=bool)
    front = ok.copy()
    for i in np.flatnonzero(ok):
        dominated = ok & (x <= x[i]) & (y >= y[i]) & ((x < x[i]) | (y > y[i]))
        front[i] = not dominated.any()
    return front


def mode_label(layout: str, precision: str, compile_mode: str, backend: str = "pytorch") -> str:
    """A mode as people say it: ``channels_last bf16 compile:default``, eager when compile is
    none; another runtime by its name: ``contiguous int8 onnxruntime``."""
    if backend and backend == backend and backend != "pytorch":
        return f"{layout} {precision} {backend}"
    return f"{layout} {precision} " + ("eager" if compile_mode == "none" else f"compile:{compile_mode}")


def speedup_grid(df: pd.DataFrame, cpu_count: int | None = None) -> list[tuple[tuple, pd.DataFrame]]:
    """Per (device, workload, batch_size, image_size): a long frame with one line per measured
    variant x mode: model, mode (:func:`mode_label`), speedup_vs_eager, speedup_trusted, flags.
    Only ok rows with a speedup; variants and modes in first-seen order."""
    view = views.analysed(df, cpu_count)
    view = view[view["speedup_vs_eager"].notna()]
    out = []
    for key, g in view.groupby(["device", "workload", "batch_size", "image_size"], sort=False):
        g = g.assign(mode=[mode_label(*m) for m in zip(g["layout"], g["precision"], g["compile"], g["backend"])])
        out.append((key, g[["model", "mode", "speedup_vs_eager", "speedup_trusted", "flags"]].reset_index(drop=True)))
    return out


def has_multi_gpu(df: pd.DataFrame) -> bool:
    """Rows of a multi-GPU run: some row ran on more than one rank (``world_size`` > 1)."""
    if WORLD_SIZE not in df.columns:
        return False
    return bool((pd.to_numeric(df[WORLD_SIZE], errors="coerce") > 1).any())


def scaling(df: pd.DataFrame, cpu_count: int | None = None) -> pd.DataFrame:
    """Multi-GPU rows -> one line per (model, workload, image_size, mode, device, batch_per_rank,
    world_size): ``throughput_ips`` (global), ``scaling_efficiency`` = throughput(N) /
    (N x throughput(1)) of the same model/mode/batch_per_rank (NA without a one-GPU row), and
    ``reliable`` (bench.results.views.flags). Empty when the rows are not multi-GPU."""
    cols = ["model", "workload", "image_size", "layout", "precision", "compile", "device", BATCH_PER_RANK,
            WORLD_SIZE, "throughput_ips", "scaling_efficiency", "reliable", "flags"]
    if not has_multi_gpu(df):
        return pd.DataFrame(columns=cols)
    d = views.analysed(df, cpu_count)
    d = d[d["status"].isin(("ok", "ok-reduced"))].copy()
    if BATCH_PER_RANK not in d.columns:
        d[BATCH_PER_RANK] = d["batch_size"]
    d[WORLD_SIZE] = pd.to_numeric(d[WORLD_SIZE], errors="coerce")
    d["throughput_ips"] = pd.to_numeric(d["throughput_ips"], errors="coerce")
    d = d.dropna(subset=[WORLD_SIZE, "throughput_ips"])
    group = ["model", "workload", "image_size", "layout", "precision", "compile", "device", BATCH_PER_RANK]
    one = d[d[WORLD_SIZE] == 1].groupby(group)["throughput_ips"].first().rename("_one")
    d = d.join(one, on=group)
    d["scaling_efficiency"] = d["throughput_ips"] / (d[WORLD_SIZE] * d["_one"])
    return d.sort_values(group + [WORLD_SIZE])[cols].reset_index(drop=True)
