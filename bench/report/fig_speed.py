"""Figures of speed against cost, batch size, mode and GPU count, from a run's table.

1. :func:`throughput_vs_gmacs`: throughput against GMACs per image, one marker per variant and
   mode, the Pareto front of the reliable rows drawn (what a variant's extra cost buys).
2. :func:`batch_curves`: latency and throughput against batch size per variant, log-log.
3. :func:`speedup_heatmap`: variant x mode speedup over eager fp32.
6. :func:`multi_gpu`: throughput and scaling efficiency against GPU count (multi-GPU rows only).

A flagged row (bench.results.views.flags: not ok, noisy, unsteady, busy CPU, output differs) is
drawn hollow or hatched and never crowned: not on a front, no colour in the heat map. Every
function returns a list of bench.report.figbase.Figure (empty when the rows hold nothing to draw).
Every name, mode and flag drawn goes through bench.escape.mathtext.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from bench import escape
from bench.report import figbase as F
from bench.results import series, views

#: The line id of the drawn Pareto front (a test reads its points back from the figure).
FRONT_GID = "pareto-front"


def _styles(values) -> dict:
    return {v: i for i, v in enumerate(dict.fromkeys(values))}


def throughput_vs_gmacs(df: pd.DataFrame, env: Mapping, cpu_count: int | None = None) -> list[F.Figure]:
    """One figure per (device, workload, image size), one panel per batch size."""
    d = views.analysed(df, cpu_count)[lambda v: v["status"].isin(("ok", "ok-reduced"))]
    d = d.assign(gmacs=pd.to_numeric(d["macs"], errors="coerce") / 1e9,
                 ips=pd.to_numeric(d["throughput_ips"], errors="coerce")).dropna(subset=["gmacs", "ips"])
    out = []
    colour, marker = _styles(d["model"]), _styles(series.mode_label(*m) for m in zip(d["layout"], d["precision"],
                                                                                      d["compile"], d["backend"]))
    for (device, workload, size), g in d.groupby(["device", "workload", "image_size"], sort=False):
        batches = list(dict.fromkeys(g["batch_size"]))
        rows, cols = F.grid(len(batches), 2)
        fig, axes = F.new_figure(6.5 * cols, 4.6 * rows + 0.6, rows, cols)
        for ax, bs in zip(axes, batches):
            p = g[g["batch_size"] == bs]
            for r in p.to_dict("records"):
                c = F.COLORS[colour[r["model"]] % len(F.COLORS)]
                m = F.MARKERS[marker[series.mode_label(r["layout"], r["precision"], r["compile"], r["backend"])]
                              % len(F.MARKERS)]
                ax.scatter(r["gmacs"], r["ips"], s=46, marker=m, edgecolors=c, linewidths=1.4,
                           facecolors=c if r["reliable"] else "none", zorder=3)
            front = series.pareto_front(p["gmacs"], p["ips"], p["reliable"])
            fp = p[front].sort_values("gmacs")
            if len(fp):
                # a step line: from each front point, the best throughput available at that cost or less
                ax.step(fp["gmacs"], fp["ips"], where="post", color="black", linestyle="--", linewidth=1, zorder=2,
                        gid=FRONT_GID, label="Pareto front (reliable rows)")
                ax.scatter(fp["gmacs"], fp["ips"], s=150, facecolors="none", edgecolors="black", linewidths=0.8,
                           zorder=4, gid=FRONT_GID + "-rings")
                for r in fp.to_dict("records"):
                    mode = series.mode_label(r["layout"], r["precision"], r["compile"], r["backend"])
                    ax.annotate(f"{escape.mathtext(r['model'])}\n{escape.mathtext(mode)}",
                                (r["gmacs"], r["ips"]), fontsize=6, xytext=(4, 4), textcoords="offset points")
            if p["ips"].min() > 0 and p["ips"].max() / p["ips"].min() > 10:
                ax.set_yscale("log")
            ax.set_title(f"batch {bs}", fontsize=9)
            ax.set_xlabel("GMACs per image (conv + linear, fvcore)")
            ax.set_ylabel("throughput (images/s)")
            ax.grid(alpha=0.3)
        F.drop_unused(axes, len(batches))
        _legend(fig, colour, marker)
        title = f"Throughput against cost: {workload}, {size} px, {device}"
        cap = F.caption("Throughput in images/s (batch / median latency) against GMACs per image; filled = reliable, "
                        "hollow = flagged (noisy, unsteady, busy CPU, not ok), never on the front; ringed = on the front.", F.machine(env, g.to_dict("records")))
        F.finish(fig, title, cap)
        out.append(F.Figure(F.slug("throughput_vs_gmacs", device, workload, f"{size}px"), title, cap, fig))
    return out


def _legend(fig, colour: dict, marker: dict) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=F.COLORS[i % len(F.COLORS)], marker="o", linestyle="", label=escape.mathtext(m))
               for m, i in colour.items()]
    handles += [Line2D([], [], color="#555555", marker=F.MARKERS[i % len(F.MARKERS)], linestyle="",
                       label=escape.mathtext(m), markerfacecolor="none") for m, i in marker.items()]
    fig.legend(handles=handles, loc="outside right center", fontsize=7, frameon=False)


def batch_curves(df: pd.DataFrame, env: Mapping, cpu_count: int | None = None) -> list[F.Figure]:
    """Per (device, workload, image size) with more than one batch size: for each variant, p50
    latency (top) and throughput (bottom) against batch size, one line per mode, log-log."""
    d = views.analysed(df, cpu_count)[lambda v: v["status"].isin(("ok", "ok-reduced"))]
    d = d.assign(ms=pd.to_numeric(d["latency_ms_p50"], errors="coerce"),
                 ips=pd.to_numeric(d["throughput_ips"], errors="coerce"),
                 bs=pd.to_numeric(d["batch_size"], errors="coerce")).dropna(subset=["ms", "ips", "bs"])
    out = []
    for (device, workload, size), g in d.groupby(["device", "workload", "image_size"], sort=False):
        if g["bs"].nunique() < 2:
            continue
        models = list(dict.fromkeys(g["model"]))
        cols = min(len(models), 4)
        blocks = math.ceil(len(models) / cols)
        fig, axes = F.new_figure(3.6 * cols + 1.8, 5.2 * blocks + 0.6, 2 * blocks, cols)
        modes = _styles(series.mode_label(*m) for m in zip(g["layout"], g["precision"], g["compile"], g["backend"]))
        for k, model in enumerate(models):
            top, bottom = axes[(k // cols) * 2 * cols + k % cols], axes[(k // cols) * 2 * cols + cols + k % cols]
            for (lay, prec, comp, bk), line in g[g["model"] == model].groupby(["layout", "precision", "compile", "backend"],
                                                                               sort=False):
                line = line.sort_values("bs")
                i = modes[series.mode_label(lay, prec, comp, bk)]
                for ax, y in ((top, "ms"), (bottom, "ips")):
                    ax.plot(line["bs"], line[y], color=F.COLORS[i % len(F.COLORS)], linewidth=1.2)
                    for r in line.to_dict("records"):
                        ax.plot(r["bs"], r[y], marker=F.MARKERS[i % len(F.MARKERS)], color=F.COLORS[i % len(F.COLORS)],
                                markerfacecolor=F.COLORS[i % len(F.COLORS)] if r["reliable"] else "none")
            for ax, what in ((top, "p50 latency (ms per batch)"), (bottom, "throughput (images/s)")):
                ax.set_xscale("log", base=2)
                ax.set_yscale("log")
                ax.set_xlabel("batch size (images)")
                ax.set_ylabel(what)
                ax.grid(alpha=0.3, which="both")
            top.set_title(escape.mathtext(model), fontsize=9)
        used = {(k // cols) * 2 * cols + k % cols + j * cols for k in range(len(models)) for j in (0, 1)}
        for i, ax in enumerate(axes):
            ax.set_visible(i in used)
        from matplotlib.lines import Line2D

        fig.legend(handles=[Line2D([], [], color=F.COLORS[i % len(F.COLORS)], marker=F.MARKERS[i % len(F.MARKERS)],
                                   label=escape.mathtext(m)) for m, i in modes.items()], loc="outside right center",
                   fontsize=7, frameon=False)
        title = f"Latency and throughput against batch size: {workload}, {size} px, {device}"
        cap = F.caption("Median latency in ms per batch and throughput in images/s against batch size, log-log; "
                        "hollow markers = flagged rows.", F.machine(env, g.to_dict("records")))
        F.finish(fig, title, cap)
        out.append(F.Figure(F.slug("batch_scaling", device, workload, f"{size}px"), title, cap, fig))
    return out


def speedup_heatmap(df: pd.DataFrame, env: Mapping, cpu_count: int | None = None) -> list[F.Figure]:
    """Per (device, workload, batch, image size): variants (rows) x modes (columns), coloured by
    speedup over eager fp32 on a log scale centred at 1. An untrusted cell (the row or its eager
    row flagged) has no colour: hatched, its number in parentheses with the reason."""
    from matplotlib.colors import TwoSlopeNorm

    out = []
    for (device, workload, bs, size), g in series.speedup_grid(df, cpu_count):
        models, modes = list(dict.fromkeys(g["model"])), list(dict.fromkeys(g["mode"]))
        value = np.full((len(models), len(modes)), np.nan)
        for r in g.to_dict("records"):
            if r["speedup_trusted"]:
                value[models.index(r["model"]), modes.index(r["mode"])] = math.log2(r["speedup_vs_eager"])
        fig, (ax,) = F.new_figure(1.6 * len(modes) + 3.2, 0.5 * len(models) + 2.4)
        span = max(float(np.nanmax(np.abs(value))) if np.isfinite(value).any() else 1.0, 0.1)
        ax.set_facecolor("#eeeeee")
        im = ax.imshow(np.ma.masked_invalid(value), cmap="RdYlGn", norm=TwoSlopeNorm(0.0, -span, span), aspect="auto")
        im.set_gid("speedup-heatmap")
        for r in g.to_dict("records"):
            y, x = models.index(r["model"]), modes.index(r["mode"])
            if r["speedup_trusted"]:
                ax.text(x, y, f"{r['speedup_vs_eager']:.2f}x", ha="center", va="center", fontsize=8)
            else:
                ax.add_patch(_hatch(x, y))
                why = r["flags"] or "eager row flagged"
                ax.text(x, y, f"({r['speedup_vs_eager']:.2f}x)\n{escape.mathtext(why)}", ha="center", va="center",
                        fontsize=6, color=F.FLAGGED_COLOR)
        ax.set_xticks(range(len(modes)), [escape.mathtext(m) for m in modes], rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(models)), [escape.mathtext(m) for m in models], fontsize=8)
        bar = fig.colorbar(im, ax=ax, shrink=0.8)
        ticks = [t for t in (-3, -2, -1, 0, 1, 2, 3) if abs(t) <= span + 1e-9] or [0]
        bar.set_ticks(ticks, labels=[f"{2.0 ** t:g}x" for t in ticks])
        bar.set_label("speedup over eager fp32 contiguous (log scale)")
        title = f"Speedup over eager fp32: {workload}, batch {bs}, {size} px, {device}"
        cap = F.caption("Speedup in x (times) = eager fp32 contiguous median latency / the mode's (> 1 faster). Hatched cells: "
                        "the row or its eager fp32 row is flagged; shown in parentheses, not ranked.",
                        F.machine(env, df[df["device"] == device].to_dict("records")))
        F.finish(fig, title, cap)
        out.append(F.Figure(F.slug("speedup_heatmap", device, workload, f"bs{bs}", f"{size}px"), title, cap, fig))
    return out


def _hatch(x: float, y: float):
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, hatch="///", edgecolor="#bbbbbb", linewidth=0, gid="flagged")


def multi_gpu(df: pd.DataFrame, env: Mapping, cpu_count: int | None = None) -> list[F.Figure]:
    """Multi-GPU rows only: global throughput (with the ideal N x one-GPU line) and scaling
    efficiency against GPU count, one line per model/mode/batch per rank."""
    s = series.scaling(df, cpu_count)
    if s.empty:
        return []
    fig, (thr, eff) = F.new_figure(12, 4.8, 1, 2)
    key = ["model", "workload", "image_size", "layout", "precision", "compile", series.BATCH_PER_RANK]
    for i, (k, line) in enumerate(s.groupby(key, sort=False)):
        c, m = F.COLORS[i % len(F.COLORS)], F.MARKERS[i % len(F.MARKERS)]
        mode = series.mode_label(k[3], k[4], k[5])
        label = escape.mathtext(k[0]) + " " + escape.mathtext(f"{mode} {k[1]} {k[6]}/GPU")
        thr.plot(line[series.WORLD_SIZE], line["throughput_ips"], color=c, marker=m, label=label, gid="throughput")
        one = line[line[series.WORLD_SIZE] == 1]["throughput_ips"]
        if len(one):
            n = line[series.WORLD_SIZE]
            thr.plot(n, n * float(one.iloc[0]), color=c, linestyle=":", linewidth=0.8)
        eff.plot(line[series.WORLD_SIZE], line["scaling_efficiency"], color=c, marker=m, gid="efficiency")
        for r in line[~line["reliable"]].to_dict("records"):
            thr.plot(r[series.WORLD_SIZE], r["throughput_ips"], marker="o", markersize=11, markerfacecolor="none",
                     color=F.FLAGGED_COLOR)
    thr.set_xlabel("GPUs (ranks)")
    thr.set_ylabel("throughput, all GPUs (images/s)")
    thr.legend(fontsize=7)
    eff.axhline(1.0, color="#888888", linewidth=0.8)
    eff.set_xlabel("GPUs (ranks)")
    eff.set_ylabel("scaling efficiency = T(N) / (N x T(1))")
    eff.set_ylim(0, 1.15)
    for ax in (thr, eff):
        ax.set_xticks(sorted(set(s[series.WORLD_SIZE].astype(int))))
        ax.grid(alpha=0.3)
    title = "Multi-GPU scaling"
    cap = F.caption("Global throughput in images/s against GPU count (dotted: N x one-GPU throughput) and scaling "
                    "efficiency T(N) / (N x T(1)) at the same batch per GPU; red rings = flagged rows.",
                    F.machine(env, df.to_dict("records")))
    F.finish(fig, title, cap)
    return [F.Figure("multi_gpu_scaling", title, cap, fig)]
