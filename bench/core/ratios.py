"""Paired ratios over rounds: the one way resnet-bench divides two measurements.

Round i of two sides (a mode and eager fp32 in one process, two variants in one round, a head
and a base tree measured back to back) ran side by side, so what slowed the machine during
round i slowed both and cancels in their ratio. :func:`ratio_over_rounds` turns paired
per-round values into a :class:`Ratio` with a 95% CI; :func:`pooled_ratios` does it for many
ratios of one run at once, sharing their scatter; :func:`compare_paired` is the same ratio as a
bench.core.stats.Comparison for a decision rule (the speed gate, validation). Pure numbers, no
torch; scipy only inside functions.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.core.stats import CONFIDENCE, Comparison, rel_iqr

#: Significance of the F test that keeps a ratio with its own variance out of the pool.
POOL_ALPHA = 0.01


@dataclass(frozen=True)
class Ratio:
    """A ratio ``num / den`` measured in paired rounds: round i's values of the two sides were
    taken side by side (in one process, or in adjacent processes of one round), so whatever
    slowed the machine during round i slowed both and cancels in their ratio.

    ``ratio`` is the geometric mean of the per-round ratios (the exponential of the mean log
    ratio); the interval is Student's t on the log ratios (a paired t interval), transformed
    back: ``exp(mean +- t(df) * sd / sqrt(n))``. With one round there is no interval. The
    unit is the round (a process), so the interval holds the variance *between* processes, not
    only between the samples of one. A round disturbed on one side only widens the interval;
    with 2-5 rounds no distribution-free interval reaches 95%, which is why this one is
    parametric. ``pooled``: the standard deviation is that of every comparable ratio of the
    run together (:func:`pooled_ratios`), with their degrees of freedom."""

    ratio: float
    ci_low: float | None
    ci_high: float | None
    n: int  # paired rounds
    sd_log: float | None  # per-round standard deviation of log(ratio)
    p_greater: float | None = None  # one-sided paired t test: num / den > 1
    p_less: float | None = None  # one-sided paired t test: num / den < 1
    df: int | None = None  # degrees of freedom of the t quantile
    pooled: bool = False  # the standard deviation is the run's pooled one (pooled_ratios)

    @property
    def rel_half_width(self) -> float | None:
        """Half the CI's width over the ratio (0.02 = +-2%); None without an interval."""
        if self.ci_low is None or self.ci_high is None:
            return None
        return (self.ci_high - self.ci_low) / (2.0 * self.ratio)

    def text(self, digits: int = 3) -> str:
        """``1.91x [1.85, 1.97]`` (without brackets when there is no interval)."""
        head = f"{self.ratio:.{digits}g}x"
        if self.ci_low is None:
            return head
        return f"{head} [{self.ci_low:.{digits}g}, {self.ci_high:.{digits}g}]"

    def inverse(self) -> Ratio:
        """den / num (a latency ratio turned into a speedup): the same interval, inverted."""
        return Ratio(1.0 / self.ratio, None if self.ci_high is None else 1.0 / self.ci_high,
                     None if self.ci_low is None else 1.0 / self.ci_low, self.n, self.sd_log,
                     self.p_less, self.p_greater, self.df)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _t_quantile(df: int, confidence: float = CONFIDENCE) -> float:
    from scipy.stats import t

    return float(t.ppf(1.0 - (1.0 - confidence) / 2.0, df))


def ratio_over_rounds(num: Sequence[float], den: Sequence[float], confidence: float = CONFIDENCE) -> Ratio:
    """Paired per-round values (ms, or any positive measure) -> :class:`Ratio` ``num / den``."""
    a, b = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    if a.ndim != 1 or a.size == 0 or a.shape != b.shape:
        raise ValueError(f"a paired ratio needs two equally long, non-empty lists of per-round values; "
                         f"got {a.shape} and {b.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b)) and np.all(a > 0) and np.all(b > 0)):
        raise ValueError("per-round values must be finite and > 0")
    logs = np.log(a) - np.log(b)
    sd = float(np.std(logs, ddof=1)) if logs.size > 1 else 0.0
    return _ratio_from_logs(logs, sd, int(logs.size) - 1, confidence, pooled=False)


def pooled_ratios(pairs: Mapping[Any, tuple[Sequence[float], Sequence[float]]], confidence: float = CONFIDENCE,
                  homogeneity_alpha: float = POOL_ALPHA) -> dict[Any, Ratio]:
    """Several paired ratios of one run (key -> (num per round, den per round)) -> their
    :class:`Ratio`, with the variance of the log ratios **pooled** across them.

    Why: a fresh process per round makes rounds expensive (a compiled model compiles again in
    every one), so a sweep has few rounds, and a t interval from 2-3 rounds alone is either
    absent or very wide (t(1) = 12.7). But the ratios of one run come from one machine, one
    method and the same sampling time: their per-round scatter estimates one variance. The
    pooled variance (one-way ANOVA's residual: sum of every ratio's squared deviations from its
    own mean over the sum of their degrees of freedom) gives each ratio an interval with many
    degrees of freedom. Each ratio keeps its own mean; only the scatter is shared.

    The assumption is checked, not taken: a ratio whose own variance exceeds the others' pooled
    variance by more than the F test allows at `homogeneity_alpha` (0.01) keeps its own
    variance and its own degrees of freedom (``pooled=False``). A ratio of one round has no
    interval either way."""
    from scipy.stats import f as f_dist

    logs = {k: np.log(np.asarray(a, dtype=float)) - np.log(np.asarray(b, dtype=float)) for k, (a, b) in pairs.items()}
    for k, x in logs.items():
        if x.ndim != 1 or x.size == 0 or not np.all(np.isfinite(x)):
            raise ValueError(f"pooled_ratios: {k!r} needs paired, positive, finite per-round values")
    ss = {k: float(np.sum((x - x.mean()) ** 2)) for k, x in logs.items()}
    dfs = {k: int(x.size) - 1 for k, x in logs.items()}
    pool = {k for k in logs if dfs[k] >= 1}
    for k in sorted(pool, key=lambda k: -ss[k] / dfs[k]):  # the most scattered first
        rest_df = sum(dfs[j] for j in pool) - dfs[k]
        rest_ss = sum(ss[j] for j in pool) - ss[k]
        if rest_df < 1 or rest_ss <= 0:
            continue
        if (ss[k] / dfs[k]) / (rest_ss / rest_df) > float(f_dist.ppf(1 - homogeneity_alpha, dfs[k], rest_df)):
            pool.discard(k)
    df_pool = sum(dfs[k] for k in pool)
    var_pool = sum(ss[k] for k in pool) / df_pool if df_pool else None
    out = {}
    for k, x in logs.items():
        a, b = pairs[k]
        if k in pool and var_pool is not None and df_pool > dfs[k]:
            out[k] = _ratio_from_logs(x, math.sqrt(var_pool), df_pool, confidence, pooled=True)
        else:
            out[k] = ratio_over_rounds(a, b, confidence)
    return out


def _ratio_from_logs(logs: np.ndarray, sd: float, df: int, confidence: float, pooled: bool) -> Ratio:
    from scipy.stats import t

    n, mean = int(logs.size), float(np.mean(logs))
    if n < 2:
        return Ratio(math.exp(mean), None, None, n, None)
    se = sd / math.sqrt(n)
    half = _t_quantile(df, confidence) * se
    if se > 0:
        tstat = mean / se
        p_greater, p_less = float(t.sf(tstat, df)), float(t.cdf(tstat, df))
    else:  # identical rounds: the sign of the mean decides
        p_greater, p_less = (0.0 if mean > 0 else 1.0), (0.0 if mean < 0 else 1.0)
    return Ratio(math.exp(mean), math.exp(mean - half), math.exp(mean + half), n, sd, p_greater, p_less, df, pooled)


def geometric_mean_ci(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float | None, float | None]:
    """One side's per-round values -> (geometric mean, CI low, CI high): Student's t on the logs
    (the same rule as :func:`ratio_over_rounds`, against a denominator of 1); no interval for
    a single round."""
    r = ratio_over_rounds(values, [1.0] * len(values), confidence)
    return r.ratio, r.ci_low, r.ci_high


def compare_paired(cand_rounds_ms: Sequence[float], base_rounds_ms: Sequence[float],
                   confidence: float = CONFIDENCE) -> Comparison:
    """Per-round values (ms) of two interleaved sides, paired by index -> :class:`Comparison`
    (method "paired"): the :class:`Ratio` cand / base (geometric mean of the round ratios, paired
    t interval, one-sided paired t p-values). A step change of the machine between rounds
    cancels in each pair; the unpaired ``ratio_of_medians`` is kept beside it."""
    r = ratio_over_rounds(cand_rounds_ms, base_rounds_ms, confidence)
    a, b = np.asarray(cand_rounds_ms, dtype=float), np.asarray(base_rounds_ms, dtype=float)
    cand_ms, base_ms = float(np.median(a)), float(np.median(b))
    return Comparison(
        method="paired", unit="rounds", n_base=int(b.size), n_cand=int(a.size),
        base_median_ms=base_ms, cand_median_ms=cand_ms, ratio=r.ratio,
        ci_low=r.ci_low if r.ci_low is not None else r.ratio, ci_high=r.ci_high if r.ci_high is not None else r.ratio,
        ratio_of_medians=cand_ms / base_ms, base_spread=rel_iqr(b), cand_spread=rel_iqr(a),
        p_slower=r.p_greater, p_faster=r.p_less, rounds_slower=int(np.sum(a > b)),
    )
