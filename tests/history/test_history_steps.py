"""Step detection (bench.history.steps) on synthetic series: planted steps found where they are,
every one of them; a one-commit outlier told from a step; flat noise gives none; the newest
commit alone is only a tentative step."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.history import steps as S


def series(levels: list[tuple[int, float]], noise: float = 0.01, seed: int = 0, base: float = 20.0) -> np.ndarray:
    """Piecewise-constant latencies: (length, relative level) pieces, log-normal noise."""
    rng = np.random.default_rng(seed)
    y = np.concatenate([np.full(n, math.log(level)) for n, level in levels])
    return base * np.exp(y + rng.normal(0, noise, y.size))


def test_weighted_median():
    assert S.weighted_median(np.array([1.0, 2.0, 3.0]), np.ones(3)) == 2.0
    assert S.weighted_median(np.array([1.0, 2.0, 3.0, 4.0]), np.ones(4)) == 2.5
    assert S.weighted_median(np.array([1.0, 2.0, 10.0]), np.array([1.0, 1.0, 5.0])) == 10.0


@pytest.mark.parametrize("seed", range(5))
def test_every_planted_step_is_found_with_its_size(seed):
    y = series([(10, 1.0), (10, 1.05), (10, 1.155), (10, 1.109)], noise=0.008, seed=seed)
    det = S.detect(y)
    # at this noise a point beside a step can lie nearer the other level (seed 3: point 9 is
    # +3.3 sd, nearer 1.05 than 1.0): no detector can place that step better than one commit
    assert len(det.steps) == 3
    assert all(abs(s.index - at) <= 1 for s, at in zip(det.steps, (10, 20, 30)))
    for s, planted in zip(det.steps, (1.05, 1.10, 0.96)):
        assert s.ratio == pytest.approx(planted, abs=0.015)
    assert not any(s.tentative for s in det.steps)


@pytest.mark.parametrize("seed", range(5))
def test_a_one_commit_outlier_is_not_a_step(seed):
    y = series([(24, 1.0)], noise=0.008, seed=seed)
    y[9] *= 1.15  # one commit measured on a busy machine
    det = S.detect(y)
    assert det.steps == []
    assert [o.index for o in det.outliers] == [9]
    assert det.outliers[0].ratio == pytest.approx(1.15, abs=0.05)


def test_an_outlier_beside_a_step_leaves_the_step():
    y = series([(12, 1.0), (12, 1.10)], noise=0.008, seed=3)
    y[5] *= 0.85
    det = S.detect(y)
    assert [s.index for s in det.steps] == [12]
    assert [o.index for o in det.outliers] == [5]


@pytest.mark.parametrize("seed", range(5))
def test_flat_noise_has_no_step(seed):
    assert S.detect(series([(30, 1.0)], noise=0.012, seed=seed)).steps == []


def test_one_commit_at_either_end_is_a_tentative_step():
    y = series([(15, 1.0), (1, 1.2)], noise=0.005, seed=1)
    assert [(s.index, s.tentative) for s in S.detect(y).steps] == [(15, True)]
    y = series([(1, 1.0), (15, 1.2)], noise=0.005, seed=1)
    assert [(s.index, s.tentative) for s in S.detect(y).steps] == [(1, True)]


def test_weights_and_degenerate_inputs():
    assert S.detect([]).steps == [] and S.detect([5.0]).steps == [] and S.detect([5.0, 5.0]).steps == []
    det = S.detect([10.0] * 8 + [11.0] * 8)  # no noise at all
    assert [s.index for s in det.steps] == [8]
    with pytest.raises(ValueError):
        S.detect([1.0, -1.0, 2.0])
    # a point known to be imprecise (small weight) moves nothing
    y = series([(20, 1.0)], noise=0.005, seed=2)
    w = [1.0] * 20
    y[10:12] *= 1.12
    w[10] = w[11] = 0.01
    assert S.detect(y, w).steps == []
    # the same points at full weight are a two-commit level (ruptures' own L2 fallback, which a
    # cost that is not a BaseCost silently gets, finds nothing here: this shows the L1 cost runs)
    assert [s.index for s in S.detect(y).steps] == [10, 12]


def test_asv_method_and_unknown_method():
    y = series([(12, 1.0), (12, 1.10)], noise=0.005, seed=1)
    assert [s.index for s in S.detect(y, method="asv").steps] == [12]
    with pytest.raises(ValueError):
        S.detect(y, method="nope")


def test_the_weighted_cost_is_the_one_pelt_uses():
    # ruptures falls back to its L2 cost for a cost that is not a BaseCost; weights must matter
    y = np.log(series([(10, 1.0), (10, 1.06)], noise=0.004, seed=5))
    w = np.ones(20)
    c = S.WeightedL1(w).fit(y.reshape(-1, 1))
    m = S.weighted_median(y[:10], w[:10])
    assert c.error(0, 10) == pytest.approx(float(np.sum(np.abs(y[:10] - m))))


def test_long_series_use_windows_then_merge():
    y = series([(150, 1.0), (150, 1.08)], noise=0.01, seed=4)
    assert S.MAX_EXACT < y.size
    for method in ("asv", "pelt"):
        assert [s.index for s in S.detect(y, method=method).steps] == [150]


@pytest.mark.parametrize("lo, hi, verdict", [
    (0.965, 0.9995, "no-step"),  # two worktrees of one tree, 1.8% apart: significant, but no step to look for
    (0.98, 1.02, "no-step"),     # holds 1
    (1.03, 1.07, "step"),        # a +5% step is not ruled out
    (0.94, 0.98, "step"),        # nor a -5% one (1 / 1.05 = 0.952)
    (None, None, "no-step"),     # no interval: nothing to decide on
])
def test_bisect_first_probe_needs_a_step_the_size_of_the_threshold(lo, hi, verdict):
    from bench.history.bisect import first_probe_verdict

    assert first_probe_verdict(lo, hi, 0.05) == verdict
