"""`resnet-bench db`: the results database (bench.history.db). ``db import RUN_DIR...`` loads run
directories (idempotent: a record already there is not added again); ``db info`` counts what
the database holds."""

from __future__ import annotations

from pathlib import Path

from bench import escape
from bench.cli import history_args as H
from bench.errors import UserError


def add_parser(sub) -> None:
    p = sub.add_parser("db", help="the results database: import run directories, show what it holds",
                       description="The results database behind `history` and `bisect`: SQLite (a file, default "
                                   "results/history.sqlite) or PostgreSQL (--db postgresql://...).")
    inner = p.add_subparsers(dest="db_cmd", metavar="ACTION", parser_class=type(p))
    imp = inner.add_parser("import", help="load run directories (idempotent)",
                           description="Load every record of each run directory (or results.json/rows.jsonl) into the "
                                       "database, one transaction per directory. Importing twice adds nothing.")
    imp.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories or results files")
    H.add_db_flag(imp)
    imp.set_defaults(func=run_import)
    info = inner.add_parser("info", help="what the database holds: schema version, machines, commits, records")
    H.add_db_flag(info)
    info.set_defaults(func=run_info)
    p.set_defaults(func=no_action)


def no_action(args) -> int:
    raise UserError("db needs an action: import or info (see resnet-bench db --help)")


def run_import(args) -> int:
    from bench.history import gitrange, store

    for r in args.runs:
        if not Path(r).exists():
            raise UserError(f"results not found: {r}")
    try:
        repo = gitrange.toplevel(Path.cwd())
    except UserError:
        repo = None  # not in a checkout: commits are stored as the runs recorded them
    resolve = gitrange.resolver(repo)
    with H.open_database(args) as database:
        total = 0
        for r in args.runs:
            got = store.import_run(database, r, resolve=resolve)
            total += got.added
            print(escape.terminal(f"{r}: {got.added} record(s) added, {got.kept} already in the database"
                                  + (f", {got.skipped} without a commit" if got.skipped else "")))
            for note in got.notes:
                print(escape.terminal(f"  note: {note}"))
        print(escape.terminal(f"{database.where()}: {total} record(s) added"))
    return 0


def run_info(args) -> int:
    import sqlalchemy as sa

    from bench.history import db, store

    with H.open_database(args, create=False) as database, database.connect() as conn:
        version = db.version_of(conn)
        print(escape.terminal(f"{database.where()}: schema version {version}"))
        for name in ("machines", "commits", "sessions", "records", "probes"):
            print(f"  {name}: {store.count(conn, name)}")
        t = db.table("records")
        per = conn.execute(sa.select(t.c.machine, sa.func.count()).group_by(t.c.machine)).all()
        known = store.machines(conn)
        for fp, n in per:
            print(escape.terminal(f"  {known[fp].label if fp in known else fp}: {n} record(s)"))
    return 0
