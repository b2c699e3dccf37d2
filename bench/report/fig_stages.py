"""Figures of where the time goes (bench.results.stages): per variant, the time of each stage
stacked beside its MACs per stage; and the roofline of every stage: achieved GMAC/s against
arithmetic intensity, under the device's measured compute peak and copy bandwidth."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from bench import escape
from bench.core.profile import STAGES
from bench.report import figbase as F
from bench.results.stages import device_peak


def _mode(r: Mapping) -> str:
    return f"{r['layout']} {r['precision']} " + ("eager" if r["compile"] == "none" else f"compile:{r['compile']}")


def stage_bars(long: pd.DataFrame, env: Mapping) -> list[F.Figure]:
    """Per (device, workload, batch, size, mode): one pair of bars per variant, time per stage
    (ms, stacked, left) and conv+linear MACs per stage (G, stacked, right)."""
    out = []
    keys = ["device", "workload", "batch_size", "image_size", "layout", "precision", "compile"]
    for key, g in long.groupby(keys, sort=False):
        r0 = dict(zip(keys, key))
        models = list(dict.fromkeys(g["model"]))
        fig, (ax_t, ax_m) = F.new_figure(max(6.0, 1.1 * len(models) + 3.5), 4.6, 1, 2)
        for ax, col, scale, label in ((ax_t, "ms", 1.0, "time per step (ms)"),
                                      (ax_m, "macs", 1e-9, "conv + linear MACs per step (G)")):
            bottom = [0.0] * len(models)
            for i, s in enumerate(STAGES):
                vals = []
                for m in models:
                    v = g[(g["model"] == m) & (g["stage"] == s)][col]
                    vals.append(float(v.iloc[0]) * scale if len(v) and v.iloc[0] == v.iloc[0] else 0.0)
                ax.bar(range(len(models)), vals, bottom=bottom, color=F.COLORS[i % len(F.COLORS)], label=s)
                bottom = [b + v for b, v in zip(bottom, vals)]
            ax.set_xticks(range(len(models)), [escape.mathtext(m, 24) for m in models], rotation=30, ha="right",
                          fontsize=8)
            ax.set_ylabel(label)
            ax.grid(axis="y", alpha=0.3)
        ax_t.legend(fontsize=7, frameon=False, loc="upper left")
        title = (f"Where the time goes, stage by stage: {r0['workload']} bs{r0['batch_size']} {r0['image_size']} px "
                 f"{_mode(r0)}, {r0['device']}")
        cap = F.caption("Left: median time of each stage inside one step (stage pass, eager, after the timed samples); "
                        "right: its conv+linear MACs (fvcore).", F.machine(env, g.to_dict("records")))
        F.finish(fig, title, cap)
        out.append(F.Figure(F.slug("stages", r0["device"], r0["workload"], f"bs{r0['batch_size']}",
                                   f"{r0['image_size']}px", r0["layout"], r0["precision"], r0["compile"]), title, cap, fig))
    return out


def roofline(long: pd.DataFrame, env: Mapping) -> list[F.Figure]:
    """Per (device, precision): every stage of every case as a point (arithmetic intensity,
    achieved GMAC/s), log-log, under the roofline min(peak, bandwidth x intensity) from the
    run's peak measurement; a stage's marker is its stage, its colour its variant."""
    d = long.dropna(subset=["intensity", "gmacs_per_s"])
    out = []
    for (device, prec), g in d.groupby(["device", "precision"], sort=False):
        peak, bw = device_peak(env, str(prec)), (env.get("peak") or {}).get("copy_gb_per_s")
        fig, (ax,) = F.new_figure(7.5, 5.0)
        models = list(dict.fromkeys(g["model"]))
        for r in g.to_dict("records"):
            ax.plot(r["intensity"], r["gmacs_per_s"], linestyle="",
                    marker=F.MARKERS[STAGES.index(r["stage"]) % len(F.MARKERS)],
                    color=F.COLORS[models.index(r["model"]) % len(F.COLORS)], markerfacecolor="none")
        lo, hi = float(g["intensity"].min()) / 2, float(g["intensity"].max()) * 2
        if peak and bw:
            import numpy as np

            xs = np.geomspace(lo, hi, 200)
            ax.plot(xs, np.minimum(peak, bw * xs), color="#333333", linewidth=1.2,
                    label=f"roof: {peak:.3g} GMAC/s peak, {bw:.3g} GB/s copy")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("arithmetic intensity (MACs per byte moved, estimated from the counts)")
        ax.set_ylabel("achieved GMAC/s")
        ax.grid(alpha=0.3, which="both")
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], color=F.COLORS[i % len(F.COLORS)], marker="o", linestyle="",
                          label=escape.mathtext(m, 40)) for i, m in enumerate(models)]
        handles += [Line2D([], [], color="#555555", marker=F.MARKERS[i % len(F.MARKERS)], linestyle="",
                           markerfacecolor="none", label=s) for i, s in enumerate(STAGES)]
        if peak and bw:
            handles.append(Line2D([], [], color="#333333", label=f"roof: {peak:.3g} GMAC/s, {bw:.3g} GB/s"))
        fig.legend(handles=handles, loc="outside right center", fontsize=7, frameon=False)
        title = f"Roofline of every stage: {prec}, {device}"
        cap = F.caption("Achieved conv+linear GMAC/s of each stage (stage pass) against its MACs per byte moved "
                        "(weights once + every conv/linear output, from the counts); the roof is the run's measured "
                        "peak (large matmul/conv) and its copy bandwidth (bytes read + written per second).",
                        F.machine(env, g.to_dict("records")))
        F.finish(fig, title, cap)
        out.append(F.Figure(F.slug("roofline", device, prec), title, cap, fig))
    return out
