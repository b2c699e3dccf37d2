"""Series from stored rows (bench.history.series): one per case and machine fingerprint, commits in
history order, steps sized by the paired rounds where neighbours were measured side by side, by
an unpaired comparison elsewhere, and called regressions only above the threshold."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.history import series as SE
from bench.history.store import Machine, Row

M1 = Machine("m1" * 8, "cpu one", {}, {})
M2 = Machine("m2" * 8, "cpu two", {}, {})


def rows_for(levels: list[float], *, machine=M1, paired: bool, rounds: int = 4, seed: int = 0,
             case: str = "resnet18|infer") -> list[Row]:
    """One commit per level; paired: neighbours share sessions (windows of 3 overlapping by one)."""
    rng = np.random.default_rng(seed)
    out = []
    n = len(levels)
    drifts: dict[str, float] = {}  # what one session's machine does to every commit measured in it
    for i, level in enumerate(levels):
        sessions = ({f"w{i // 2}", f"w{(i - 1) // 2}"} if i % 2 == 0 and i > 0 else {f"w{i // 2}"}) if paired \
            else {f"s{i}"}
        for s in sorted(sessions):
            drift = drifts.setdefault(s, math.exp(rng.normal(0, 0.005)))
            for r in range(1, rounds + 1):
                out.append(Row(machine.fingerprint, f"c{i:03d}", case, "resnet18 infer", s, r,
                               level * drift * (1 + 0.01 * math.sin(r)) * math.exp(rng.normal(0, 0.004)), "ok"))
    assert len({r.commit for r in out}) == n
    return out


def test_one_series_per_machine_and_steps_with_paired_cis():
    levels = [20.0] * 8 + [21.6] * 8 + [23.76] * 8  # +8%, +10%: above the 5% threshold
    covered = 0
    for seed in range(20):
        found = SE.build(rows_for(levels, paired=True, seed=seed) +
                         rows_for([30.0] * 10, machine=M2, paired=True, seed=100 + seed),
                         {M1.fingerprint: M1, M2.fingerprint: M2}, {})
        assert [s.machine.label for s in found] == ["cpu one", "cpu two"]
        one = found[0]
        # a session's drift (0.5%) can make a level the fit places; the paired rounds find it
        # uncertain (CI holds 1) or minor (below the threshold), never a regression
        confirmed = [st for st in one.steps if st.kind not in ("uncertain", "minor")]
        assert [st.commit for st in confirmed] == ["c008", "c016"]
        for st, planted in zip(confirmed, (1.08, 1.10)):
            assert st.method == "paired" and st.ci_low < st.ratio < st.ci_high
            covered += st.ci_low < planted < st.ci_high
        assert [st.kind for st in confirmed] == ["regression", "regression"]
        assert all(st.kind in ("uncertain", "minor") for st in found[1].steps)
    # 95% CIs: 38 of 40 expected to hold the planted ratio; below 34 has probability < 1%
    assert covered >= 34, covered


def test_without_paired_rounds_the_step_is_compared_unpaired():
    levels = [20.0] * 8 + [22.0] * 8
    (one,) = SE.build(rows_for(levels, paired=False, seed=3), {M1.fingerprint: M1}, {})
    (st,) = one.steps
    assert st.method == "unpaired" and st.commit == "c008"
    assert st.ci_low > 1.0 and st.ratio == pytest.approx(1.10, abs=0.04)


def test_kinds_follow_threshold_and_ci():
    assert SE.kind_of(1.06, 1.03, 1.09, 0.05) == "regression"
    assert SE.kind_of(1.03, 1.01, 1.05, 0.05) == "minor"
    assert SE.kind_of(0.94, 0.92, 0.96, 0.05) == "improvement"
    assert SE.kind_of(1.08, 0.99, 1.17, 0.05) == "uncertain"
    assert SE.kind_of(1.08, None, None, 0.05) == "uncertain"


def test_commit_order_by_generation_else_as_seen():
    known = {"b": {"generation": 2}, "a": {"generation": 1}}
    assert SE.order_commits(["b", "a"], known) == ["a", "b"]
    assert SE.order_commits(["b", "a", "x"], known) == ["b", "a", "x"]
