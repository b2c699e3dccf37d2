"""Rounds: how resnet-bench measures anything it compares.

One **round** visits every case that still needs measuring, on every side (the speed gate's
base and candidate trees; a plain run has one side), each model's cases in a fresh worker
process of the side's executor (bench.execute.local: a process per model group), so a round
of a case is one independent process. The order changes from round to round (:func:`order`:
rotated, and reversed every other round, for the sides, the models and each model's modes),
so the machine's drift and a process's luck fall on every case alike. Every record is tagged
with its round; two cases' records of one round were measured side by side, and their ratio
cancels what the machine did meanwhile (bench.results.rounds.pair).

The first round measures everything a case measures once (counts, the output check against
eager fp32, the memory pass, a trace); later rounds only time (:func:`round_settings`).

**Stop when it knows** (:class:`RoundsConfig`): the first ``min_rounds`` rounds (2: one round
gives no interval) measure every case that measured; after each later round the caller's
`wanted` callback names the cases whose ratios are not yet known to ``target_rel_ci`` (a plain
run: bench.results.views.needs_rounds); the next round measures only those and the cases they
are compared with. The rounds end when nothing is wanted (``precision``), when the budget is
spent or the next round would not fit in what is left of it (``budget``; estimated from the
last round's time per case; the budget counts this session), or at ``max_rounds``. A killed
run loses no finished record: a resume continues at the first missing (case, round).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from bench.core.case import Case
from bench.errors import UserError
from bench.execute.base import Events, Executor, RunSettings
from bench.results import columns
from bench.results.rounds import ROUND, case_key, round_of

T = TypeVar("T")

END_REASONS = ("precision", "budget", "max_rounds", "interrupted")


@dataclass(frozen=True)
class RoundsConfig:
    """How many rounds: at most ``max_rounds``; at least ``min_rounds`` unless the budget ends
    first; a wanted case is one whose ratios' 95% CI half-width is above ``target_rel_ci``
    (0.02 = +-2%); ``budget_s``: wall seconds for all rounds of this session (None: no
    budget)."""

    max_rounds: int = 10
    target_rel_ci: float = 0.02
    budget_s: float | None = None
    min_rounds: int = 2

    def __post_init__(self) -> None:
        if not (isinstance(self.max_rounds, int) and self.max_rounds >= 1):
            raise UserError(f"--rounds must be a positive integer, got {self.max_rounds!r}")
        if not (isinstance(self.min_rounds, int) and self.min_rounds >= 1):
            raise UserError(f"min_rounds must be a positive integer, got {self.min_rounds!r}")
        if not (isinstance(self.target_rel_ci, (int, float)) and math.isfinite(self.target_rel_ci)
                and 0 < self.target_rel_ci < 1):
            raise UserError(f"--target-ci must be above 0% and below 100%, got {self.target_rel_ci!r}")
        if self.budget_s is not None and not (math.isfinite(self.budget_s) and self.budget_s > 0):
            raise UserError(f"--budget must be a positive number of seconds, got {self.budget_s!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class Outcome:
    """How the rounds ended: the reason (END_REASONS), the last round run, the wall time."""

    reason: str
    rounds: int
    wall_s: float


def order(items: Sequence[T], round_no: int) -> list[T]:
    """`items` in round `round_no`'s order: rounds come in pairs, the second of a pair the first
    reversed, and each pair rotated one place back from the one before (A B C, C B A, C A B,
    B A C, ...), so no item keeps its place and two items alternate (A B, B A, B A, A B)."""
    items = list(items)
    if not items:
        return items
    k = -((round_no - 1) // 2) % len(items)
    rotated = items[k:] + items[:k]
    return rotated[::-1] if round_no % 2 == 0 else rotated


def round_settings(settings: RunSettings, round_no: int) -> RunSettings:
    """Round 1 measures everything; later rounds time only (no counting, output check, memory
    estimate, memory pass, stage pass or trace: measured once, in round 1, which every case
    measured in a later round passed)."""
    if round_no == 1:
        return settings
    return dataclasses.replace(settings, profile=False, check_outputs=False, memory_check=False, memory_pass_steps=0,
                               stage_pass_steps=0, trace_dir=None)


def grouped_order(cases: Sequence[Case], round_no: int) -> list[Case]:
    """The round's cases: the model groups in :func:`order`, and each group's cases too."""
    groups: dict[str, list[Case]] = {}
    for c in cases:
        groups.setdefault(c.model, []).append(c)
    return [c for model in order(list(groups), round_no) for c in order(groups[model], round_no)]


def measured_ok(records: Iterable[Mapping]) -> dict[str, bool]:
    """case key -> every round so far measured it (ok); a case that failed a round, or whose
    first round did not measure (skipped, oom...), gets no more rounds."""
    out: dict[str, bool] = {}
    for r in records:
        k = case_key(r)
        out[k] = out.get(k, True) and r.get("status") in columns.OK_STATUSES
    return out


def run_rounds(sides: Mapping[str, Executor], cases: Sequence[Case], settings: RunSettings, config: RoundsConfig,
               on_record: Callable[[str, dict], None], *, records: Mapping[str, Iterable[dict]] | None = None,
               wanted: Callable[[Mapping[str, list[dict]], int], set[str]] | None = None,
               on_start: Callable[[str, int, Case], None] | None = None,
               on_round: Callable[[int, int], None] | None = None,
               settings_for: Callable[[RunSettings, int], RunSettings] | None = None,
               clock: Callable[[], float] = time.monotonic) -> Outcome:
    """Measure `cases` in rounds on every side (name -> executor); see the module doc.

    `records`: each side's records so far (a resumed run), so their (case, round) are not
    measured again. `on_record(side, record)` gets every new record (tagged ``round``) as soon
    as it exists. `wanted(records by side, round)` returns the case keys that need that round
    (None: every case, every round, up to ``max_rounds``: the speed gate). `on_round(round,
    cases)` is told before each round runs. `settings_for(settings, round)`: each round's
    settings (default :func:`round_settings`)."""
    settings_for = settings_for or round_settings
    seen: dict[str, list[dict]] = {s: list((records or {}).get(s, ())) for s in sides}
    by_key = {c.key(): c for c in cases}
    t0 = clock()
    per_visit_s: float | None = None
    last = 0
    for r in range(1, config.max_rounds + 1):
        done = {s: {case_key(x) for x in seen[s] if round_of(x) == r} for s in sides}
        if r == 1:
            want = set(by_key)
        else:
            good = [measured_ok(seen[s]) for s in sides]
            able = {k for k in by_key if all(g.get(k) for g in good)}
            want = able if (wanted is None or r <= config.min_rounds) else (wanted(seen, r) & able)
            if not want:
                return Outcome("precision", last, clock() - t0)
        todo = {s: [c for c in grouped_order(cases, r) if c.key() in want and c.key() not in done[s]] for s in sides}
        visits = sum(len(v) for v in todo.values())
        if not visits:
            last = r
            continue
        if config.budget_s is not None and r > 1:
            elapsed = clock() - t0
            # up to min_rounds a round starts while budget is left (one round gives no interval);
            # after that only a round that fits, at the last round's time per case
            estimate = 0.0 if r <= config.min_rounds or per_visit_s is None else per_visit_s * visits
            if elapsed + estimate >= config.budget_s:
                return Outcome("budget", last, elapsed)
        if on_round:
            on_round(r, visits)
        started = clock()
        for side in order(list(sides), r):
            if not todo[side]:
                continue

            def row(record: dict, side: str = side, r: int = r) -> None:
                record = {**record, ROUND: r}
                seen[side].append(record)
                on_record(side, record)

            start = (lambda c, side=side, r=r: on_start(side, r, c)) if on_start else None
            sides[side].run(todo[side], settings_for(settings, r), Events(row=row, start=start))
        per_visit_s = (clock() - started) / visits
        last = r
    return Outcome("max_rounds", last, clock() - t0)
