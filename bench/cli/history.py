"""`resnet-bench history`: performance over time. ``history run REV_RANGE`` measures each commit
of a range in a git worktree, interleaved in windows of neighbouring commits, and stores the
records (bench.history.measure); ``history report`` finds every step of every series and
renders them (bench.history.series, bench.history.report)."""

from __future__ import annotations

import sys
from pathlib import Path

from bench import escape
from bench.cli import common_args as A
from bench.cli import history_args as H
from bench.cli.check import cases_and_settings
from bench.errors import UserError

DEFAULT_ROUNDS = 5


def add_parser(sub) -> None:
    from bench.history.measure import DEFAULT_WINDOW

    p = sub.add_parser("history", help="performance over time: measure a range of commits, report its steps",
                       description="history run: measure each commit of a git range (worktrees, interleaved rounds "
                                   "of neighbouring commits) into the results database. history report: per case "
                                   "and machine, latency against commit with every step, its size and CI.")
    inner = p.add_subparsers(dest="history_cmd", metavar="ACTION", parser_class=type(p))
    r = inner.add_parser("run", help="measure the commits of a range (skips those measured on this machine)",
                         description="Measure every commit of REV_RANGE (A..B: first-parent history after A up to "
                                     "B; or one revision) with the speed gate's settings, neighbouring commits "
                                     "interleaved in the same rounds. Commits already measured on this machine are "
                                     "skipped; a killed run resumes with the same command.")
    r.add_argument("rev_range", metavar="REV_RANGE", help="A..B or one revision")
    r.add_argument("--every", type=int, default=1, help="measure every N-th commit (the newest always)")
    r.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS,
                   help="interleaved rounds (processes) per commit (default %(default)s)")
    r.add_argument("--window", type=int, default=DEFAULT_WINDOW,
                   help="commits measured side by side in one session (default %(default)s; neighbouring "
                        "windows share a commit)")
    H.add_case_flags(r, "variants to measure")
    H.add_db_flag(r)
    r.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    r.set_defaults(func=run_history, argv=None)
    rep = inner.add_parser("report", help="every step of every series: table, Markdown, JSON or one HTML page",
                           description="Per case and machine fingerprint: latency against commit, every step with "
                                       "its commit, size and 95%% CI, one-commit outliers told apart.")
    rep.add_argument("rev_range", nargs="?", metavar="REV_RANGE",
                     help="only these commits, in this order (default: every commit in the database)")
    rep.add_argument("--format", choices=("table", "markdown", "json"), default=None,
                     help="stdout format (default table; none with --html unless given)")
    rep.add_argument("--html", metavar="FILE", help="write one self-contained HTML page here")
    rep.add_argument("--models", help="only cases of these variants (names or patterns)")
    rep.add_argument("--machine", metavar="FINGERPRINT", help="only this machine fingerprint (a prefix is enough)")
    rep.add_argument("--threshold", default="5%",
                     help="smallest step called a regression or improvement: 5%% or 0.05 (default 5%%)")
    H.add_db_flag(rep)
    rep.set_defaults(func=run_report)
    p.set_defaults(func=no_action)


def no_action(args) -> int:
    raise UserError("history needs an action: run or report (see resnet-bench history --help)")


def run_history(args) -> int:
    from bench.history import gitrange
    from bench.history.measure import run_history as measure

    H.check_rounds(args.rounds)
    if args.window < 2:
        raise UserError(f"--window must be at least 2 (neighbours side by side), got {args.window}")
    repo = gitrange.toplevel(Path.cwd())
    commits = gitrange.commits_in(repo, args.rev_range, args.every)
    _device, cases, settings, env = cases_and_settings(args)
    log = H.logger(args.quiet)
    with H.open_database(args) as database:
        log(f"history: {len(commits)} commit(s) of {args.rev_range} x {len(cases)} case(s), {args.rounds} rounds, "
            f"into {database.where()}")
        out = measure(repo, commits, cases, settings, rounds=args.rounds, database=database, env=env,
                      command=H.command_line(args), window=args.window, log=log)
    print(escape.terminal(
        f"history: {out.planned} commit(s): {out.planned - len(out.skipped) - len(out.unmeasurable)} measured in "
        f"{out.windows} window(s), {len(out.skipped)} already measured, {len(out.unmeasurable)} not measurable; "
        f"{out.records} record(s) stored in {out.wall_s:.0f} s"))
    return 0


def run_report(args) -> int:
    from bench.history import gitrange, series, store
    from bench.history import report as R

    threshold = A.parse_fraction(args.threshold, "--threshold")
    H.check_html(args.html)
    if args.html is not None:
        from bench.report.figbase import require_matplotlib

        require_matplotlib()
    order = None
    if args.rev_range:
        order = [c.sha for c in gitrange.commits_in(gitrange.toplevel(Path.cwd()), args.rev_range)]
    with H.open_database(args, create=False) as database, database.connect() as conn:
        machines, commits = store.machines(conn), store.commits(conn)
        chosen = None
        if args.machine:
            chosen = [m for m in machines if m.startswith(args.machine)]
            if len(chosen) != 1:
                raise UserError(f"--machine {args.machine!r} matches {len(chosen)} machine fingerprint(s); known: "
                                + ", ".join(sorted(m[:12] for m in machines))[:300])
        rows = store.rows(conn, machine=chosen[0] if chosen else None)
        probes = [p for p in store.probes(conn) if not chosen or p["machine"] == chosen[0]]
        where = database.where()
    if args.models:
        import fnmatch

        patterns = A.split_list(args.models)
        rows = [r for r in rows if any(fnmatch.fnmatchcase(r.case_key.split("|", 1)[0], pat) for pat in patterns)]
    found = series.build(rows, machines, commits, threshold=threshold, commit_order=order)
    fmt = args.format or (None if args.html else "table")
    if fmt == "json":
        print(R.as_json(found, commits, threshold, probes))
    elif fmt == "markdown":
        sys.stdout.write(R.markdown(found, commits, threshold, probes))
    elif fmt == "table":
        from bench.report import terminal

        if not found:
            print(escape.terminal(f"{where}: no measured series" + (" in this range" if order else "")))
        terminal.show(R.tables(found, commits, threshold, probes))
    if args.html is not None:
        from bench.results.files import atomic_write

        atomic_write(Path(args.html), R.html_page(found, commits, threshold, where, probes))
        print(escape.terminal(f"report: {args.html}"), file=sys.stderr)
    return 0

