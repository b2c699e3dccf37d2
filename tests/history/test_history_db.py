"""The results database (bench.history.db, store): schema and migrations, idempotent imports,
transactional writes, concurrent writers on SQLite (several processes at once lose nothing),
hostile paths refused, and the same schema on a real local PostgreSQL server (skipped, with
the reason, where none can run)."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
from pathlib import Path

import pytest

from bench.errors import UserError
from bench.history import db, store
from tests.history._data import postgres_bin, postgres_server, run_dir


def counts(database) -> dict[str, int]:
    with database.connect() as conn:
        return {t: store.count(conn, t) for t in ("machines", "commits", "sessions", "records", "probes")}


def test_a_new_database_has_the_newest_schema(tmp_path):
    with db.open_db(str(tmp_path / "h.sqlite")) as database, database.connect() as conn:
        assert db.version_of(conn) == db.SCHEMA_VERSION
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.sqlite"]  # nothing else left beside it


def test_import_is_idempotent_and_keyed_by_commit_machine_case_round(tmp_path):
    a = run_dir(tmp_path / "a", "aaaaaaaaaaaa", 20.0, seed=1)
    b = run_dir(tmp_path / "b", "bbbbbbbbbbbb", 21.0, seed=2)
    with db.open_db(str(tmp_path / "h.sqlite")) as database:
        first = [store.import_run(database, p) for p in (a, b)]
        assert [x.added for x in first] == [3, 3]
        again = [store.import_run(database, p) for p in (a, b)]
        assert [x.added for x in again] == [0, 0] and [x.kept for x in again] == [3, 3]
        assert counts(database) == {"machines": 1, "commits": 2, "sessions": 2, "records": 6, "probes": 0}
        with database.connect() as conn:
            rows = store.rows(conn)
        assert {(r.commit, r.round) for r in rows} == {(c, r) for c in ("aaaaaaaaaaaa", "bbbbbbbbbbbb")
                                                      for r in (1, 2, 3)}
        assert all(r.value_ms is not None and 18 < r.value_ms < 22 for r in rows)


def test_another_machine_is_another_series(tmp_path):
    from tests.history._data import ENV

    a = run_dir(tmp_path / "a", "aaaaaaaaaaaa", 20.0, seed=1)
    b = run_dir(tmp_path / "b", "aaaaaaaaaaaa", 30.0, seed=2, env={**ENV, "cpu_model": "Other CPU"})
    with db.open_db(str(tmp_path / "h.sqlite")) as database:
        for p in (a, b):
            store.import_run(database, p)
        assert counts(database)["machines"] == 2


def test_a_dirty_tree_is_not_a_commit(tmp_path):
    a = run_dir(tmp_path / "a", "aaaaaaaaaaaa+dirty", 20.0)
    with db.open_db(str(tmp_path / "h.sqlite")) as database:
        got = store.import_run(database, a)
        assert got.added == 0 and got.skipped == 3
        assert "uncommitted changes" in got.notes[-1]


def test_an_import_is_one_transaction(tmp_path, monkeypatch):
    a = run_dir(tmp_path / "a", "aaaaaaaaaaaa", 20.0)
    calls = {"n": 0}
    real = store.add_record

    def failing(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk gone")
        return real(*args, **kw)

    with db.open_db(str(tmp_path / "h.sqlite")) as database:
        monkeypatch.setattr(store, "add_record", failing)
        with pytest.raises(RuntimeError):
            store.import_run(database, a)
        assert counts(database)["records"] == 0 and counts(database)["sessions"] == 0  # all or nothing


def test_migration_from_version_1_keeps_the_data(tmp_path):
    path = tmp_path / "h.sqlite"
    url, _ = db.url_for(str(path))
    import sqlalchemy as sa

    path.touch()
    engine = sa.create_engine(url)
    old = db.Database(engine, path, url)
    assert db.migrate(old, target=1) == 1
    with engine.begin() as conn:
        assert db.version_of(conn) == 1 and not sa.inspect(conn).has_table("probes")
    old.close()
    a = run_dir(tmp_path / "a", "aaaaaaaaaaaa", 20.0)
    with db.open_db(str(path)) as database:  # migrates to the newest version first
        store.import_run(database, a)
        with database.connect() as conn:
            assert db.version_of(conn) == db.SCHEMA_VERSION
            assert sa.inspect(conn).has_table("probes")
        assert counts(database)["records"] == 3


def test_a_newer_or_foreign_database_is_refused(tmp_path):
    path = tmp_path / "h.sqlite"
    db.open_db(str(path)).close()
    with sqlite3.connect(path) as c:
        c.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(UserError, match="newer than this resnet-bench"):
        db.open_db(str(path))
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as c:
        c.execute("CREATE TABLE notes (x TEXT)")
    with pytest.raises(UserError, match="not resnet-bench's"):
        db.open_db(str(other))
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(UserError, match="not a usable results database"):
        db.open_db(str(junk))


def test_hostile_paths_and_urls_are_refused(tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    link = tmp_path / "h.sqlite"
    link.symlink_to(target)
    with pytest.raises(UserError, match="symbolic link"):
        db.open_db(str(link))
    assert target.read_text() == "keep me"
    with pytest.raises(UserError, match="no results database"):
        db.open_db(str(tmp_path / "absent.sqlite"), create=False)
    with pytest.raises(UserError, match="is not a directory"):
        db.open_db(str(tmp_path / "no" / "such" / "h.sqlite"))
    for bad in ("mysql://x/y", "", "sqlite://", "sqlite:///:memory:"):
        with pytest.raises(UserError):
            db.url_for(bad)


def _import_many(path: str, dirs: list[str]) -> int:
    with db.open_db(path) as database:
        return sum(store.import_run(database, d).added for d in dirs)


def test_concurrent_writers_lose_nothing(tmp_path):
    """Four processes import at once into one SQLite file: each its own runs, and all of them one
    shared run; afterwards every record is there exactly once."""
    shared = str(run_dir(tmp_path / "shared", "cccccccccccc", 19.0, rounds=5, seed=99))
    jobs = []
    for w in range(4):
        own = [str(run_dir(tmp_path / f"w{w}-{i}", f"{w:02d}{i:02d}aaaaaaaa", 20.0 + i, rounds=4, seed=10 * w + i))
               for i in range(5)]
        jobs.append(own[:2] + [shared] + own[2:])
    path = str(tmp_path / "h.sqlite")
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        added = pool.starmap(_import_many, [(path, dirs) for dirs in jobs])
    assert sum(added) == 4 * 5 * 4 + 5
    with db.open_db(path) as database:
        c = counts(database)
    assert c["records"] == 4 * 5 * 4 + 5 and c["commits"] == 21 and c["sessions"] == 21


# ---------------------------------------------------------------- PostgreSQL, for real
def _postgres_skip_reason() -> str | None:
    if postgres_bin() is None:
        return "no PostgreSQL server here (/usr/lib/postgresql/*/bin/initdb; Debian: apt-get install postgresql)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install 'resnet-bench[db]')"
    if os.geteuid() == 0:
        import pwd

        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run the server as"
    return None


@pytest.fixture(scope="module")
def postgres():
    reason = _postgres_skip_reason()
    if reason:
        pytest.skip(reason)
    with postgres_server() as (sock, user):
        yield sock, user


def _fresh_pg_db(sock: Path, user: str, name: str) -> str:
    import psycopg

    with psycopg.connect(host=str(sock), user=user, dbname="postgres", autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}"')
        c.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql://{user}@/{name}?host={sock}"


def test_postgresql_same_schema_and_idempotent_import(tmp_path, postgres):
    url = _fresh_pg_db(*postgres, "history_one")
    a = run_dir(tmp_path / "a", "aaaaaaaaaaaa", 20.0, seed=1)
    b = run_dir(tmp_path / "b", "bbbbbbbbbbbb", 22.0, seed=2)
    with db.open_db(url) as database:
        assert not database.is_sqlite and "@" in database.where()
        assert [store.import_run(database, p).added for p in (a, b, a)] == [3, 3, 0]
        assert counts(database) == {"machines": 1, "commits": 2, "sessions": 2, "records": 6, "probes": 0}
        with database.connect() as conn:
            assert db.version_of(conn) == db.SCHEMA_VERSION
    with db.open_db(url) as database:  # opening again migrates nothing, keeps everything
        assert counts(database)["records"] == 6


def test_postgresql_concurrent_writers_lose_nothing(tmp_path, postgres):
    url = _fresh_pg_db(*postgres, "history_two")
    shared = str(run_dir(tmp_path / "shared", "cccccccccccc", 19.0, rounds=5, seed=99))
    jobs = [[str(run_dir(tmp_path / f"w{w}-{i}", f"{w:02d}{i:02d}bbbbbbbb", 20.0, rounds=3, seed=w * 10 + i))
             for i in range(3)] + [shared] for w in range(3)]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(3) as pool:
        added = pool.starmap(_import_many, [(url, dirs) for dirs in jobs])
    assert sum(added) == 3 * 3 * 3 + 5
    with db.open_db(url) as database:
        assert counts(database)["records"] == 3 * 3 * 3 + 5


# ---------------------------------------------------------------- what history run measures
def test_windows_pair_every_neighbour_and_skip_what_is_measured():
    from bench.history.measure import plan_windows

    c = list("abcdefghij")
    assert plan_windows(c, set(c), 4) == [list("abcd"), list("defg"), list("ghij")]
    assert plan_windows(c, set("cdh"), 4) == [list("bcd"), list("gh")]  # each run of pending with its anchor
    assert plan_windows(["a"], {"a"}, 4) == [["a"]]
    assert plan_windows(c, set(), 3) == []
    for pending in (set("bdfhj"), set("aj"), set("efg")):
        windows = plan_windows(c, pending, 3)
        assert set().union(*windows) >= pending
        pairs = {(w[i], w[i + 1]) for w in windows for i in range(len(w) - 1)}
        assert all((c[c.index(p) - 1], p) in pairs for p in pending if p != "a")  # measured beside its predecessor


def test_measured_counts_ok_rounds_per_case_on_this_machine(tmp_path):
    from bench.core.case import Case
    from bench.history.measure import measured
    from tests.history._data import CASE, ENV, SETTINGS, records

    m = store.machine_of(ENV, SETTINGS)
    case = Case.from_dict(CASE)
    with db.open_db(str(tmp_path / "h.sqlite")) as database:
        with database.begin() as conn:
            store.ensure_machine(conn, m)
            store.ensure_session(conn, "s1", "history", m.fingerprint, "here", "test")
            for commit, n in (("aaa", 3), ("bbb", 1)):
                for rec in records(commit, 20.0, n):
                    store.add_record(conn, "s1", m.fingerprint, commit, rec)
            bad = {**records("ccc", 20.0, 1)[0], "status": "crashed", "samples_ms": []}
            for r in (1, 2, 3):
                store.add_record(conn, "s1", m.fingerprint, "ccc", {**bad, "round": r})
        assert measured(database, m.fingerprint, [case], ["aaa", "bbb", "ccc"], 3) == {"aaa"}
        assert measured(database, m.fingerprint, [case], ["aaa", "bbb", "ccc"], 1) == {"aaa", "bbb"}
        assert measured(database, "another machine", [case], ["aaa"], 1) == set()
