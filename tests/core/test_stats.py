"""bench.core.stats on numbers whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.core import ratios, stats


def test_interleave_alternates_and_reports_each_step():
    calls, steps = [], []
    out = stats.interleave({"a": lambda: calls.append("a") or 1, "b": lambda: calls.append("b") or 2}, 3,
                           on_step=lambda r, n, s: steps.append((r, n)))
    assert calls == ["a", "b", "b", "a", "a", "b"]
    assert out == {"a": [1, 1, 1], "b": [2, 2, 2]} and steps[:2] == [(0, "a"), (0, "b")]


def test_unpaired_recovers_a_planted_ratio():
    base = [[10.0 + 0.1 * i, 10.2 + 0.1 * i, 9.9 + 0.1 * i] for i in range(6)]
    cand = [[v * 1.1 for v in r] for r in base]
    c = stats.compare_unpaired(base, cand)
    assert c.method == "hodges-lehmann" and c.unit == "rounds" and c.n_base == c.n_cand == 6
    assert c.ratio == pytest.approx(1.1, rel=1e-9) and c.ci_low <= 1.1 <= c.ci_high
    assert c.p_slower < 0.01 < c.p_faster and c.rounds_slower == 6 and c.verdict is None


def test_paired_ratio_and_its_interval():
    c = ratios.compare_paired([11.0, 22.0, 33.0], [10.0, 20.0, 30.0])
    assert c.method == "paired" and c.ratio == pytest.approx(1.1) and c.ci_low == pytest.approx(1.1)
    assert c.ratio_of_medians == pytest.approx(22 / 20) and c.decided("pass", "inside").verdict == "pass"
    assert c.p_slower < 1e-12 and c.p_faster == pytest.approx(1.0)  # identical round ratios: the sign decides


def test_a_paired_t_interval_against_its_closed_form():
    num, den = [102.0, 99.0, 104.0, 101.0], [100.0, 100.0, 100.0, 100.0]
    r = ratios.ratio_over_rounds(num, den)
    logs = np.log(np.array(num) / 100.0)
    half = 3.182446305284263 * logs.std(ddof=1) / 2  # t(0.975, 3) * sd / sqrt(4)
    assert r.ratio == pytest.approx(math.exp(logs.mean())) and r.n == 4 and r.df == 3
    assert (r.ci_low, r.ci_high) == pytest.approx((math.exp(logs.mean() - half), math.exp(logs.mean() + half)))
    assert r.rel_half_width == pytest.approx((r.ci_high - r.ci_low) / 2 / r.ratio)
    assert r.inverse().ratio == pytest.approx(1 / r.ratio) and r.inverse().ci_high == pytest.approx(1 / r.ci_low)
    one = ratios.ratio_over_rounds([2.0], [1.0])
    assert one.ratio == 2.0 and one.ci_low is None and one.rel_half_width is None and one.text() == "2x"


def test_pooling_shares_the_scatter_of_comparable_ratios_but_not_of_an_outlier():
    rng = np.random.default_rng(5)
    pairs = {i: (list(100 * (1 + i / 10) * np.exp(rng.normal(0, 0.01, 3))), [100.0] * 3) for i in range(10)}
    pairs["wild"] = ([100.0, 150.0, 70.0], [100.0] * 3)
    out = ratios.pooled_ratios(pairs)
    assert all(out[i].pooled and out[i].df == 20 for i in range(10))  # 10 ratios x (3 - 1) rounds
    assert not out["wild"].pooled and out["wild"].df == 2  # its own variance, its own degrees of freedom
    logs = np.array([np.log(np.array(a) / np.array(b)) for a, b in (pairs[i] for i in range(10))])
    pooled_sd = math.sqrt(((logs - logs.mean(axis=1, keepdims=True)) ** 2).sum() / 20)
    assert out[3].sd_log == pytest.approx(pooled_sd)
    assert out[3].ratio == pytest.approx(math.exp(logs[3].mean()))  # each keeps its own mean


def test_pooled_intervals_cover_as_promised():
    """Simulated runs of 12 ratios, 2 rounds each, log-normal scatter: the pooled 95% interval
    holds the true ratio in about 95% of ratios."""
    rng = np.random.default_rng(11)
    hits = total = 0
    for _ in range(150):
        truth = {i: 1 + i / 20 for i in range(12)}
        pairs = {i: (list(100 * t * np.exp(rng.normal(0, 0.02, 2))), list(100 * np.exp(rng.normal(0, 0.02, 2))))
                 for i, t in truth.items()}
        for i, r in ratios.pooled_ratios(pairs).items():
            hits += r.ci_low <= truth[i] <= r.ci_high
            total += 1
    assert 0.92 <= hits / total <= 0.98, hits / total


def test_median_ci_ranks():
    assert stats.median_ci(list(range(1, 11))) == (2.0, 9.0)  # n=10: ranks 2 and 9
    assert stats.median_ci([1.0, 2.0, 3.0]) == (1.0, 3.0)  # n<6: [min, max]
