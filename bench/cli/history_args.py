"""What `db`, `history`, `bisect` and `ci` share: the --db flag and opening the database, the case
flags with the speed gate's small defaults, the gate's settings, the progress log."""

from __future__ import annotations

import sys
from pathlib import Path

from bench import escape
from bench.cli import common_args as A
from bench.errors import UserError

DB_HELP = ("results database: a SQLite file (default results/history.sqlite, or $RESNET_BENCH_DB) or a "
           "PostgreSQL URL postgresql://USER@HOST/DBNAME (needs resnet-bench[db])")


def add_db_flag(p) -> None:
    p.add_argument("--db", metavar="FILE_OR_URL", help=DB_HELP)


def open_database(args, *, create: bool = True):
    """The database --db names (else $RESNET_BENCH_DB, else results/history.sqlite, whose
    results/ folder is made when missing)."""
    from bench.history import db

    chosen = args.db if args.db is not None else db.env_url()
    if chosen is None and create and not db.DEFAULT_PATH.parent.exists():
        try:
            db.DEFAULT_PATH.parent.mkdir()
        except OSError as e:
            raise UserError(f"cannot create {db.DEFAULT_PATH.parent}/ for the results database: "
                            f"{e.strerror or e}") from None
    return db.open_db(chosen, create=create)


def add_case_flags(p, what: str) -> None:
    """The sweep flags with the speed gate's defaults (resnet18, bs1, 64 px, eager fp32, 1 thread)."""
    from bench.gates import speed

    A.add_sweep_flags(p, helps={
        "max_time": f"sampling seconds per case per process (default {speed.DEFAULT_ROUND_TIME_S:g})",
        "max_warmup": f"warm-up seconds at most per process (default {speed.DEFAULT_WARMUP_S:g})",
        "threads": "torch threads in each measuring process (default 1 on CPU, torch's on CUDA)",
        "models": f"{what} (default resnet18): names or patterns",
        "image_sizes": "comma-separated sizes in px (default 64)",
    })


def check_rounds(rounds: int, minimum: int = 2) -> None:
    if rounds < minimum:
        raise UserError(f"--rounds must be at least {minimum} (one round gives no interval), got {rounds}")


def logger(quiet: bool):
    return (lambda msg: None) if quiet else (lambda msg: print(escape.terminal(msg), file=sys.stderr, flush=True))


def command_line(args) -> str:
    import shlex

    return shlex.join(["resnet-bench"] + (args.argv if getattr(args, "argv", None) is not None else sys.argv[1:]))


def check_html(path: str | None) -> None:
    if path is None:
        return
    from bench.report.html import GENERATOR
    from bench.results.files import read_head

    A.check_output_file(path, "--html", replaceable=lambda p: f'<meta name="generator" content="{GENERATOR}'.encode()
                        in read_head(Path(p)))
