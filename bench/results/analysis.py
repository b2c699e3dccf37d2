"""A run analysed once: records -> the rows pooled over rounds -> one frame with every derived
column (flags, paired speedups and their intervals, scaling, why the rounds stopped) and the
derived tables. Every renderer (terminal, Markdown, CSV, JSON, HTML, figures) draws from one
:class:`Analysis` (as torch.utils.benchmark's ``Compare`` merges measurements once and lays
out many times); none computes a view of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from bench.results import columns, rounds, stages, views


@dataclass
class Analysis:
    rows: list[dict]  # one per case, pooled over its rounds (bench.results.rounds.aggregate)
    frame: pd.DataFrame  # to_frame(rows) + flags, reliable, speedups with CIs, scaling, rounds_stop
    best: pd.DataFrame  # views.best_modes
    ratios: pd.DataFrame | None  # views.ratio_to_baseline, when a baseline is named
    baseline: str | None
    curves: pd.DataFrame  # views.batch_curves
    energy: pd.DataFrame  # views.energy_memory
    ddp: pd.DataFrame  # views.ddp_scaling
    stages: pd.DataFrame  # bench.results.stages.stage_table: time per stage, GMAC/s, % of peak
    stage_long: pd.DataFrame  # bench.results.stages.stage_long: the same, one line per stage (figures)
    stage_diff: pd.DataFrame  # bench.results.stages.stage_diff against the baseline variant
    env: dict
    command: str
    settings: dict
    notes: list[str] = field(default_factory=list)

    @property
    def cpu_count(self) -> int | None:
        c = self.env.get("cpu_count")
        return c if isinstance(c, int) else None

    @property
    def records(self) -> list[dict]:
        """The frame as row dicts (flags, speedups and all)."""
        return self.frame.to_dict("records")

    def full_records(self) -> list[dict]:
        """:attr:`records` with each row's raw columns too (samples, probes, ranks): what
        ``--format json`` prints and results.json keeps."""
        raw = columns.raw()
        return [{**f, **{k: r[k] for k in raw if k in r}} for f, r in zip(self.records, self.rows)]


def analyse(records: Iterable[Mapping[str, Any]], env: Mapping[str, Any] | None = None,
            settings: Mapping[str, Any] | None = None, command: str = "", *, baseline: str | None = None,
            notes: Iterable[str] = (), rows: list[dict] | None = None) -> Analysis:
    """Records (one per case and round) -> :class:`Analysis`. `baseline`: the variant every
    other is divided by (default: the run's ``--baseline-model``). `rows`: the pooled rows
    when the caller has them already."""
    env, settings = dict(env or {}), dict(settings or {})
    rows = rounds.aggregate(records) if rows is None else rows
    cpu_count = env.get("cpu_count") if isinstance(env.get("cpu_count"), int) else None
    baseline = baseline or settings.get("baseline_model")
    df = views.to_frame(rows)
    frame = views.with_scaling(views.with_speedup(df, cpu_count)) if len(df) else df
    if len(frame):
        frame["rounds_stop"] = _rounds_stop(df, settings, baseline, cpu_count)
    ratios = None
    if baseline is not None and len(df) and baseline in set(df["model"]):
        ratios = views.ratio_to_baseline(df, baseline, cpu_count)
    empty = pd.DataFrame()
    return Analysis(rows=rows, frame=frame, best=views.best_modes(df, cpu_count) if len(df) else empty,
                    ratios=ratios, baseline=baseline, curves=views.batch_curves(df) if len(df) else empty,
                    energy=views.energy_memory(df) if len(df) else empty,
                    ddp=views.ddp_scaling(df) if len(df) else empty,
                    stages=stages.stage_table(df, env) if len(df) else empty,
                    stage_long=stages.stage_long(df, env) if len(df) else empty,
                    stage_diff=stages.stage_diff(df, baseline) if (len(df) and ratios is not None) else empty,
                    env=env, command=command, settings=settings, notes=list(notes))


def _rounds_stop(df: pd.DataFrame, settings: Mapping[str, Any], baseline: str | None,
                 cpu_count: int | None) -> list[str | None]:
    """Per row: ``precision`` when its ratios are known to the run's target, else how the rounds
    ended (``budget``, ``max_rounds``; ``interrupted`` when the run records no end); None for
    a run measured before rounds existed."""
    from bench.core.case import Case

    cfg = settings.get("rounds")
    if not isinstance(cfg, Mapping) or not isinstance(cfg.get("target_rel_ci"), (int, float)):
        return [None] * len(df)
    end = settings.get("rounds_end") if isinstance(settings.get("rounds_end"), Mapping) else {}
    open_keys = views.needs_rounds(df, float(cfg["target_rel_ci"]), baseline, cpu_count)
    out = []
    for r in df.to_dict("records"):
        if r.get("status") not in ("ok", "ok-reduced"):
            out.append(None)
        elif Case.from_row(r).key() not in open_keys:
            out.append("precision")
        else:
            out.append(end.get("reason") or "interrupted")
    return out
