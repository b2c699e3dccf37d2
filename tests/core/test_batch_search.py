"""The max-batch search on planted probes: doubling, bisection, bounds, the probe budget, the
memory prediction and the ladder (closed-form answers)."""

from __future__ import annotations

import pytest

from bench.core.batch_search import Probe, ladder, predict_mb, search


def planted(limit: int, seen: list[int] | None = None):
    """A probe that fits iff batch <= limit, with peak memory 100 + 10 x batch MiB."""
    def probe(batch, earlier):
        if seen is not None:
            seen.append(batch)
        return Probe(batch, batch <= limit, "" if batch <= limit else "oom in forward", 100.0 + 10 * batch)
    return probe


def test_doubles_then_bisects_to_the_exact_limit():
    seen: list[int] = []
    res = search(planted(37, seen), max_batch=4096, resolution=0.0)
    assert (res.max_batch, res.fail_batch, res.stop) == (37, 38, "bracketed")
    assert seen[:7] == [1, 2, 4, 8, 16, 32, 64]  # doubling until the first failure
    assert seen[7:] == [48, 40, 36, 38, 37]  # then bisection between 32 and 64
    assert [p.batch for p in res.probes] == seen


def test_resolution_stops_the_bisection_early():
    res = search(planted(1000), max_batch=4096, resolution=0.05)
    assert res.stop == "bracketed" and res.max_batch <= 1000 < res.fail_batch
    assert res.fail_batch - res.max_batch <= max(1, int(res.max_batch * 0.05))


def test_the_bound_stops_a_search_that_always_fits():
    seen: list[int] = []
    res = search(planted(10**9, seen), max_batch=100)
    assert (res.max_batch, res.fail_batch, res.stop) == (100, None, "max-batch")
    assert seen == [1, 2, 4, 8, 16, 32, 64, 100]


def test_the_probe_budget_is_a_hard_limit():
    res = search(planted(37), max_batch=4096, max_probes=8)
    assert len(res.probes) == 8 and res.stop == "probes"
    assert res.max_batch == 32 and res.fail_batch == 48  # the best bracket found so far


def test_nothing_fits():
    res = search(planted(0), max_batch=64)
    assert res.max_batch is None and res.fail_batch == 1 and len(res.probes) == 1


def test_a_start_that_does_not_fit_bisects_down():
    res = search(planted(5), start=64, max_batch=4096, resolution=0.0)
    assert (res.max_batch, res.fail_batch) == (5, 6)


def test_bad_arguments():
    with pytest.raises(ValueError):
        search(planted(5), max_batch=0)


def test_predict_mb_is_linear_through_the_two_largest_fitting_probes():
    probes = (Probe(1, True, peak_mb=1010.0), Probe(2, True, peak_mb=1020.0), Probe(4, True, peak_mb=1040.0),
              Probe(8, False, "oom"), Probe(16, False, "cap", ran=False))
    assert predict_mb(probes, 6) == pytest.approx(1060.0)  # 1000 + 10 x 6
    assert predict_mb(probes[:1], 3) == pytest.approx(3030.0)  # proportional from one probe, no base known
    one = (Probe(2, True, peak_mb=1100.0, base_mb=1000.0),)  # it added 100 MiB at batch 2
    assert predict_mb(one, 8) == pytest.approx(1400.0)
    assert predict_mb(probes[3:], 3) is None


def test_ladder():
    assert ladder(96) == (1, 2, 4, 8, 16, 32, 64, 96)
    assert ladder(64) == (1, 2, 4, 8, 16, 32, 64)
    assert ladder(1) == (1,) and ladder(None) == (1,)
