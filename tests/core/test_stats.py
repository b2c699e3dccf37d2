"""bench.core.stats on numbers whose answer is known."""

from __future__ import annotations

import pytest

from bench.core import stats


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
    c = stats.compare_paired([11.0, 22.0, 33.0], [10.0, 20.0, 30.0])
    assert c.method == "paired" and c.ratio == pytest.approx(1.1) and c.ci_low == pytest.approx(1.1)
    assert c.ratio_of_medians == pytest.approx(22 / 20) and c.decided("pass", "inside").verdict == "pass"


def test_median_ci_ranks():
    assert stats.median_ci(list(range(1, 11))) == (2.0, 9.0)  # n=10: ranks 2 and 9
    assert stats.median_ci([1.0, 2.0, 3.0]) == (1.0, 3.0)  # n<6: [min, max]
