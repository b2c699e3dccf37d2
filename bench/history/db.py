"""The results database: every record (one case measured once, in one round) of every run, keyed
by commit, machine fingerprint, case and round, in SQLite (a file, the default) or PostgreSQL (a
team's shared store) through one schema (SQLAlchemy Core).

Tables (schema version :data:`SCHEMA_VERSION`):

- ``machines``: a **machine fingerprint** (bench.core.env.fingerprint of the environment without
  ``git_commit``, with the run's timing settings: what must match for two commits' latencies to
  be comparable), its environment and settings as JSON, a short label;
- ``commits``: a commit's sha, its generation (``git rev-list --count``: orders a history),
  commit time and subject, where known;
- ``sessions``: one run directory imported, one ``history run`` window, one ``bisect`` probe,
  one ``ci`` gate: kind, source, command, when. Records of one session and one round were
  measured side by side (paired);
- ``records``: session, machine, commit, case key and label, round, status, ``value_ms`` (the
  round's statistic: the speed gate's 10th percentile of its samples) and the whole record
  as JSON (samples included, so any statistic can be recomputed); ``digest`` (sha256 of machine,
  commit, session and record) is unique, so writing a record twice adds nothing;
- ``probes`` (v2): every bisect probe: good and probed commits, ratio, CI, verdict.

**Migrations** (:data:`MIGRATIONS`): step i takes a database from version i to i + 1; opening
a database applies the missing steps in one transaction (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL:
a transaction-scoped advisory lock), so concurrent openers migrate once. A database newer than
this code is refused. **Writes** are transactions: an import is all of a run directory or
nothing. SQLite writers take the write lock at ``BEGIN`` and wait up to :data:`BUSY_TIMEOUT_S` for
each other, so several processes importing at once lose nothing.

A SQLite file is never opened through a symbolic link (created, if new, through
bench.results.files.open_update), and only the named file (plus SQLite's own transient
``-journal`` beside it) is written.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from bench.errors import UserError

SCHEMA_VERSION = 2
#: The default database: a file in the project's results folder.
DEFAULT_PATH = Path("results") / "history.sqlite"
BUSY_TIMEOUT_S = 120.0
_PG_LOCK = 0x7265736E  # advisory lock id for migrations ("resn")


def _tables(meta):
    from sqlalchemy import (
        Column,
        Float,
        ForeignKey,
        Index,
        Integer,
        Table,
        Text,
        UniqueConstraint,
    )

    Table("schema_version", meta, Column("version", Integer, nullable=False))
    Table("machines", meta,
          Column("fingerprint", Text, primary_key=True), Column("label", Text, nullable=False),
          Column("env", Text, nullable=False), Column("settings", Text, nullable=False),
          Column("first_seen", Text, nullable=False))
    Table("commits", meta,
          Column("sha", Text, primary_key=True), Column("generation", Integer), Column("commit_time", Integer),
          Column("subject", Text))
    Table("sessions", meta,
          Column("id", Text, primary_key=True), Column("kind", Text, nullable=False),
          Column("machine", Text, ForeignKey("machines.fingerprint"), nullable=False),
          Column("source", Text, nullable=False), Column("command", Text, nullable=False),
          Column("started_utc", Text, nullable=False))
    Table("records", meta,
          Column("id", Integer, primary_key=True, autoincrement=True),
          Column("session", Text, ForeignKey("sessions.id"), nullable=False),
          Column("machine", Text, ForeignKey("machines.fingerprint"), nullable=False),
          Column("commit_sha", Text, nullable=False), Column("case_key", Text, nullable=False),
          Column("case_label", Text, nullable=False), Column("round", Integer, nullable=False),
          Column("status", Text, nullable=False), Column("value_ms", Float), Column("n_samples", Integer),
          Column("time_utc", Text), Column("record", Text, nullable=False), Column("digest", Text, nullable=False),
          UniqueConstraint("digest", name="uq_records_digest"))
    Index("ix_records_series", meta.tables["records"].c.machine, meta.tables["records"].c.case_key,
          meta.tables["records"].c.commit_sha)
    Table("probes", meta,
          Column("id", Integer, primary_key=True, autoincrement=True),
          Column("session", Text, ForeignKey("sessions.id"), nullable=False),
          Column("machine", Text, nullable=False), Column("case_key", Text, nullable=False),
          Column("good", Text, nullable=False), Column("probe", Text, nullable=False),
          Column("verdict", Text, nullable=False), Column("ratio", Float), Column("ci_low", Float),
          Column("ci_high", Float), Column("wall_s", Float), Column("time_utc", Text, nullable=False),
          Column("detail", Text, nullable=False))
    return meta


_META = None


def metadata():
    """The schema of the newest version (SQLAlchemy MetaData)."""
    global _META
    if _META is None:
        from sqlalchemy import MetaData

        _META = _tables(MetaData())
    return _META


def table(name: str):
    return metadata().tables[name]


def _v1(conn) -> None:
    """Version 1: machines, commits, sessions, records (+ the series index)."""
    meta = metadata()
    for name in ("schema_version", "machines", "commits", "sessions", "records"):
        meta.tables[name].create(conn)
    conn.execute(table("schema_version").insert().values(version=0))


def _v2(conn) -> None:
    """Version 2: the probes of `bisect`."""
    table("probes").create(conn)


#: MIGRATIONS[i] takes version i to i + 1.
MIGRATIONS: tuple[Callable, ...] = (_v1, _v2)
assert len(MIGRATIONS) == SCHEMA_VERSION


# ------------------------------------------------------------------ opening
def url_for(db: str | None) -> tuple[str, Path | None]:
    """`--db` -> (SQLAlchemy URL, the SQLite file or None). A value with ``://`` is a URL
    (``postgresql://...`` uses psycopg 3; ``sqlite:///FILE``); anything else a SQLite file path."""
    text = str(db) if db is not None else str(DEFAULT_PATH)
    if not text.strip():
        raise UserError("--db must name a SQLite file or a database URL, got an empty string")
    if "://" not in text:
        return f"sqlite:///{Path(text)}", Path(text)
    scheme, _, rest = text.partition("://")
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        return f"postgresql+psycopg://{rest}", None
    if scheme == "sqlite":
        path = rest.removeprefix("/")
        if not path or path == ":memory:":
            raise UserError("--db sqlite:// needs a file (sqlite:///path/to/history.sqlite)")
        return f"sqlite:///{path}", Path(path)
    raise UserError(f"--db: unsupported database URL scheme {scheme!r}; use a SQLite file path, sqlite:///FILE "
                    "or postgresql://USER@HOST/DBNAME")


def _prepare_file(path: Path, create: bool) -> None:
    from bench.results.files import open_update, refuse_special

    refuse_special(path)
    if path.exists():
        return
    if not create:
        raise UserError(f"no results database at {path}; fill one with `resnet-bench db import RUN_DIR` or "
                        "`resnet-bench history run`, or name one with --db")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"--db {path}: {parent} is not a directory")
    with open_update(path, create=True):  # never through a link; an empty file is a new SQLite database
        pass


class Database:
    """An open results database (an SQLAlchemy engine, migrated to SCHEMA_VERSION)."""

    def __init__(self, engine, path: Path | None, url: str):
        self.engine, self.path, self.url = engine, path, url

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def where(self) -> str:
        """The database for a message (a PostgreSQL URL without its password)."""
        return str(self.path) if self.path is not None else self.engine.url.render_as_string(hide_password=True)

    def begin(self):
        """A write transaction (context manager yielding the connection)."""
        return self.engine.begin()

    def connect(self):
        return self.engine.connect()

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_db(db: str | None = None, *, create: bool = True) -> Database:
    """Open (with `create`, create) the database `db` names (see :func:`url_for`) and bring its
    schema to SCHEMA_VERSION. UserError (one line) for anything the user can fix."""
    try:
        import sqlalchemy as sa
    except ImportError:
        raise UserError("the results database needs SQLAlchemy: pip install 'resnet-bench[db]'") from None
    url, path = url_for(db)
    if path is not None:
        _prepare_file(path, create)
        engine = sa.create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S})
        sa.event.listen(engine, "connect", _sqlite_connect)
        sa.event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    else:
        try:
            engine = sa.create_engine(url, pool_pre_ping=True)
        except (ImportError, ModuleNotFoundError):
            raise UserError("a PostgreSQL --db needs psycopg 3: pip install 'resnet-bench[db]'") from None
        except sa.exc.ArgumentError as e:
            raise UserError(f"--db: not a valid database URL ({e})") from None
    database = Database(engine, path, url)
    try:
        migrate(database)
    except UserError:
        database.close()
        raise
    except sa.exc.OperationalError as e:
        database.close()
        reason = " ".join(str(e.orig or e).split())[:300]
        raise UserError(f"cannot open the results database {database.where()}: {reason}") from None
    except sa.exc.DatabaseError as e:
        database.close()
        reason = " ".join(str(e.orig or e).split())[:300]
        raise UserError(f"{database.where()} is not a usable results database: {reason}") from None
    return database


def _sqlite_connect(dbapi_conn, _record) -> None:
    # the driver must not open transactions itself: BEGIN IMMEDIATE is ours (the "begin" event)
    dbapi_conn.isolation_level = None
    dbapi_conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    dbapi_conn.execute("PRAGMA foreign_keys = ON")


def version_of(conn) -> int:
    """The schema version of the database behind `conn` (0: empty)."""
    import sqlalchemy as sa

    if not sa.inspect(conn).has_table("schema_version"):
        if sa.inspect(conn).get_table_names():
            raise UserError("the database holds tables that are not resnet-bench's (no schema_version); "
                            "name another --db")
        return 0
    row = conn.execute(sa.select(table("schema_version").c.version)).first()
    return int(row[0]) if row else 0


def migrate(database: Database, target: int = SCHEMA_VERSION) -> int:
    """Apply the missing migrations up to `target` in one transaction; returns the version."""
    import sqlalchemy as sa

    with database.begin() as conn:
        if not database.is_sqlite:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK})
        have = version_of(conn)
        if have > SCHEMA_VERSION:
            raise UserError(f"{database.where()} has schema version {have}, newer than this resnet-bench's "
                            f"({SCHEMA_VERSION}); upgrade resnet-bench")
        for step in range(have, target):
            MIGRATIONS[step](conn)
            conn.execute(table("schema_version").update().values(version=step + 1))
        return max(have, target)


def insert(conn, name: str):
    """An INSERT into table `name` that does nothing on a conflict of its unique keys (SQLite and
    PostgreSQL spell it alike): call ``.on_conflict_do_nothing()`` on the result."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    return dialect_insert(table(name))


def env_url() -> str | None:
    """RESNET_BENCH_DB, the database the commands use when --db is not given (CI secrets)."""
    return os.environ.get("RESNET_BENCH_DB") or None
