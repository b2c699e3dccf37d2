"""Figures drawn from raw latency samples.

4. :func:`latency_distributions`: per case, a box of its samples (whiskers at p1 and p99) with
   p50, p90 and p99 marked; a flagged row's box is red and its label names the flags.
5. :func:`gate_distributions`: a speed-gate document (``check --speed --out gate.json``): per
   case, base against candidate samples and per-process medians, with the ratio and its CI.
   :func:`compare_ratios`: a comparison of runs (bench.results.compare) as ratios with CIs.

Each returns a list of bench.report.figbase.Figure; rows without samples are left out. Every
name, label, verdict and path drawn goes through bench.escape.mathtext.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from bench.core.case import Case
from bench import escape
from bench.report import figbase as F
from bench.results import views

#: Cases per distribution figure (a longer sweep gets more figures).
CASES_PER_FIGURE = 40


def _samples(row: Mapping) -> np.ndarray | None:
    s = row.get("samples_ms")
    if not isinstance(s, list) or not s:
        return None
    x = np.asarray([v for v in s if isinstance(v, (int, float))], dtype=float)
    x = x[np.isfinite(x)]
    return x if x.size else None


def latency_distributions(rows: Sequence[Mapping], env: Mapping, cpu_count: int | None = None) -> list[F.Figure]:
    """Per (device, workload, batch, image size), CASES_PER_FIGURE cases a figure: horizontal
    boxes of each case's per-batch latency samples (ms; log axis when they span > 20x)."""
    groups: dict[tuple, list[tuple[Mapping, np.ndarray]]] = {}
    for r in rows:
        x = _samples(r)
        if x is not None and r.get("status") in ("ok", "ok-reduced"):
            key = (r["device"], r["workload"], r["batch_size"], r["image_size"])
            groups.setdefault(key, []).append((r, x))
    out = []
    for (device, workload, bs, size), cases in groups.items():
        for part, start in enumerate(range(0, len(cases), CASES_PER_FIGURE)):
            chunk = cases[start:start + CASES_PER_FIGURE]
            out.append(_distribution_figure(chunk, env, cpu_count, device, workload, bs, size,
                                            part if len(cases) > CASES_PER_FIGURE else None))
    return out


def _distribution_figure(chunk, env, cpu_count, device, workload, bs, size, part) -> F.Figure:
    fig, (ax,) = F.new_figure(10, 0.34 * len(chunk) + 2.0)
    labels, data, flagged = [], [], []
    for r, x in chunk:
        why = views.flags(r, cpu_count)
        c = Case.from_row(r)
        labels.append(escape.mathtext(c.model) + " " + escape.mathtext(f"{c.layout}/{c.precision}/{c.compile}")
                      + (f"  [{escape.mathtext(', '.join(why))}]" if why else ""))
        data.append(x)
        flagged.append(bool(why))
    pos = np.arange(len(chunk))[::-1]  # first case on top
    box = ax.boxplot(data, positions=pos, **F.horizontal(), whis=(1, 99), showfliers=False, widths=0.6, patch_artist=True,
                     medianprops={"color": "black"})
    for patch, bad in zip(box["boxes"], flagged):
        patch.set_facecolor("#f5b7b1" if bad else "#aed6f1")
        patch.set_edgecolor(F.FLAGGED_COLOR if bad else "#2e86c1")
    for y, x in zip(pos, data):
        p50, p90, p99 = np.percentile(x, [50, 90, 99])
        ax.plot([p50], [y], marker="|", markersize=12, color="black", linestyle="")
        ax.plot([p90], [y], marker="^", markersize=5, color="#d35400", linestyle="")
        ax.plot([p99], [y], marker="D", markersize=4, color="#7d3c98", linestyle="")
    ax.set_yticks(pos, labels, fontsize=7)
    for tick, bad in zip(ax.get_yticklabels(), flagged):
        if bad:
            tick.set_color(F.FLAGGED_COLOR)
    lo, hi = min(float(x.min()) for x in data), max(float(x.max()) for x in data)
    if lo > 0 and hi / lo > 20:
        ax.set_xscale("log")
    ax.set_xlabel("latency per batch (ms)")
    ax.grid(alpha=0.3, axis="x")
    from matplotlib.lines import Line2D

    ax.legend(handles=[Line2D([], [], marker="|", color="black", linestyle="", markersize=10, label="p50"),
                       Line2D([], [], marker="^", color="#d35400", linestyle="", label="p90"),
                       Line2D([], [], marker="D", color="#7d3c98", linestyle="", label="p99")],
              fontsize=7, loc="lower right")
    title = f"Latency distribution per case: {workload}, batch {bs}, {size} px, {device}" + (
        f" (part {part + 1})" if part is not None else "")
    cap = F.caption("Every timed call's latency in ms per batch: box = p25-p75, whiskers = p1-p99; red = flagged "
                    "(noisy, unsteady, busy CPU), label names why.", F.machine(env, [r for r, _ in chunk]))
    F.finish(fig, title, cap)
    return F.Figure(F.slug("latency_distribution", device, workload, f"bs{bs}", f"{size}px",
                           f"part{part + 1}" if part is not None else ""), title, cap, fig)


def gate_distributions(doc: Mapping) -> list[F.Figure]:
    """A speed-gate document: one panel per case with both sides' pooled samples (boxes) and
    each process's median (dots), titled with the ratio candidate / base, its CI and verdict."""
    cases = [e for e in doc.get("cases", []) if e.get("base_rounds") and e.get("candidate_rounds")]
    if not cases:
        return []
    rows, cols = F.grid(len(cases), 2)
    fig, axes = F.new_figure(6.2 * cols, 3.2 * rows + 0.8, rows, cols)
    base_name = (doc.get("base") or {}).get("ref") or (doc.get("base") or {}).get("path") or "base"
    for ax, e in zip(axes, cases):
        sides = [("base: " + escape.mathtext(base_name), e["base_rounds"]), ("candidate", e["candidate_rounds"])]
        pooled = [np.concatenate([np.asarray(r, dtype=float) for r in rounds if r]) for _, rounds in sides]
        ax.boxplot(pooled, positions=[1, 0], **F.horizontal(), whis=(1, 99), showfliers=False, widths=0.5)
        for y, (_, rounds) in zip((1, 0), sides):
            meds = [float(np.median(r)) for r in rounds if r]
            ax.plot(meds, np.full(len(meds), y) + np.linspace(-0.15, 0.15, len(meds)), "o", markersize=4,
                    color="#2e86c1", alpha=0.8)
        ax.set_yticks([1, 0], [s for s, _ in sides], fontsize=8)
        c = e.get("comparison") or {}
        verdict = e.get("verdict", "")
        shown = escape.mathtext(verdict)
        head = f"{escape.mathtext(e.get('label', ''))}\n" + (
            f"ratio {c['ratio']:.3f} [{c['ci_low']:.3f}, {c['ci_high']:.3f}] {shown}" if c else shown)
        ax.set_title(head, fontsize=8, color=F.FLAGGED_COLOR if verdict == "regression" else "black")
        ax.set_xlabel("latency per batch (ms)")
        ax.grid(alpha=0.3, axis="x")
    F.drop_unused(axes, len(cases))
    env = doc.get("environment") or {}
    title = "Speed gate: base against candidate"
    paired = any((e.get("comparison") or {}).get("method") == "paired" for e in cases)
    how = ("geometric mean of the paired per-round ratios of each round's 10th percentile, 95% CI (t over rounds)"
           if paired else "Hodges-Lehmann, 95% CI (inverted Mann-Whitney)")
    cap = F.caption(f"Latency samples in ms per batch of both sides (box = p25-p75, whiskers = p1-p99; dots = "
                    f"each process's median). Ratio = candidate / base ({how}), "
                    f"threshold {float(doc.get('threshold', 0)):.0%}.",
                    F.machine({**env, "time_utc": doc.get("time_utc") or env.get("time_utc")}))
    F.finish(fig, title, cap)
    return [F.Figure("speed_gate", title, cap, fig)]


def compare_ratios(cmp: Mapping) -> list[F.Figure]:
    """A comparison (bench.results.compare.RunComparison.as_dict()): per shared case, each later
    run's latency ratio to the first run with its 95% CI (a hollow marker: no samples, no CI)."""
    cases = [c for c in cmp.get("cases", []) if c.get("ratio") is not None]
    if not cases:
        return []
    labels = list(dict.fromkeys(c["label"] for c in cases))
    runs = list(dict.fromkeys(c["run"] for c in cases))
    fig, (ax,) = F.new_figure(10, 0.32 * len(labels) * max(1, len(runs) ** 0.5) + 2.2)
    for i, run in enumerate(runs):
        colour = F.COLORS[i % len(F.COLORS)]
        for c in (c for c in cases if c["run"] == run):
            y = len(labels) - 1 - labels.index(c["label"]) + (i - (len(runs) - 1) / 2) * 0.18
            if c.get("ci_low") is not None:
                ax.errorbar([c["ratio"]], [y], xerr=[[c["ratio"] - c["ci_low"]], [c["ci_high"] - c["ratio"]]], fmt="o",
                            color=colour, markersize=4, capsize=2, gid=f"ratio-{i}")
            else:
                ax.plot([c["ratio"]], [y], "o", markerfacecolor="none", color=colour, gid=f"ratio-{i}")
        ax.plot([], [], "o", color=colour, label=f"{escape.mathtext(run)} / {escape.mathtext(cmp['runs'][0])}")
    ax.axvline(1.0, color="#888888", linewidth=0.8)
    ax.set_yticks(range(len(labels))[::-1], [escape.mathtext(x) for x in labels], fontsize=7)
    ax.set_xlabel(f"latency ratio to {escape.mathtext(cmp['runs'][0])} (> 1 = slower), 95% CI")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="x")
    envs = cmp.get("environments") or [{}]
    title = "Run comparison: latency ratio per case"
    cap = F.caption("Ratio of median latencies (Hodges-Lehmann on raw samples) with 95% CI (inverted "
                    "Mann-Whitney); hollow = a side without samples (ratio of medians, no CI).",
                    "; ".join(F.machine(e) for e in envs))
    F.finish(fig, title, cap)
    return [F.Figure("compare_ratios", title, cap, fig)]
