"""The measuring engine (bench.execute.rounds): rounds on every side in a changing order, the
first round measuring once what is measured once, stop when it knows / at the budget / at
max_rounds, resume at the first missing (case, round); a model's modes side by side in each
round's process; the thread rule; torch settings restored after a case."""

from __future__ import annotations

import json

import pytest

from _cli import FAST, consistent
from bench.cli import main
from bench.core.case import Case
from bench.execute.base import Events, Executor, RunSettings
from bench.execute.rounds import RoundsConfig, grouped_order, order, round_settings, run_rounds
from bench.results.rounds import case_key, round_of


def test_order_rotates_and_reverses_so_no_item_keeps_its_place():
    rounds = [order("ABC", r) for r in range(1, 7)]
    assert rounds[:4] == [list("ABC"), list("CBA"), list("CAB"), list("BAC")]
    for i in range(3):  # every item takes every place over the rounds
        assert {r[i] for r in rounds} == set("ABC")
    cases = [Case(m, "infer", 1, 32, lay, "fp32", "none", "cpu") for m in ("a", "b") for lay in ("contiguous", "cl")]
    assert [c.model for c in grouped_order(cases, 2)] == ["b", "b", "a", "a"]  # models move as groups


def test_later_rounds_time_only():
    s = RunSettings(trace_dir="/tmp/t")
    assert round_settings(s, 1) is s
    later = round_settings(s, 2)
    assert (later.profile, later.check_outputs, later.memory_check, later.memory_pass_steps, later.trace_dir) == (
        False, False, False, 0, None)


class Fake(Executor):
    """Measures nothing: a record per case whose latency is ms(case, round); remembers calls."""

    def __init__(self, name, ms, calls):
        self.label, self.ms, self.calls = name, ms, calls

    def run(self, cases, settings, events):
        for c in cases:
            events.started(c)
            self.calls.append((self.label, c.model, settings.profile))
            status = "error" if c.model == "broken" else "ok"
            events.row({**c.as_dict(), "status": status, "error": "", "latency_ms_p50": self.ms(c)})


CASES = [Case(m, "infer", 1, 32, "contiguous", "fp32", "none", "cpu") for m in ("a", "b", "broken")]


def test_rounds_measure_every_side_then_only_what_is_wanted():
    calls, got = [], []
    sides = {"base": Fake("base", lambda c: 10.0, calls), "cand": Fake("cand", lambda c: 11.0, calls)}
    wanted = lambda seen, r: {CASES[0].key()}  # noqa: E731 (after round 2 only model a is still open)
    out = run_rounds(sides, CASES, RunSettings(), RoundsConfig(max_rounds=4), lambda s, r: got.append((s, r)),
                     wanted=wanted)
    assert out.reason == "max_rounds" and out.rounds == 4
    per_round = {}
    for side, rec in got:
        per_round.setdefault(rec["round"], []).append((side, rec["model"]))
    assert sorted(per_round[1]) == sorted((s, m) for s in ("base", "cand") for m in ("a", "b", "broken"))
    assert sorted(per_round[2]) == sorted((s, m) for s in ("base", "cand") for m in ("a", "b"))  # broken: no more
    assert sorted(per_round[3]) == [("base", "a"), ("cand", "a")]
    assert [p for _, _, p in calls[:3]] == [True] * 3 and not any(p for _, _, p in calls[6:])  # counting once
    assert calls[0][0] == "base" and [c for c in calls if c[1] == "a"][2][0] == "cand"  # sides alternate


def test_rounds_stop_when_nothing_is_wanted_and_resume_at_the_first_missing_round():
    calls, got = [], []
    side = {"": Fake("", lambda c: 10.0, calls)}
    out = run_rounds(side, CASES[:2], RunSettings(), RoundsConfig(max_rounds=9), lambda s, r: got.append(r),
                     wanted=lambda seen, r: set())
    assert (out.reason, out.rounds) == ("precision", 2) and len(got) == 4
    # a resumed run with round 1 of a and b, and round 2 of a: only b's round 2, then rounds go on
    done = [r for r in got if not (r["model"] == "b" and r["round"] == 2)]
    calls.clear()
    more = []
    out = run_rounds(side, CASES[:2], RunSettings(), RoundsConfig(max_rounds=3), lambda s, r: more.append(r),
                     records={"": done}, wanted=lambda seen, r: {CASES[1].key()})
    assert [(r["model"], r["round"]) for r in more] == [("b", 2), ("b", 3)] and out.reason == "max_rounds"


def test_the_budget_ends_the_rounds_when_the_next_would_not_fit():
    now = [0.0]

    class Slow(Fake):
        def run(self, cases, settings, events):
            now[0] += 10.0 * len(cases)  # 10 s per case
            super().run(cases, settings, events)

    got = []
    out = run_rounds({"": Slow("", lambda c: 1.0, [])}, CASES[:2], RunSettings(),
                     RoundsConfig(max_rounds=10, budget_s=45.0), lambda s, r: got.append(r),
                     wanted=lambda seen, r: {c.key() for c in CASES[:2]}, clock=lambda: now[0])
    # rounds 1 and 2 (40 s: the minimum two always start while budget is left); round 3 would end at 60 s
    assert out.reason == "budget" and out.rounds == 2 and max(round_of(r) for r in got) == 2


def test_a_rounds_config_refuses_nonsense():
    from bench.errors import UserError

    for bad in ({"max_rounds": 0}, {"target_rel_ci": 0}, {"target_rel_ci": 1.5}, {"budget_s": -1.0}):
        with pytest.raises(UserError):
            RoundsConfig(**bad)


# ------------------------------------------------------------------ through the CLI
TINY = ["run", "--models", "resnet18", "--batch-sizes", "1", "--image-sizes", "32", "--threads", "1", "--device",
        "cpu", "--layouts", "contiguous,channels_last", "--precisions", "fp32", "--compile", "none", *FAST]


@pytest.mark.slow
def test_a_run_in_rounds_pairs_its_ratios_and_a_resume_adds_rounds(tmp_path, capsys):
    out = tmp_path / "r"
    assert main([*TINY, "--rounds", "2", "--out", str(out)]) == 0
    records = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    assert sorted((r["layout"], r["round"]) for r in records) == sorted(
        (lay, n) for lay in ("contiguous", "channels_last") for n in (1, 2))
    assert all("macs" in r for r in records if r["round"] == 1)  # counted in round 1 only
    assert not any("macs" in r for r in records if r["round"] == 2)
    capsys.readouterr()
    # continue adding rounds (a target no 3 rounds can meet: the stop is max_rounds, whatever the noise)
    assert main(["run", "--resume", str(out), "--rounds", "3", "--target-ci", "0.001%", "--quiet"]) == 0
    rows = {r["layout"]: r for r in consistent(out)}
    assert rows["contiguous"]["rounds"] == 3 and rows["channels_last"]["round_ids"] == [1, 2, 3]
    cl = rows["channels_last"]
    assert cl["speedup_vs_eager_rounds"] == 3 and cl["speedup_vs_eager_ci_low"] < cl["speedup_vs_eager"]
    assert cl["latency_ms_ci_low"] <= cl["latency_ms_p50"] <= cl["latency_ms_ci_high"]
    assert cl["macs"] > 0 and cl["output_ok"] is True  # what round 1 measured, kept
    run_json = json.loads((out / "run.json").read_text())
    assert run_json["settings"]["rounds"]["max_rounds"] == 3 and run_json["settings"]["rounds_end"]["reason"]


@pytest.mark.slow
def test_a_models_modes_are_measured_side_by_side_and_a_failing_one_does_not_stop_the_others(faulty_models):
    from bench.execute import worker
    from bench.execute.case_runner import CaseRunner
    from bench.core.timing import TimingConfig

    settings = RunSettings(timing=TimingConfig(max_time_s=0.4, min_time_s=0.1, min_samples=3, warmup_max_s=0.5,
                                               warmup_window=2), threads=1, interleave=True, profile=False)
    cases = [Case("resnet18", "infer", 1, 32, lay, "fp32", "none", "cpu") for lay in ("contiguous", "channels_last")]
    cases.append(Case("test_error", "infer", 1, 32, "contiguous", "fp32", "none", "cpu"))
    events = list(worker.events(CaseRunner(settings), cases[:2], settings))
    starts = [v for k, v in events if k == "start"]
    assert len(starts) > len(cases[:2]) + 2  # a start per block: samples interleaved in blocks
    rows = [v for k, v in events if k == "row"]
    assert [r["status"] for r in rows] == ["ok", "ok"] and all(r["n_samples"] >= 3 for r in rows)
    assert rows[1]["output_ok"] is True  # checked against eager fp32 as ever
    mixed = [v for k, v in worker.events(CaseRunner(settings), [cases[0], cases[2]], settings) if k == "row"]
    assert {r["model"]: r["status"] for r in mixed} == {"resnet18": "ok", "test_error": "error"}


def test_the_thread_rule_leaves_one_core_and_is_recorded(monkeypatch):
    from bench.core import host

    monkeypatch.setattr(host, "physical_cores", lambda: 2)
    assert host.default_threads() == (1, "1 = 2 physical core(s) this process may use - 1 left to the OS and other work")
    monkeypatch.setattr(host, "physical_cores", lambda: 64)
    assert host.default_threads()[0] == 63
    monkeypatch.setattr(host, "physical_cores", lambda: 1)
    assert host.default_threads()[0] == 1


def test_physical_cores_counts_this_machine():
    import os

    from bench.core import host

    assert 1 <= host.physical_cores() <= len(os.sched_getaffinity(0))


def test_a_case_leaves_torch_settings_as_it_found_them():
    import torch

    from bench.execute.torch_settings import torch_settings

    before = torch.get_num_threads()
    import torch._inductor.config as config

    config.freezing = False
    with torch_settings(1 if before > 1 else 2):
        config.freezing = True  # what bench.core.modes.prepare does for a compiled case
        assert torch.get_num_threads() != before
    assert torch.get_num_threads() == before and config.freezing is False


def test_records_carry_their_round(tmp_path):
    events = []
    Fake("", lambda c: 1.0, []).run(CASES[:1], RunSettings(), Events(row=events.append))
    assert round_of(events[0]) == 1 and case_key(events[0]) == CASES[0].key()
