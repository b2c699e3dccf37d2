"""Steps, not noise: where a series of per-commit latencies changes level, and by how much.

Two fits of the same model (piecewise-constant log latency, L1 cost, a penalty per segment),
chosen between by a measured comparison (tools/step_detection_compare.py, results/history/
step_detection.md):

- **the default, ruptures' Pelt** (Killick et al. 2012, the exact pruned optimal-partitioning
  search of a well-kept library) with a weighted L1 cost (:class:`WeightedL1`: each point's
  weight from its CI) and the penalty 2 sigma ln n, sigma the noise scale from the median
  absolute first difference (robust to the steps themselves). On series measured like ours it
  found 90% of +5% and 85% of -4% steps, against 8% and 4% for the asv-style fit below, at a
  similar false-step rate once the measured rounds confirm each step (bench.history.series);
- ``method="asv"``: asv's information-criterion fit (below), kept for the comparison. Its
  criterion (beta = 4 ln n / n and an AR(1) noise model) is built for asv's long, quiet series;
  on 40 commits with a session drift of ~1% it prefers one segment to a +5% step.

The asv-style model (asv/step_detect.py; Friedrich et al. 2008, Yao 1988), written anew here: (asv/step_detect.py; Friedrich et al. 2008, Yao 1988), written anew here:
the series is **piecewise constant plus noise**, fitted by a weighted L1 Potts problem

    min over segmentations   gamma * k  +  sum_i w_i |y_i - mu_segment(i)|

(k segments, mu = each segment's weighted median, so one wild commit moves no level), solved
exactly by dynamic programming. gamma is not guessed: among the fits of a grid of gammas the
one kept minimises an **information criterion**

    beta * k  +  ln(floor + mean |e_i - rho e_{i-1}|),   beta = 4 ln(n) / n

with e the residuals and rho (an AR(1) coefficient, fitted exactly: the weighted median of
e_i / e_{i-1}) absorbing the correlation of neighbouring commits measured in one session.
Differences from asv: the fit is on **log latency** (steps are ratios; a +5% step is the same
at 2 ms and at 200 ms), the DP is exact up to MAX_EXACT points (asv always windows by 20), and
rho has a closed form instead of a golden-section search.

Post-processing (:func:`detect`) turns segments into answers:

- a one-commit segment that rises (or falls) and comes back is an **outlier** (reported, not
  a step: a busy machine during that commit's measurement), merged into its neighbours; so is
  a point the fit kept inside a level but far off it (OUTLIER_Z robust standard deviations);
- a one-commit level between two others (a step spread over two commits by noise) is merged
  into the nearer neighbour, so the step is one step, not two halves under the threshold;
- a one-commit segment at either end is a **tentative** step (asv #933: one point is not
  enough), reported as such until more commits confirm it;
- every boundary that is left is a step: the index of its first commit and the fitted ratio.
  Sizes with confidence intervals, and which steps count as regressions, are decided by the
  caller from the measured rounds (bench.history.series).

numpy and ruptures; no torch, no database.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import ruptures as rpt
from ruptures.base import BaseCost

#: Up to this many points the DP considers every segment; longer series are fitted with
#: segments of at most this length, then adjacent segments merged while the cost drops.
MAX_EXACT = 200
#: Bound on the AR(1) coefficient of the noise (asv: 1). Near 1 the noise model is a random
#: walk, which explains a step as well as a level does, and the criterion then prefers no step
#: at all; measured on synthetic series like ours (results/history/step_detection.md).
RHO_MAX = 0.5
#: The noise floor added to the residual scale (log units: 0.001 = 0.1%), so a perfect fit
#: (every point its own level) cannot win.
FLOOR = 1e-3
#: A point this many robust standard deviations off its level, and at least OUTLIER_MIN off
#: it, is reported as an outlier (it moves no level either way: the fit is L1).
OUTLIER_Z = 5.0
OUTLIER_MIN = 0.02
#: Points of the gamma grid (log-spaced from gamma_0 * 0.01 / n to 2 * gamma_0).
GAMMA_GRID = 48


@dataclass(frozen=True)
class Segment:
    """Points ``start`` .. ``end - 1`` at one level (``level``: the weighted median of their log
    values, as latency ``exp(level)``); ``error``: their mean absolute log deviation."""

    start: int
    end: int
    level: float
    error: float

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Step:
    """A change of level whose first commit is point ``index``: ``ratio`` = level after / level
    before (> 1 slower), ``before``/``after`` the segments on each side; ``tentative`` when
    one side is a single point at an end of the series."""

    index: int
    ratio: float
    before: Segment
    after: Segment
    tentative: bool = False


@dataclass(frozen=True)
class Outlier:
    """One point off its surroundings that came back: ``ratio`` = its value / the level around."""

    index: int
    ratio: float


@dataclass(frozen=True)
class Detection:
    segments: list[Segment]
    steps: list[Step]
    outliers: list[Outlier]
    gamma: float | None


# ------------------------------------------------------------------ the L1 fit
def weighted_median(y: np.ndarray, w: np.ndarray) -> float:
    """The value where half the weight lies on each side (the mean of the two middle values
    when a cut falls exactly between them)."""
    order = np.argsort(y, kind="stable")
    ys, cw = y[order], np.cumsum(w[order])
    half = cw[-1] / 2.0
    i = int(np.searchsorted(cw, half, side="left"))
    if math.isclose(cw[i], half, rel_tol=1e-12) and i + 1 < ys.size:
        return float((ys[i] + ys[i + 1]) / 2.0)
    return float(ys[i])


def _costs(y: np.ndarray, w: np.ndarray, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """mu[l, r], cost[l, r] for segments y[l..r] (inclusive) no longer than max_len (inf beyond)."""
    n = y.size
    mu = np.full((n, n), np.nan)
    cost = np.full((n, n), np.inf)
    for left in range(n):
        for right in range(left, min(n, left + max_len)):
            seg, ws = y[left:right + 1], w[left:right + 1]
            m = weighted_median(seg, ws)
            mu[left, right], cost[left, right] = m, float(np.sum(ws * np.abs(seg - m)))
    return mu, cost


def _potts(cost: np.ndarray, gamma: float) -> list[int]:
    """Exact minimiser of gamma * k + sum of segment costs: the segments' exclusive right ends."""
    n = cost.shape[0]
    best = np.zeros(n + 1)
    prev = np.zeros(n, dtype=int)
    for r in range(n):
        cand = best[: r + 1] + gamma + cost[: r + 1, r]
        left = int(np.argmin(cand))
        best[r + 1], prev[r] = cand[left], left
    ends, r = [], n
    while r > 0:
        ends.append(r)
        r = int(prev[r - 1])
    return ends[::-1]


def _segment_cost(y, w, a, b) -> float:
    m = weighted_median(y[a:b], w[a:b])
    return float(np.sum(w[a:b] * np.abs(y[a:b] - m)))


def _merge(y, w, cost: np.ndarray, ends: list[int], gamma: float) -> list[int]:
    """Merge adjacent segments while that lowers the penalised cost (for fits on windows)."""
    known: dict[tuple[int, int], float] = {}

    def c(a: int, b: int) -> float:  # cost of y[a:b]
        if np.isfinite(cost[a, b - 1]):
            return float(cost[a, b - 1])
        if (a, b) not in known:
            known[(a, b)] = _segment_cost(y, w, a, b)
        return known[(a, b)]

    max_len = int(np.sum(np.isfinite(cost[0])))
    ends = list(ends)
    while len(ends) > 1:
        starts = [0] + ends[:-1]
        # the DP was exact for segments up to max_len: only longer unions can lower the cost
        gains = [(c(starts[j], ends[j]) + c(starts[j + 1], ends[j + 1]) + gamma - c(starts[j], ends[j + 1]), j)
                 for j in range(len(ends) - 1) if ends[j + 1] - starts[j] > max_len]
        if not gains:
            break
        gain, j = max(gains)
        if gain < 0:
            break
        del ends[j]
    return ends


def _ar1_scale(resid: np.ndarray, w: np.ndarray, rho_max: float) -> float:
    """min over rho in [-rho_max, rho_max] of the weighted mean |e_i - rho e_{i-1}|, in closed form: the
    objective is sum w_i |e_{i-1}| |e_i / e_{i-1} - rho|, minimised by a weighted median."""
    prev, cur, ww = resid[:-1], resid[1:], w[1:]
    ok = np.abs(prev) > 0
    rho = 0.0
    if rho_max > 0 and np.any(ok):
        rho = float(np.clip(weighted_median(cur[ok] / prev[ok], ww[ok] * np.abs(prev[ok])), -rho_max, rho_max))
    total = w[0] * abs(resid[0]) + float(np.sum(ww * np.abs(cur - rho * prev)))
    return total / float(np.sum(w))


def segments_of(y: np.ndarray, w: np.ndarray, ends: Sequence[int]) -> list[Segment]:
    out, start = [], 0
    for end in ends:
        level = weighted_median(y[start:end], w[start:end])
        err = float(np.sum(w[start:end] * np.abs(y[start:end] - level)) / np.sum(w[start:end]))
        out.append(Segment(start, end, level, err))
        start = end
    return out


def fit(values: Sequence[float], weights: Sequence[float] | None = None, beta: float | None = None,
        rho_max: float = RHO_MAX, floor: float = FLOOR) -> tuple[list[Segment], float | None]:
    """The piecewise-constant fit of log(values) (see the module doc) -> (segments, gamma).
    `weights`: relative precision of each point (e.g. 1 / its CI width); None, NaN or <= 0
    -> the median weight."""
    v = np.asarray(values, dtype=float)
    if not np.all(np.isfinite(v) & (v > 0)):
        raise ValueError("step detection needs positive, finite values")
    y = np.log(v)
    n = y.size
    if n == 0:
        return [], None
    w = _weights(weights, n)
    if n < 3:
        return segments_of(y, w, [n]), None
    beta = 4.0 * math.log(n) / n if beta is None else beta
    max_len = min(n, MAX_EXACT)
    _, cost = _costs(y, w, max_len)
    gamma_0 = _segment_cost(y, w, 0, n) or 1e-12
    best: tuple[float, list[int], float] | None = None
    for x in np.linspace(math.log(0.01 / n), math.log(2.0), GAMMA_GRID):
        gamma = gamma_0 * math.exp(x)
        ends = _potts(cost, gamma)
        if max_len < n:
            ends = _merge(y, w, cost, ends, gamma)
        segs = segments_of(y, w, ends)
        levels = np.array([s.level for s in segs])
        fitted = np.repeat(levels, [s.size for s in segs])
        ic = beta * len(segs) + math.log(floor + _ar1_scale(y - fitted, w, rho_max))
        if best is None or ic < best[0] - 1e-12:
            best = (ic, ends, gamma)
    _, ends, gamma = best
    return segments_of(y, w, ends), gamma


def _weights(weights, n: int) -> np.ndarray:
    if weights is None:
        return np.ones(n)
    w = np.array([float(x) if x is not None else np.nan for x in weights], dtype=float)
    if w.size != n:
        raise ValueError("values and weights must have the same length")
    good = np.isfinite(w) & (w > 0)
    med = float(np.median(w[good])) if np.any(good) else 1.0
    w[~good] = med
    return w / med


# ------------------------------------------------------------------ steps from segments
class WeightedL1(BaseCost):
    """ruptures cost: sum of w_i |y_i - weighted median| over a segment. It must subclass
    ruptures.base.BaseCost: Pelt silently falls back to its default L2 cost for anything else."""

    model = "weighted_l1"
    min_size = 1

    def __init__(self, weights: np.ndarray):
        super().__init__()
        self.w = weights
        self.y = np.zeros(0)
        self._known: dict[tuple[int, int], float] = {}

    def fit(self, signal):
        self.signal = np.asarray(signal, dtype=float).reshape(-1, 1)  # ruptures reads its length
        self.y = self.signal[:, 0]
        self._known.clear()
        return self

    def error(self, start: int, end: int) -> float:
        if (start, end) not in self._known:
            self._known[(start, end)] = _segment_cost(self.y, self.w, start, end)
        return self._known[(start, end)]


def noise_scale(y: np.ndarray) -> float:
    """The noise's standard deviation from the median absolute deviation of the first differences
    (a step moves one difference, not the median): 1.4826 MAD / sqrt(2)."""
    d = np.diff(y)
    if d.size == 0:
        return FLOOR
    return max(1.4826 * float(np.median(np.abs(d - np.median(d)))) / math.sqrt(2), FLOOR)


def fit_pelt(values: Sequence[float], weights: Sequence[float] | None = None,
             sigma: float | None = None) -> tuple[list[Segment], float | None]:
    """ruptures' Pelt with the weighted L1 cost on log(values) -> (segments, penalty). The penalty
    is 2 sigma ln n (the L1 analogue of BIC's 2 sigma^2 ln n); `sigma`, the noise of one value in
    log units, defaults to :func:`noise_scale` of the values (a short series cannot tell its
    noise from its steps: its caller passes the rounds' scatter, bench.history.series)."""
    v = np.asarray(values, dtype=float)
    if not np.all(np.isfinite(v) & (v > 0)):
        raise ValueError("step detection needs positive, finite values")
    y, n = np.log(v), v.size
    if n == 0:
        return [], None
    w = _weights(weights, n)
    if n < 3:
        return segments_of(y, w, [n]), None
    pen = 2.0 * (noise_scale(y) if sigma is None else max(sigma, FLOOR)) * math.log(n)
    ends = rpt.Pelt(custom_cost=WeightedL1(w), min_size=1, jump=1).fit(y.reshape(-1, 1)).predict(pen=pen)
    return segments_of(y, w, ends), pen


def detect(values: Sequence[float], weights: Sequence[float] | None = None, *, min_size: int = 2,
           method: str = "pelt", sigma: float | None = None, beta: float | None = None,
           rho_max: float = RHO_MAX, floor: float = FLOOR) -> Detection:
    """Segments -> steps and outliers (see the module doc). ``method``: "pelt" (the default, with
    ``sigma``) or "asv" (with ``beta``, ``rho_max``, ``floor``). ``min_size``: a level held by
    fewer points is an outlier, a transition or (at the newest end) tentative."""
    if method == "pelt":
        segs, gamma = fit_pelt(values, weights, sigma)
    elif method == "asv":
        segs, gamma = fit(values, weights, beta, rho_max, floor)
    else:
        raise ValueError(f"unknown step detection method {method!r} (pelt, asv)")
    return interpret(values, weights, segs, gamma, min_size=min_size)


def interpret(values: Sequence[float], weights: Sequence[float] | None, segs: list[Segment],
              gamma: float | None = None, *, min_size: int = 2) -> Detection:
    """Any segmentation of `values` (this module's fit, or another detector's breakpoints through
    :func:`segments_of`) -> steps and outliers, by the rules of the module doc."""
    if not segs:
        return Detection([], [], [], gamma)
    y = np.log(np.asarray(values, dtype=float))
    w = _weights(weights, y.size)
    outliers: list[Outlier] = []
    changed = True
    while changed and len(segs) > 1:
        changed = False
        for j, s in enumerate(segs):
            if s.size >= min_size or j in (0, len(segs) - 1):
                continue  # a short segment at either end stays: a tentative step
            prev, nxt = segs[j - 1], segs[j + 1]
            if _comes_back(prev.level, s.level, nxt.level):
                around = (prev.level + nxt.level) / 2
                outliers += [Outlier(i, math.exp(y[i] - around)) for i in range(s.start, s.end)]
                segs = _join(y, w, segs, j - 1, j + 1)
            else:  # between its neighbours: part of one step; joins the nearer level
                near = j - 1 if abs(s.level - prev.level) <= abs(s.level - nxt.level) else j + 1
                segs = _join(y, w, segs, min(j, near), max(j, near))
            changed = True
            break
    outliers += _off_level(y, segs, {o.index for o in outliers})
    steps = [Step(b.start, math.exp(b.level - a.level), a, b,
                  tentative=(k == 0 and a.size < min_size) or (k == len(segs) - 2 and b.size < min_size))
             for k, (a, b) in enumerate(itertools.pairwise(segs))]
    return Detection(segs, steps, sorted(outliers, key=lambda o: o.index), gamma)


def _off_level(y: np.ndarray, segs: list[Segment], known: set[int]) -> list[Outlier]:
    """Points the fit kept in a level (the L1 fit is not moved by one wild point) that lie far off
    it: more than OUTLIER_Z robust standard deviations (1.4826 x the median absolute residual)
    and more than OUTLIER_MIN."""
    fitted = np.repeat([s.level for s in segs], [s.size for s in segs])
    resid = y - fitted
    scale = 1.4826 * float(np.median(np.abs(resid)))
    limit = max(OUTLIER_Z * scale, math.log1p(OUTLIER_MIN))
    return [Outlier(int(i), math.exp(resid[i])) for i in np.flatnonzero(np.abs(resid) > limit) if int(i) not in known]


def _comes_back(before: float, level: float, after: float) -> bool:
    """A blip: the short level lies on the same side of both neighbours, and they are closer to
    each other than half its distance from either."""
    up, down = level - before, level - after
    return up * down > 0 and abs(after - before) < 0.5 * min(abs(up), abs(down))


def _join(y, w, segs: list[Segment], first: int, last: int) -> list[Segment]:
    """Segments first..last (inclusive) as one, re-fitted."""
    start, end = segs[first].start, segs[last].end
    joined = _shift(segments_of(y[start:end], w[start:end], [end - start])[0], start)
    return segs[:first] + [joined] + segs[last + 1:]


def _shift(s: Segment, offset: int) -> Segment:
    return Segment(s.start + offset, s.end + offset, s.level, s.error)
