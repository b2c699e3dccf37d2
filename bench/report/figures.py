"""Every figure resnet-bench draws, by what it is drawn from: a run (:func:`run_figures`), a
speed-gate document (:func:`gate_figures`), a comparison of runs (:func:`compare_figures`);
:func:`save` writes them as PNG and SVG.

The figures themselves live in bench.report.fig_speed (cost, batch size, mode, GPU count) and
bench.report.fig_samples (raw-sample distributions, the gate, comparisons); their data in
bench.results.series. matplotlib (Agg canvas, no pyplot) is imported only when a figure is drawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from bench.report.figbase import Figure, require_matplotlib

__all__ = ["Figure", "run_figures", "gate_figures", "compare_figures", "save", "require_matplotlib"]


def run_figures(analysis) -> list[Figure]:
    """A run's bench.results.analysis.Analysis -> throughput against GMACs with the Pareto
    front, latency/throughput against batch size (when several batch sizes), the speedup heat
    map, the time per stage and the roofline (when the stage pass ran), latency distributions (when samples are kept), multi-GPU scaling (when rows have
    ``world_size`` > 1). Reliability: bench.results.views.flags, from the analysed frame."""
    from bench.report import fig_samples, fig_speed, fig_stages

    require_matplotlib()
    df, env, cpu_count = analysis.frame, analysis.env, analysis.cpu_count
    if df.empty:
        return []
    return (fig_speed.throughput_vs_gmacs(df, env, cpu_count) + fig_speed.batch_curves(df, env, cpu_count)
            + fig_speed.speedup_heatmap(df, env, cpu_count)
            + fig_stages.stage_bars(analysis.stage_long, env) + fig_stages.roofline(analysis.stage_long, env)
            + fig_samples.latency_distributions(analysis.rows, env, cpu_count)
            + fig_speed.multi_gpu(df, env, cpu_count))


def gate_figures(doc: Mapping) -> list[Figure]:
    """A speed-gate document (``check --speed --out``) -> base against candidate per case."""
    from bench.report import fig_samples

    require_matplotlib()
    return fig_samples.gate_distributions(doc)


def compare_figures(cmp: Mapping) -> list[Figure]:
    """A comparison (bench.results.compare.RunComparison.as_dict()) -> ratios with CIs."""
    from bench.report import fig_samples

    require_matplotlib()
    return fig_samples.compare_ratios(cmp)


def save(figures: Sequence[Figure], directory: str | Path) -> list[Path]:
    """Each figure as NAME.png and NAME.svg in `directory` (created if missing)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    return [p for f in figures for p in f.save(d)]
