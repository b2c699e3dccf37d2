"""Records -> rows (bench.results.rounds): a case's rounds pooled, its interval between rounds,
what round 1 measured kept; any two rows paired over the rounds both measured."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.results import rounds

CASE = {"model": "resnet18", "device": "cpu", "workload": "infer", "batch_size": 1, "image_size": 32,
        "layout": "contiguous", "precision": "fp32", "compile": "none"}


def rec(rnd, ms, **kw):
    s = [ms * f for f in (0.98, 1.0, 1.02, 1.05)] if ms is not None else []
    r = {**CASE, "round": rnd, "status": "ok", "error": "", "latency_ms_p50": ms, "samples_ms": s,
         "latency_rel_iqr": 0.03, "steady": True, "load_avg_1m": 0.5, "n_samples": 4}
    r.update(kw)
    return r


def test_a_case_of_three_rounds_is_one_row_with_a_between_round_interval():
    recs = [rec(1, 10.0, macs=100, output_ok=True, compile_s=None), rec(2, 11.0), rec(3, 10.5, load_avg_1m=3.0)]
    (row,) = rounds.aggregate(recs)
    logs = np.log([10.0, 11.0, 10.5])
    half = 4.302652729911275 * logs.std(ddof=1) / math.sqrt(3)  # t(0.975, 2)
    assert row["latency_ms_p50"] == pytest.approx(math.exp(logs.mean()))
    assert (row["latency_ms_ci_low"], row["latency_ms_ci_high"]) == pytest.approx(
        (math.exp(logs.mean() - half), math.exp(logs.mean() + half)))
    assert row["rounds"] == 3 and row["round_ids"] == [1, 2, 3] and row["round_latency_ms"] == [10.0, 11.0, 10.5]
    assert row["n_samples"] == 12 and len(row["samples_ms"]) == 12 and "round" not in row
    assert row["macs"] == 100 and row["output_ok"] is True  # measured once, in round 1
    assert row["load_avg_1m"] == 3.0  # the busiest round
    assert row["throughput_ips"] == pytest.approx(1e3 / row["latency_ms_p50"])  # derived from the pooled latency


def test_one_round_reads_exactly_as_before_rounds():
    r = rec(1, 10.0, latency_ms_ci_low=9.9, latency_ms_ci_high=10.1)
    r.pop("round")
    (row,) = rounds.aggregate([r])
    assert row["latency_ms_p50"] == 10.0 and (row["latency_ms_ci_low"], row["latency_ms_ci_high"]) == (9.9, 10.1)
    assert row["rounds"] == 1 and rounds.rounds_of(row) == {1: 10.0}


def test_a_failed_later_round_is_noted_and_the_measured_rounds_kept():
    (row,) = rounds.aggregate([rec(1, 10.0), rec(2, 10.2), rec(3, None, status="crashed", error="killed")])
    assert row["status"] == "ok" and row["rounds"] == 2 and row["rounds_failed"] == 1
    assert row["rounds_note"] == "round 3: crashed: killed"
    (bad,) = rounds.aggregate([rec(1, None, status="oom", error="too big")])
    assert bad["status"] == "oom" and bad["rounds"] == 0


def test_pairing_uses_only_the_rounds_both_measured():
    a = {"round_ids": [1, 2, 3], "round_latency_ms": [10.0, 12.0, 11.0], "status": "ok"}
    b = {"round_ids": [2, 3, 4], "round_latency_ms": [6.0, 5.5, 99.0], "status": "ok"}
    r = rounds.pair(a, b)
    assert r.n == 2 and r.ratio == pytest.approx(2.0)
    assert rounds.pair(a, {"round_ids": [7], "round_latency_ms": [1.0]}) is None
