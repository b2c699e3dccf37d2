"""Statistics of latency samples: pure functions of numbers, no torch.

One place for every estimator the harness uses:

- :func:`median_ci` and :func:`summarize`: one sample list -> median, percentiles, IQR, and a
  distribution-free 95% confidence interval of the median (binomial order statistics).
- :class:`Comparison`: two sides, a candidate against a base, as a ratio candidate / base
  (> 1: the candidate is slower) with a 95% CI. Two ways to get one:

  * :func:`compare_unpaired` (run comparisons, a gate against saved samples): per-process medians (or pooled
    samples when a side has fewer than ``MIN_UNITS`` processes); ratio = Hodges-Lehmann shift
    of log latency, CI = the inverted Mann-Whitney test, p = one-sided Mann-Whitney U.
  * bench.core.ratios.compare_paired (the speed gate, validation against an independent
    timer): round i of each side ran back to back; the paired ratio over rounds, the one way
    every paired ratio of the harness is computed (bench.core.ratios).

- :func:`interleave`: run sides in rounds, alternating which goes first (A B, B A, ...), so a
  slow drift of a shared machine hits every side alike.

Relative values are fractions (0.01 = 1%). Latencies are in milliseconds.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

#: Confidence level of every interval here.
CONFIDENCE = 0.95
#: Smallest n for which an order-statistic interval of the median reaches 95% coverage.
MIN_N_FOR_CI = 6
#: Fewer processes than this on a side: compare pooled raw samples instead of process medians.
MIN_UNITS = 3


# ------------------------------------------------------------------ one side: median and its CI
@functools.lru_cache(maxsize=4096)
def _ci_ranks(n: int) -> tuple[int, int]:
    """0-based indices (lo, hi) into n sorted samples of the 95% CI of the median.

    The number of samples below the true median is Binomial(n, 1/2), so [x(j), x(n-j+1)]
    covers it with probability 1 - 2 P(B <= j - 1); j is the largest rank whose coverage is
    still >= 95% (n=10: ranks 2 and 9; n=20: 6 and 15). For n < 6 no pair reaches 95%:
    [min, max] (coverage 1 - 2**(1-n)). Exact integer arithmetic up to ``EXACT_RANKS_UP_TO``
    samples (no scipy: measuring processes import this module), the normal approximation with
    continuity correction above."""
    if n <= EXACT_RANKS_UP_TO:
        limit = (1 << n) // 40  # 2**n x alpha_half (alpha_half = 1/40), exact in integers
        cum, j = 0, 0  # cum = 2**n P(B <= j - 1)
        while True:
            nxt = cum + math.comb(n, j)
            if nxt > limit:
                break
            cum, j = nxt, j + 1
    else:
        z = 1.959963984540054  # the 97.5% normal quantile
        j = int(math.floor(n / 2 - z * math.sqrt(n) / 2 + 0.5))
    if j < 1:
        return 0, n - 1
    return j - 1, n - j


#: Above this many samples the median's CI ranks come from the normal approximation.
EXACT_RANKS_UP_TO = 3000


def median_ci(samples_ms: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Distribution-free 95% CI of the median, (lo, hi), from order statistics."""
    x = np.sort(np.asarray(samples_ms, dtype=float))
    if x.size == 0:
        raise ValueError("median_ci needs at least one sample")
    lo, hi = _ci_ranks(int(x.size))
    return float(x[lo]), float(x[hi])


def rel_ci_sorted(x: np.ndarray) -> float:
    """Half-width of the median's 95% CI over the median, for already-sorted samples
    (the interval may be asymmetric: half-width = (hi - lo) / 2); inf if the median is 0."""
    lo, hi = _ci_ranks(int(x.size))
    med = float(np.median(x))
    half = (float(x[hi]) - float(x[lo])) / 2.0
    if med > 0:
        return half / med
    return 0.0 if half == 0 else math.inf


def rel_iqr(values: Sequence[float] | np.ndarray) -> float:
    """IQR / median (linear-interpolated percentiles); inf if the median is 0 and the IQR not."""
    q25, q50, q75 = (float(v) for v in np.percentile(np.asarray(values, dtype=float), [25, 50, 75]))
    iqr = q75 - q25
    if q50 > 0:
        return iqr / q50
    return 0.0 if iqr == 0 else math.inf


def summarize(samples_ms: Sequence[float] | np.ndarray, *, noisy_rel_iqr: float = 0.10) -> dict[str, Any]:
    """Statistics of raw per-call latencies in ms, as a dict with unit-named keys.

    Works on samples loaded from a saved result. Percentiles use numpy's default (linear)
    interpolation; p50 is ``np.median``. Keys: latency_ms_p50, latency_ms_p90, latency_ms_p99,
    latency_ms_mean, latency_ms_min, latency_iqr_ms, latency_rel_iqr, latency_ms_ci_low,
    latency_ms_ci_high, latency_rel_ci, n_samples, noisy (IQR / median above `noisy_rel_iqr`,
    torch.utils.benchmark's rule). Relative values are inf when the median is 0.
    """
    x = np.asarray(samples_ms, dtype=float)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"summarize needs a non-empty 1-D list of samples in ms, got shape {x.shape}")
    if not np.all(np.isfinite(x)) or np.any(x < 0):
        raise ValueError("summarize: samples must be finite and >= 0 (milliseconds)")
    x = np.sort(x)
    p25, p50, p75, p90, p99 = (float(v) for v in np.percentile(x, [25, 50, 75, 90, 99]))
    iqr = p75 - p25
    lo_i, hi_i = _ci_ranks(int(x.size))
    rel = iqr / p50 if p50 > 0 else (0.0 if iqr == 0 else math.inf)
    return {
        "latency_ms_p50": p50,
        "latency_ms_p90": p90,
        "latency_ms_p99": p99,
        "latency_ms_mean": float(np.mean(x)),
        "latency_ms_min": float(x[0]),
        "latency_iqr_ms": iqr,
        "latency_rel_iqr": rel,
        "latency_ms_ci_low": float(x[lo_i]),
        "latency_ms_ci_high": float(x[hi_i]),
        "latency_rel_ci": rel_ci_sorted(x),
        "n_samples": int(x.size),
        "noisy": bool(rel > noisy_rel_iqr),
    }


# ------------------------------------------------------------------ two sides
@dataclass(frozen=True)
class Comparison:
    """A candidate's latency against a base's: ``ratio`` = candidate / base (> 1 = slower).

    The estimate comes from :func:`compare_unpaired` (``method="hodges-lehmann"``) or
    :func:`compare_paired` (``method="paired"``); a decision rule of the caller (a speed gate,
    a validation band) fills ``verdict`` and ``reason`` with :meth:`decided`.
    """

    method: str  # "hodges-lehmann" | "paired"
    unit: str  # what one value is: "rounds" (a process's or round's median) | "samples" (raw)
    n_base: int  # units on each side
    n_cand: int
    base_median_ms: float  # hodges-lehmann: median of the pooled samples; paired: of the round medians
    cand_median_ms: float
    ratio: float
    ci_low: float  # CONFIDENCE interval of the ratio
    ci_high: float
    ratio_of_medians: float  # cand_median_ms / base_median_ms (unpaired, for information)
    base_spread: float  # IQR / median of the base's units
    cand_spread: float
    p_slower: float | None = None  # one-sided Mann-Whitney U: candidate slower (hodges-lehmann)
    p_faster: float | None = None  # one-sided Mann-Whitney U: candidate faster
    p_pooled: float | None = None  # one-sided MWU (slower) on pooled raw samples (asv's test)
    rounds_slower: int | None = None  # paired units where the candidate's exceeds the base's
    verdict: str | None = None  # the caller's decision
    reason: str | None = None

    @property
    def fails(self) -> bool:
        """The caller's rule decided against the candidate ("regression" or "fail")."""
        return self.verdict in ("regression", "fail")

    def decided(self, verdict: str, reason: str) -> Comparison:
        return dataclasses.replace(self, verdict=verdict, reason=reason)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _kth_pairwise_diff(a: np.ndarray, b: np.ndarray, k: int) -> float:
    """The k-th smallest (1-based) of the n*m differences b[j] - a[i], without forming them all:
    bisection on the value, counting pairs with searchsorted (a must be sorted)."""
    lo, hi = float(b.min() - a.max()), float(b.max() - a.min())
    for _ in range(200):
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        count = int(np.sum(a.size - np.searchsorted(a, b - mid, side="left")))  # pairs with b - a <= mid
        if count >= k:
            hi = mid
        else:
            lo = mid
    return hi


def _u_critical(n: int, m: int, confidence: float) -> int:
    """Largest c with P(U <= c - 1) <= (1 - confidence) / 2 under H0 (exact for small n*m,
    normal approximation otherwise): the CI is [d_(c), d_(nm - c + 1)] of the sorted pairwise
    differences."""
    from scipy.stats import norm

    tail = (1 - confidence) / 2
    if n * m <= 2500:
        # exact null distribution of U: f(u; n, m) = f(u - m; n - 1, m) + f(u; n, m - 1)
        f = {(0, j): np.ones(1) for j in range(m + 1)}
        for i in range(1, n + 1):
            f[(i, 0)] = np.ones(1)
            for j in range(1, m + 1):
                a, b = f[(i - 1, j)], f[(i, j - 1)]
                out = np.zeros(i * j + 1)
                out[j:j + a.size] += a
                out[:b.size] += b
                f[(i, j)] = out
        cdf = np.cumsum(f[(n, m)]) / f[(n, m)].sum()
        return max(int(np.searchsorted(cdf, tail, side="right")), 1)
    z = norm.ppf(1 - tail)
    return max(int(math.floor(n * m / 2 - z * math.sqrt(n * m * (n + m + 1) / 12))), 1)


def hodges_lehmann_ratio(base: Sequence[float], cand: Sequence[float],
                         confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(ratio, ci_low, ci_high) of candidate / base: exp of the Hodges-Lehmann shift of log
    latency (the median of all pairwise differences) and its Mann-Whitney-inverted CI
    (distribution-free, exact coverage under a shift model, consistent with the test's p)."""
    a = np.sort(np.log(np.asarray(base, dtype=float)))
    b = np.sort(np.log(np.asarray(cand, dtype=float)))
    nm = a.size * b.size
    if nm % 2:
        est = _kth_pairwise_diff(a, b, (nm + 1) // 2)
    else:
        est = (_kth_pairwise_diff(a, b, nm // 2) + _kth_pairwise_diff(a, b, nm // 2 + 1)) / 2
    c = _u_critical(a.size, b.size, confidence)
    return math.exp(est), math.exp(_kth_pairwise_diff(a, b, c)), math.exp(_kth_pairwise_diff(a, b, nm - c + 1))


def compare_unpaired(base_units: Sequence[Sequence[float]], cand_units: Sequence[Sequence[float]],
                     confidence: float = CONFIDENCE) -> Comparison:
    """Per-process sample lists of two sides -> :class:`Comparison` (method "hodges-lehmann").

    With at least MIN_UNITS processes per side the unit is the per-process median (samples
    within one process are correlated on a shared machine, so processes are the independent
    units); else the raw samples, pooled per side."""
    from scipy.stats import mannwhitneyu

    base_units = [list(map(float, r)) for r in base_units if len(r)]
    cand_units = [list(map(float, r)) for r in cand_units if len(r)]
    if not base_units or not cand_units:
        raise ValueError("compare needs samples on both sides")
    pooled_a = np.concatenate([np.asarray(r) for r in base_units])
    pooled_b = np.concatenate([np.asarray(r) for r in cand_units])
    if not (np.all(np.isfinite(pooled_a)) and np.all(np.isfinite(pooled_b))) \
            or np.any(pooled_a <= 0) or np.any(pooled_b <= 0):
        raise ValueError("latency samples must be positive and finite")
    if len(base_units) >= MIN_UNITS and len(cand_units) >= MIN_UNITS:
        unit = "rounds"
        a = np.array([np.median(r) for r in base_units])
        b = np.array([np.median(r) for r in cand_units])
        pairs = min(len(a), len(b))
        rounds_slower: int | None = int(np.sum(b[:pairs] > a[:pairs]))
    else:
        unit, a, b, rounds_slower = "samples", pooled_a, pooled_b, None
    ratio, lo, hi = hodges_lehmann_ratio(a, b, confidence)
    base_ms, cand_ms = float(np.median(pooled_a)), float(np.median(pooled_b))
    return Comparison(
        method="hodges-lehmann", unit=unit, n_base=int(a.size), n_cand=int(b.size),
        base_median_ms=base_ms, cand_median_ms=cand_ms, ratio=ratio, ci_low=lo, ci_high=hi,
        ratio_of_medians=cand_ms / base_ms, base_spread=rel_iqr(a), cand_spread=rel_iqr(b),
        p_slower=float(mannwhitneyu(b, a, alternative="greater").pvalue),
        p_faster=float(mannwhitneyu(b, a, alternative="less").pvalue),
        p_pooled=float(mannwhitneyu(pooled_b, pooled_a, alternative="greater").pvalue),
        rounds_slower=rounds_slower,
    )


# ------------------------------------------------------------------ rounds
T = TypeVar("T")


def interleave(sides: Mapping[str, Callable[[], T]], rounds: int,
               on_step: Callable[[int, str, float], None] | None = None) -> dict[str, list[T]]:
    """Call every side once per round, ``rounds`` times: in the given order in even rounds and
    reversed in odd ones (A B, B A, A B, ...). Returns each side's results in round order.
    ``on_step(round_index, side, seconds)`` is called after each call."""
    names = list(sides)
    out: dict[str, list[T]] = {n: [] for n in names}
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            t0 = time.perf_counter()
            out[name].append(sides[name]())
            if on_step:
                on_step(r, name, time.perf_counter() - t0)
    return out
