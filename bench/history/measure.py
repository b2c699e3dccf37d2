"""`history run`: measure the commits of a range, each in a temporary git worktree
(bench.gates.git.Worktree), and store every record in the database as it comes.

**Interleaved, as the gate does.** Commits are measured in **windows** of a few consecutive
commits (``window``, default 4): one session of the measuring engine
(bench.execute.rounds.run_rounds) per window, with one *side* per commit
(bench.execute.local.LocalExecutor with ``code_root`` = that commit's worktree), every case in
a fresh process per side and round, the sides' order rotating from round to round. Neighbours
in a window are therefore measured side by side in every round, and their ratio is paired
(bench.history.series). Each window after the first starts with the last commit of the window
before (its **anchor**, measured again), so every pair of adjacent commits shares a window.
The settings are the speed gate's (bench.gates.speed.gate_settings: fixed sampling time, short
warm-up, one thread on CPU), every round measures every case on every side (no early stop),
and each round's statistic is the gate's (store.round_value).

**Skip and resume.** A commit counts as measured for a case when the database holds at least
``rounds`` ok records of it on this machine fingerprint (bench.history.store.machine_of: the
environment without the commit, and the settings). Measured commits are skipped; a run killed
midway keeps every record written so far, and the same command measures what is missing (the
window that was cut short is measured again, with its anchor, so its pairs stay paired). A
commit whose tree cannot be measured (no isolated worker) is skipped with a note.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from bench.core.case import Case
from bench.execute.base import RunSettings
from bench.history import store
from bench.history.db import Database
from bench.history.gitrange import Commit

DEFAULT_WINDOW = 4


@dataclass
class HistoryOutcome:
    planned: int  # commits in the range (after --every)
    skipped: list[str] = field(default_factory=list)  # already measured
    unmeasurable: list[str] = field(default_factory=list)
    windows: int = 0
    records: int = 0
    wall_s: float = 0.0


def plan_windows(commits: Sequence[str], pending: set[str], size: int) -> list[list[str]]:
    """Windows of at most `size` consecutive commits covering every pending commit: each run of
    pending commits is cut into windows that overlap by one commit, and the first window of a
    run starts with the commit before it (when there is one), so every pending commit is
    measured beside its predecessor."""
    if size < 2:
        raise ValueError("a window holds at least 2 commits")
    windows: list[list[str]] = []
    covered: set[str] = set()
    cur: list[str] = []

    def close() -> None:
        if any(x in pending and x not in covered for x in cur):
            windows.append(cur)
            covered.update(cur)

    for i, c in enumerate(commits):
        if c not in pending:
            close()
            cur = []
            continue
        if not cur and i > 0:
            cur = [commits[i - 1]]
        cur.append(c)
        if len(cur) == size:
            close()
            cur = [c]
    close()
    return windows


def measured(database: Database, machine: str, cases: Sequence[Case], commits: Sequence[str],
             rounds: int) -> set[str]:
    """Commits with at least `rounds` ok records of every case on `machine`."""
    with database.connect() as conn:
        rows = store.rows(conn, machine=machine, case_keys=[c.key() for c in cases], commits_in=list(commits))
    counts: dict[tuple[str, str], int] = {}
    for r in rows:
        if r.value_ms is not None:
            counts[(r.commit, r.case_key)] = counts.get((r.commit, r.case_key), 0) + 1
    return {c for c in commits if all(counts.get((c, k.key()), 0) >= rounds for k in cases)}


def run_history(repo: Path, commits: Sequence[Commit], cases: Sequence[Case], settings: RunSettings, *,
                rounds: int, database: Database, env: dict, command: str, window: int = DEFAULT_WINDOW,
                log: Callable[[str], None] = lambda m: None) -> HistoryOutcome:
    from bench.history.gitrange import measurable

    t0 = time.perf_counter()
    machine = store.machine_of(env, settings.to_dict())
    with database.begin() as conn:
        store.ensure_machine(conn, machine)
        for c in commits:
            store.ensure_commit(conn, *c.info())
    out = HistoryOutcome(planned=len(commits))
    ok = [c for c in commits if measurable(repo, c.sha)]
    out.unmeasurable = [c.sha for c in commits if c not in ok]
    for sha in out.unmeasurable:
        log(f"skip {sha[:12]}: its tree has no isolated worker (predates resnet-bench's runner)")
    shas = [c.sha for c in ok]
    done = measured(database, machine.fingerprint, cases, shas, rounds)
    out.skipped = [s for s in shas if s in done]
    if out.skipped:
        log(f"{len(out.skipped)} of {len(shas)} commit(s) already measured on this machine: skipped")
    plan = plan_windows(shas, set(shas) - done, window)
    out.windows = len(plan)
    for i, win in enumerate(plan, 1):
        log(f"window {i}/{len(plan)}: {' '.join(s[:12] for s in win)} ({rounds} interleaved rounds x "
            f"{len(cases)} case(s))")
        out.records += measure_window(repo, win, cases, settings, rounds, database, machine, command, log)
    out.wall_s = time.perf_counter() - t0
    return out


def measure_window(repo: Path, window: Sequence[str], cases: Sequence[Case], settings: RunSettings, rounds: int,
                   database: Database, machine: store.Machine, command: str,
                   log: Callable[[str], None], kind: str = "history") -> int:
    """One session of the engine over the commits of `window` (one side each); every record goes
    to the database as soon as it exists. A commit whose case fails is dropped from the window
    and the others measured again, so one broken commit does not starve its neighbours."""
    from bench.execute.local import LocalExecutor
    from bench.execute.rounds import RoundsConfig, run_rounds
    from bench.gates.git import Worktree

    stored = 0
    sides = list(window)
    for _attempt in range(2):
        session = f"{kind}:{uuid.uuid4().hex[:20]}"
        with database.begin() as conn:
            store.ensure_session(conn, session, kind, machine.fingerprint, str(repo), command)
        failed: set[str] = set()

        def on_record(side: str, record: dict, failed: set[str] = failed, session: str = session) -> None:
            nonlocal stored
            if record.get("status") not in ("ok", "ok-reduced"):
                failed.add(side)
                log(f"  {side[:12]} {record.get('model')}: {record.get('status')}: {record.get('error') or ''}"[:300])
            with database.begin() as conn:
                stored += store.add_record(conn, session, machine.fingerprint, side, record)

        def on_round(r: int, visits: int) -> None:
            log(f"  round {r}/{rounds} ({visits} process(es))")

        with ExitStack() as stack:
            executors = {sha: LocalExecutor(code_root=stack.enter_context(Worktree(repo, sha))) for sha in sides}
            run_rounds(executors, list(cases), settings, RoundsConfig(max_rounds=rounds, min_rounds=rounds),
                       on_record, on_round=on_round, settings_for=lambda s, r: s)
        if not failed or len(sides) - len(failed) < 2:
            break
        sides = [s for s in sides if s not in failed]
        log(f"  measuring again without {len(failed)} failing commit(s): {' '.join(s[:12] for s in sides)}")
    return stored
