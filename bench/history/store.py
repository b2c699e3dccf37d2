"""Writing to and reading from the results database (bench.history.db): machines, commits,
sessions and records; ``db import`` of run directories; the rows a series is built from.

Every write is one transaction. A record's digest (machine, commit, session, the record itself)
is unique, so importing a run directory twice, or a resumed run's directory again, adds only
what is new.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import UserError
from bench.history.db import Database, insert, table

#: The environment keys that make a machine (bench.core.env.FINGERPRINT_KEYS without the commit).
MACHINE_KEYS = ("torch", "torchvision", "cuda", "cudnn", "device", "device_name", "cpu_model", "cpu_isa", "threads")
#: The settings that change what a latency means (bench.execute.base.RunSettings.fingerprint_part).
SETTINGS_KEYS = ("timing", "threads", "check_outputs", "seed", "overrides", "weights")


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _json(value: Any) -> str:
    from bench.results.files import json_safe

    return json.dumps(json_safe(value), sort_keys=True, default=str)


@dataclass(frozen=True)
class Machine:
    """Where and how a series was measured: the fingerprint (bench.core.env.fingerprint of
    MACHINE_KEYS and the settings' SETTINGS_KEYS), its label, environment and settings."""

    fingerprint: str
    label: str
    env: dict
    settings: dict


def machine_of(env: Mapping[str, Any], settings: Mapping[str, Any]) -> Machine:
    from bench.core.env import fingerprint

    part = {k: settings.get(k) for k in SETTINGS_KEYS}
    fp = fingerprint(dict(env), part, keys=MACHINE_KEYS)
    env_kept = {k: env.get(k) for k in MACHINE_KEYS}
    threads = env.get("threads") if env.get("threads") is not None else settings.get("threads")
    label = (f"{env.get('device_name') or env.get('device') or 'unknown device'}, torch {env.get('torch') or '?'}, "
             f"{threads if threads is not None else '?'} thread(s) [{fp[:8]}]")
    return Machine(fp, label, env_kept, part)


def round_value(record: Mapping[str, Any]) -> float | None:
    """A record's value: the speed gate's per-round statistic (its ROUND_QUANTILE-th percentile)
    of its samples, ms; None when it measured nothing usable."""
    from bench.gates.speed import round_value as gate_value

    samples = record.get("samples_ms")
    if record.get("status") not in ("ok", "ok-reduced") or not isinstance(samples, list) or not samples:
        return None
    vals = [float(s) for s in samples if isinstance(s, (int, float)) and not isinstance(s, bool)]
    vals = [v for v in vals if math.isfinite(v) and v > 0]
    return gate_value(vals) if vals else None


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


# ------------------------------------------------------------------ writes
def ensure_machine(conn, m: Machine) -> None:
    conn.execute(insert(conn, "machines").values(
        fingerprint=m.fingerprint, label=m.label, env=_json(m.env), settings=_json(m.settings),
        first_seen=now()).on_conflict_do_nothing())


def ensure_commit(conn, sha: str, generation: int | None = None, commit_time: int | None = None,
                  subject: str | None = None) -> None:
    stmt = insert(conn, "commits").values(sha=sha, generation=generation, commit_time=commit_time, subject=subject)
    if generation is None:
        conn.execute(stmt.on_conflict_do_nothing())
    else:  # what git knows beats what an earlier import did not
        conn.execute(stmt.on_conflict_do_update(index_elements=["sha"], set_={
            "generation": generation, "commit_time": commit_time, "subject": subject}))


def ensure_session(conn, session_id: str, kind: str, machine: str, source: str, command: str,
                   started: str | None = None) -> None:
    conn.execute(insert(conn, "sessions").values(
        id=session_id, kind=kind, machine=machine, source=source, command=command,
        started_utc=started or now()).on_conflict_do_nothing())


def add_record(conn, session_id: str, machine: str, commit: str, record: Mapping[str, Any]) -> bool:
    """Store one record (a case measured in one round); False when it was already there."""
    from bench.core.case import Case
    from bench.results.rounds import round_of

    case = Case.from_row(record)
    body = _json(record)
    samples = record.get("samples_ms")
    stmt = insert(conn, "records").values(
        session=session_id, machine=machine, commit_sha=commit, case_key=case.key(), case_label=case.label(),
        round=round_of(record), status=str(record.get("status")), value_ms=round_value(record),
        n_samples=len(samples) if isinstance(samples, list) else None, time_utc=record.get("time_utc"),
        record=body, digest=_digest(machine, commit, session_id, body)).on_conflict_do_nothing()
    if conn.dialect.insert_returning:  # the row inserted, if any (a driver's rowcount may count a skipped one)
        return conn.execute(stmt.returning(table("records").c.id)).first() is not None
    return bool(conn.execute(stmt).rowcount)


def add_probe(conn, session_id: str, machine: str, case_key: str, good: str, probe: str, verdict: str,
              ratio: float | None, ci: tuple[float | None, float | None], wall_s: float, detail: Mapping) -> None:
    conn.execute(table("probes").insert().values(
        session=session_id, machine=machine, case_key=case_key, good=good, probe=probe, verdict=verdict,
        ratio=ratio, ci_low=ci[0], ci_high=ci[1], wall_s=wall_s, time_utc=now(), detail=_json(detail)))


def records_from_samples(case, sha: str, rounds: Sequence[Sequence[float] | None],
                         env: Mapping[str, Any]) -> list[dict]:
    """Records of a measurement that kept only its samples per round (the speed gate's): the
    case's fields, status ok, the samples, the round, the commit and the machine's environment."""
    out = []
    for r, samples in enumerate(rounds, 1):
        if not samples:
            continue
        ordered = sorted(samples)
        out.append({**case.as_dict(), "status": "ok", "error": "", "round": r, "samples_ms": list(samples),
                    "n_samples": len(samples), "latency_ms_p50": ordered[len(ordered) // 2], "git_commit": sha[:12],
                    **{k: env.get(k) for k in MACHINE_KEYS}})
    return out


# ------------------------------------------------------------------ db import
@dataclass
class Imported:
    source: str
    added: int
    kept: int  # records already in the database
    skipped: int  # records of no commit (unknown or a dirty tree)
    notes: list[str]


def commit_of(record: Mapping[str, Any], env: Mapping[str, Any]) -> str | None:
    """The commit a record measured: its own ``git_commit`` (else the run's); None when unknown."""
    c = record.get("git_commit") or env.get("git_commit")
    if not isinstance(c, str) or not c.strip() or c.strip() == "unknown":
        return None
    return c.strip()


def import_run(database: Database, path: str | Path, *, resolve=None) -> Imported:
    """Load a run directory (or any results file bench.store.load reads) into the database, in
    one transaction. `resolve(short_sha)` -> (full sha, generation, time, subject) or None: the
    commit in the current git repository, when it is there."""
    from bench.store.load import load_results

    rs = load_results(path)
    if rs.source != "resnet-bench":
        raise UserError(f"{path}: pytest-benchmark JSON has no commit per record; import resnet-bench runs")
    notes = list(rs.notes)
    records = [r for r in rs.records if isinstance(r, dict)]
    if not records:
        return Imported(str(path), 0, 0, 0, notes + [f"{path}: no records"])
    m = machine_of(rs.env or records[0], rs.settings or {})
    session = "import:" + _digest(m.fingerprint, rs.command or "", str((rs.env or {}).get("time_utc") or ""),
                                  str(records[0].get("time_utc") or ""))[:24]
    added = kept = skipped = 0
    dirty = 0
    resolved: dict[str, Any] = {}
    with database.begin() as conn:
        ensure_machine(conn, m)
        ensure_session(conn, session, "import", m.fingerprint, str(Path(path).resolve()), rs.command or "")
        for rec in records:
            commit = commit_of(rec, rs.env or {})
            if commit is None or commit.endswith("+dirty"):
                skipped += 1
                dirty += commit is not None
                continue
            if commit not in resolved:
                info = resolve(commit) if resolve else None
                resolved[commit] = info[0] if info else commit
                ensure_commit(conn, *(info if info else (commit,)))
            if add_record(conn, session, m.fingerprint, resolved[commit], rec):
                added += 1
            else:
                kept += 1
    if skipped:
        notes.append(f"{path}: {skipped} record(s) not imported: " + (
            f"{dirty} measured in a tree with uncommitted changes" if dirty else "no commit recorded"))
    return Imported(str(path), added, kept, skipped, notes)


# ------------------------------------------------------------------ reads
@dataclass(frozen=True)
class Row:
    """One stored record, as a series needs it."""

    machine: str
    commit: str
    case_key: str
    case_label: str
    session: str
    round: int
    value_ms: float | None
    status: str


def machines(conn) -> dict[str, Machine]:
    import sqlalchemy as sa

    t = table("machines")
    return {r.fingerprint: Machine(r.fingerprint, r.label, json.loads(r.env), json.loads(r.settings))
            for r in conn.execute(sa.select(t))}


def commits(conn) -> dict[str, dict]:
    import sqlalchemy as sa

    t = table("commits")
    return {r.sha: {"generation": r.generation, "commit_time": r.commit_time, "subject": r.subject}
            for r in conn.execute(sa.select(t))}


def rows(conn, *, machine: str | None = None, case_keys: Sequence[str] | None = None,
         commits_in: Iterable[str] | None = None) -> list[Row]:
    """Stored records (without their JSON), optionally of one machine, some cases, some commits."""
    import sqlalchemy as sa

    t = table("records")
    q = sa.select(t.c.machine, t.c.commit_sha, t.c.case_key, t.c.case_label, t.c.session, t.c.round, t.c.value_ms,
                  t.c.status).order_by(t.c.id)
    if machine is not None:
        q = q.where(t.c.machine == machine)
    if case_keys is not None:
        q = q.where(t.c.case_key.in_(list(case_keys)))
    if commits_in is not None:
        q = q.where(t.c.commit_sha.in_(list(commits_in)))
    return [Row(*r) for r in conn.execute(q)]


def probes(conn) -> list[dict]:
    import sqlalchemy as sa

    t = table("probes")
    return [dict(r._mapping) for r in conn.execute(sa.select(t).order_by(t.c.id))]


def count(conn, name: str) -> int:
    import sqlalchemy as sa

    return int(conn.execute(sa.select(sa.func.count()).select_from(table(name))).scalar_one())
