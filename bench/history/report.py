"""`history report`: the series of the database as tables (terminal, Markdown), JSON, and one
self-contained HTML page with a figure per case: latency against commit, one line per machine
fingerprint, every step marked with its commit and size, outliers circled.

Analysed once (bench.history.series.build), rendered many times. Text we did not write
(case labels, machine labels, commit subjects) is escaped where it becomes output:
bench.escape.terminal / markdown by the table renderers, bench.escape.mathtext in the figures,
html.escape in the page (bench.report.html).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from bench import escape
from bench.history.series import Series
from bench.report.tables import Table

TITLE = "Performance over time"


def _pct(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f}%"


def _ci(lo: float | None, hi: float | None) -> str:
    return "-" if lo is None or hi is None else f"[{_pct(lo)}, {_pct(hi)}]"


def step_text(st) -> str:
    return (f"{st.kind}{' (tentative)' if st.tentative else ''} at {st.commit[:12]}: {_pct(st.ratio)} "
            f"{_ci(st.ci_low, st.ci_high)} ({st.method})")


def tables(series: Sequence[Series], commits: dict[str, dict], threshold: float,
           probes: Sequence[dict] = ()) -> list[Table]:
    """A summary (one row per series), a table of every step, and the bisect probes stored."""
    summary = Table(f"{TITLE}: latency per case and machine (round statistic: 10th percentile, ms)",
                    ["case", "machine", "commits", "first", "last", "change", "steps", "outliers"],
                    right={2, 3, 4, 5, 6, 7})
    found = Table(f"Steps (threshold {threshold:.0%}; CI 95%)",
                  ["case", "machine", "commit", "subject", "kind", "size", "CI", "method", "before ms", "after ms"],
                  right={5, 7, 8, 9})
    for s in series:
        first, last = s.points[0], s.points[-1]
        summary.add([s.case_label, s.machine.label, str(len(s.points)), f"{first.value:.4g}", f"{last.value:.4g}",
                     _pct(last.value / first.value), str(sum(st.kind in ("regression", "improvement")
                                                             for st in s.steps)), str(len(s.outliers))])
        by_commit = {p.commit: p for p in s.points}
        for st in s.steps:
            style = {"regression": "bold red", "improvement": "green", "minor": "yellow"}.get(st.kind, "dim")
            found.add([s.case_label, s.machine.label, st.commit[:12], commits.get(st.commit, {}).get("subject") or "",
                       st.kind + (" (tentative)" if st.tentative else ""), _pct(st.ratio), _ci(st.ci_low, st.ci_high),
                       st.method, f"{by_commit[st.previous].value:.4g}", f"{by_commit[st.commit].value:.4g}"],
                      {4: style})
    if not any(s.steps for s in series):
        found.notes.append("no step found in any series")
    for s in series:
        for commit, ratio in s.outliers:
            found.notes.append(f"outlier (not a step): {s.case_label} at {commit[:12]}: {_pct(ratio)} off the level "
                               "around it")
    out = [summary, found]
    if probes:
        t = Table("Bisect probes (each: the probed commit against the last good one, interleaved rounds)",
                  ["time (UTC)", "case", "good", "probe", "ratio", "CI", "verdict"], right={4})
        for p in probes:
            t.add([p["time_utc"], p["case_key"].replace("|", " "), p["good"][:12], p["probe"][:12],
                   "-" if p["ratio"] is None else f"{p['ratio']:.4f}", _ci(p["ci_low"], p["ci_high"]), p["verdict"]])
        out.append(t)
    return out


def as_json(series: Sequence[Series], commits: dict[str, dict], threshold: float,
            probes: Sequence[dict] = ()) -> str:
    from bench.results.files import json_safe

    doc = {"format": "resnet-bench/history", "version": 1, "threshold": threshold,
           "commits": {c: commits.get(c, {}) for s in series for c in (p.commit for p in s.points)},
           "series": [s.as_dict() for s in series],
           "probes": [{k: v for k, v in p.items() if k != "detail"} for p in probes]}
    return json.dumps(json_safe(doc), indent=1)


def markdown(series: Sequence[Series], commits: dict[str, dict], threshold: float, probes: Sequence[dict] = ()) -> str:
    from bench.report.markdown import render

    return f"# {TITLE}\n\n" + "\n".join(render(t) for t in tables(series, commits, threshold, probes))


# ------------------------------------------------------------------ figures and HTML
def figures(series: Sequence[Series], commits: dict[str, dict]) -> list:
    """One figure per case: each machine's series as a line with its CIs, steps marked."""
    from bench.report import figbase as F

    by_case: dict[str, list[Series]] = {}
    for s in series:
        by_case.setdefault(s.case_key, []).append(s)
    out = []
    for case_key, group in by_case.items():
        order = _commit_axis(group, commits)
        x_of = {c: i for i, c in enumerate(order)}
        fig, (ax,) = F.new_figure(max(7.0, min(18.0, 0.28 * len(order) + 4)), 4.8)
        for k, s in enumerate(group):
            color = F.COLORS[k % len(F.COLORS)]
            xs = [x_of[p.commit] for p in s.points]
            ys = [p.value for p in s.points]
            lo = [p.value - p.ci_low if p.ci_low is not None else 0 for p in s.points]
            hi = [p.ci_high - p.value if p.ci_high is not None else 0 for p in s.points]
            ax.errorbar(xs, ys, yerr=[lo, hi], color=color, marker="o", markersize=3.5, linewidth=1.2, capsize=2,
                        label=escape.mathtext(s.machine.label, 80))
            for commit, _ratio in s.outliers:
                p = next(p for p in s.points if p.commit == commit)
                ax.scatter([x_of[commit]], [p.value], s=140, facecolors="none", edgecolors=F.FLAGGED_COLOR, zorder=4)
            for st in s.steps:
                x = x_of[st.commit] - 0.5
                strong = st.kind in ("regression", "improvement")
                ax.axvline(x, color=color, linestyle="-" if strong else ":", linewidth=1.4 if strong else 0.9)
                ax.annotate(escape.mathtext(f"{st.commit[:8]} {_pct(st.ratio)}" + ("?" if st.tentative else "")),
                            (x, 1.0), xycoords=("data", "axes fraction"), rotation=90, fontsize=7, ha="right",
                            va="top", color=color)
        step = max(1, len(order) // 30)
        ax.set_xticks(range(0, len(order), step))
        ax.set_xticklabels([escape.mathtext(order[i][:10]) for i in range(0, len(order), step)], rotation=60,
                           fontsize=7)
        ax.set_xlabel("commit (oldest first)")
        ax.set_ylabel("latency, ms (10th percentile per round; 95% CI)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
        title = f"{group[0].case_label}: latency over commits"
        caption = ("Each point: one commit's rounds (geometric mean of each round's 10th percentile) with its 95% CI; "
                   "one line per machine fingerprint. Vertical lines: steps (solid: regressions or improvements "
                   "above the threshold; dotted: minor or uncertain; ? tentative); circles: one-commit outliers.")
        F.finish(fig, title, caption)
        out.append(F.Figure(F.slug("history", case_key), title, caption, fig))
    return out


def _commit_axis(group: Sequence[Series], commits: dict[str, dict]) -> list[str]:
    from bench.history.series import order_commits

    seen = list(dict.fromkeys(p.commit for s in group for p in s.points))
    return order_commits(seen, commits)


def html_page(series: Sequence[Series], commits: dict[str, dict], threshold: float, source: str,
              probes: Sequence[dict] = ()) -> str:
    from bench.report import html as H

    head = (f'<p>Database: <code>{H.esc(source)}</code>. {len(series)} series (case x machine fingerprint); '
            f"steps above {threshold:.0%} with a CI that excludes no change are regressions or improvements.</p>")
    steps = [f"{s.case_label} [{s.machine.label}]: {step_text(st)}" for s in series for st in s.steps]
    body = head + (H.bullet_list(steps, "note") if steps else '<p class="ok">No step found.</p>')
    figs = "\n".join(H.figure(f) for f in figures(series, commits)) or '<p class="note">Nothing to draw.</p>'
    return H.page(TITLE, [H.section("Summary", body, "summary"), H.section("Figures", figs, "figures"),
                          H.section("Tables", "\n".join(H.table(t) for t in tables(series, commits, threshold,
                                                                                     probes)), "tables")])
