"""`bisect GOOD BAD`: the first commit of a step, by probes of the speed gate's interleaved
measurement (bench.gates.speed.measure_rounds: base = the good side, cand = the probed commit,
each in its own worktree, paired rounds).

1. The first probe measures BAD against GOOD: the step's size R (the paired ratio). When its
   CI holds 1, or rules out a change as large as the threshold (the speed gate's rule: two
   worktrees of one tree can differ by a percent or two, which is no step to look for), there
   is no step to find, and bisect stops saying so.
2. Each next probe measures the midpoint m of the commits between the last good and the first
   bad one against the last good one: ratio r. m is **bad** when it is past half the step on
   the log scale (ln r / ln R > 1/2), else good; the interval halves. This finds speedups as
   well as slowdowns, and does not depend on a threshold. A probe whose CI holds the half-way
   level is flagged ``confident = False``.
3. When one pair of adjacent commits is left, a last probe measures the first bad commit
   against the last good one (unless the last halving measured just that pair): the step's
   size at that very pair, with its CI.

Probes: 1 + ceil(log2 n) + 1 for n commits in GOOD..BAD. ``budget_s`` stops before a probe
that would not fit (estimated by the last probe's time), leaving the interval found so far.
Every probe is logged, and stored (its records and its verdict) in the database.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.core.case import Case
from bench.execute.base import RunSettings
from bench.history import store
from bench.history.db import Database
from bench.history.gitrange import Commit


@dataclass
class Probe:
    number: int
    good: str
    probe: str
    ratio: float
    ci_low: float | None
    ci_high: float | None
    gate_verdict: str
    verdict: str  # "bad" | "good" | "step" (the first probe) | "no-step" | "pair"
    confident: bool
    wall_s: float


@dataclass
class BisectOutcome:
    good: str  # the last good commit found
    bad: str  # the first bad commit found
    adjacent: bool  # good is bad's parent in the range: the step's first commit is `bad`
    reason: str  # "found" | "budget" | "no-step" | "error"
    step: Probe | None = None  # the first probe: BAD vs GOOD
    pair: Probe | None = None  # the last probe: first bad vs last good
    probes: list[Probe] = field(default_factory=list)
    wall_s: float = 0.0


def first_probe_verdict(lo: float | None, hi: float | None, threshold: float) -> str:
    """BAD against GOOD: "step" when the ratio's CI excludes 1 and does not rule out a change of
    `threshold` either way (the speed gate's rule), else "no-step"."""
    if lo is None or hi is None or lo <= 1.0 <= hi:
        return "no-step"
    return "step" if hi > 1.0 + threshold or lo < 1.0 / (1.0 + threshold) else "no-step"


def max_probes(n: int) -> int:
    """The most probes for `n` commits in GOOD..BAD: the step, the halvings, the final pair."""
    return 1 + math.ceil(math.log2(n)) + 1 if n > 1 else 1


def bisect(repo: Path, good: Commit, commits: Sequence[Commit], case: Case, settings: RunSettings, *,
           rounds: int, database: Database, env: dict, command: str, budget_s: float | None = None,
           threshold: float = 0.05, alpha: float = 0.05, log: Callable[[str], None] = lambda m: None,
           clock: Callable[[], float] = time.perf_counter) -> BisectOutcome:
    """Find the first commit of the step between `good` and the last of `commits` (the range
    good..bad, oldest first)."""
    from bench.gates import speed
    from bench.gates.git import Worktree

    machine = store.machine_of(env, settings.to_dict())
    with database.begin() as conn:
        store.ensure_machine(conn, machine)
        for c in (good, *commits):
            store.ensure_commit(conn, *c.info())
    t0 = clock()
    probes: list[Probe] = []

    def probe(base: Commit, cand: Commit, verdict_of: Callable[[float, float | None, float | None], tuple[str, bool]]):
        started = clock()
        session = f"bisect:{uuid.uuid4().hex[:20]}"
        with Worktree(repo, base.sha) as base_root, Worktree(repo, cand.sha) as cand_root:
            got = speed.measure_rounds([case], settings, rounds, {"base": str(base_root), "cand": str(cand_root)},
                                       lambda m: log(f"    {m}"))[case.key()]
        entry = speed.judge(got.base, got.cand, got.errors, threshold, alpha)
        comp = entry["comparison"] or {}
        ratio, lo, hi = comp.get("ratio"), comp.get("ci_low"), comp.get("ci_high")
        if ratio is None:
            verdict, confident = "error", False
        else:
            verdict, confident = verdict_of(ratio, lo, hi)
        p = Probe(len(probes) + 1, base.sha, cand.sha, ratio if ratio is not None else math.nan, lo, hi,
                  entry["verdict"], verdict, confident, clock() - started)
        probes.append(p)
        with database.begin() as conn:
            store.ensure_session(conn, session, "bisect", machine.fingerprint, str(repo), command)
            for sha, side in ((base.sha, got.base), (cand.sha, got.cand)):
                for rec in store.records_from_samples(case, sha, side, env):
                    store.add_record(conn, session, machine.fingerprint, sha, rec)
            store.add_probe(conn, session, machine.fingerprint, case.key(), base.sha, cand.sha, verdict, ratio,
                            (lo, hi), p.wall_s, {"gate": entry, "confident": confident, "number": p.number})
        shown = "no result" if ratio is None else f"{ratio:.4f}x [{lo:.4f}, {hi:.4f}]"
        log(f"probe {p.number}: {cand.short} vs {base.short}: {shown} -> {verdict}"
            + ("" if confident else " (not confident: the CI holds the half-way level)") + f" ({p.wall_s:.0f} s)")
        if ratio is None:
            log(f"  {entry['reason']}")
        return p

    bad = commits[-1]
    log(f"bisect: {len(commits)} commit(s) after {good.short} up to {bad.short}; at most {max_probes(len(commits))} "
        f"probes of {rounds} interleaved rounds")

    def step_verdict(r, lo, hi):
        return first_probe_verdict(lo, hi, threshold), True

    first = probe(good, bad, step_verdict)
    out = BisectOutcome(good.sha, bad.sha, len(commits) == 1, "found", step=first, probes=probes)
    if first.verdict != "step":
        out.reason = "no-step" if first.verdict == "no-step" else "error"
        out.wall_s = clock() - t0
        return out
    log_step = math.log(first.ratio)
    lo_i, hi_i = -1, len(commits) - 1  # indices into commits; -1 is `good`

    def at(i: int) -> Commit:
        return good if i < 0 else commits[i]

    def half_verdict(r, lo, hi):
        frac = math.log(r) / log_step
        bad_side = frac > 0.5
        half = math.exp(log_step / 2)
        confident = lo is not None and hi is not None and not (lo <= half <= hi)
        return ("bad" if bad_side else "good"), confident

    while hi_i - lo_i > 1:
        if budget_s is not None and clock() - t0 + probes[-1].wall_s > budget_s:
            out.reason = "budget"
            break
        mid = (lo_i + hi_i) // 2
        p = probe(at(lo_i), at(mid), half_verdict)
        if p.verdict == "error":
            out.reason = "error"
            break
        if p.verdict == "bad":
            hi_i = mid
        else:
            lo_i = mid
    out.good, out.bad = at(lo_i).sha, at(hi_i).sha
    out.adjacent = hi_i - lo_i == 1
    last = probes[-1]
    if out.adjacent and (last.good, last.probe) == (out.good, out.bad):
        out.pair = last  # the last halving measured this very pair
    elif out.adjacent and out.reason == "found":
        if budget_s is None or clock() - t0 + last.wall_s <= budget_s:
            out.pair = probe(at(lo_i), at(hi_i), lambda r, lo, hi: ("pair", True))
    out.wall_s = clock() - t0
    return out
