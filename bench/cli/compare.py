"""`resnet-bench compare RUN_A RUN_B [RUN_C ...]`: every case the runs share, as each later
run's latency ratio to the first with a 95% CI from the raw samples (bench.results.compare);
the environments' differences; the cases not in every run."""

from __future__ import annotations

import json
import sys

from bench.cli import common_args as A


def add_parser(sub) -> None:
    p = sub.add_parser("compare", help="compare runs case by case: ratios to the first run with 95%% CIs",
                       description="Join the runs' cases by their key (model, workload, batch, size, mode, device); "
                                   "for each shared case show each later run's latency ratio to the first run with "
                                   "a 95%% CI from the raw samples (Hodges-Lehmann, inverted Mann-Whitney: the speed "
                                   "gate's statistics), the environments' differences, and the cases not in every "
                                   "run. A results.csv keeps no samples: its ratios are ratios of medians, no CI.")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories or results files (two or more; the "
                   "first is the base)")
    p.add_argument("--format", choices=("table", "markdown", "csv", "json"), default=None,
                   help="stdout format (default table; none with --html unless given)")
    p.add_argument("--html", metavar="FILE", help="also write the comparison as one self-contained HTML page")
    p.set_defaults(func=run)


def run(args) -> int:
    from bench.cli.report import is_report
    from bench.errors import UserError
    from bench.report import documents, markdown, terminal
    from bench.results.compare import Run, compare_runs
    from bench.results.files import atomic_write, json_safe
    from bench.store.load import load_results

    if len(args.runs) < 2:
        raise UserError("compare needs at least two runs (the first is the base)")
    if args.html is not None:
        A.check_output_file(args.html, "--html", replaceable=is_report)
        from bench.report.figures import require_matplotlib

        require_matplotlib()
    runs = []
    for path in args.runs:
        rs = load_results(path)
        for note in rs.notes:
            terminal.say(f"warning: {note}", "yellow")
        runs.append(Run(path, rs.rows, rs.env))
    cmp = compare_runs(runs).as_dict()
    for note in cmp["notes"]:
        terminal.say(f"note: {note}", "yellow")
    fmt = args.format or (None if args.html else "table")
    if fmt == "json":
        print(json.dumps(json_safe(cmp)))
    elif fmt == "csv":
        import pandas as pd

        from bench.escape import csv_frame

        sys.stdout.write(csv_frame(pd.DataFrame(documents.compare_records(cmp))).to_csv(index=False))
    elif fmt == "markdown":
        sys.stdout.write("\n".join(markdown.render(t) for t in documents.compare_tables(cmp)))
    elif fmt == "table":
        terminal.show(documents.compare_tables(cmp))
    if args.html is not None:
        from bench.report import figures

        page = documents.compare_html(cmp, figures.compare_figures(cmp))
        try:
            atomic_write(args.html, page)
        except OSError as e:
            raise UserError(f"cannot write {args.html}: {e.strerror or e}") from None
        terminal.say(f"report: {args.html}")
    return 0
