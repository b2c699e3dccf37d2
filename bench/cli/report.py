"""`resnet-bench report`: re-render saved results (ours or pytest-benchmark JSON)."""

from __future__ import annotations

import json
import sys


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="re-render saved results (ours or pytest-benchmark JSON)")
    p.add_argument("results", help="a run directory, results.json/.csv/rows.jsonl, or pytest-benchmark JSON")
    p.add_argument("--baseline-model", help="also show each variant's latency ratio to this variant")
    p.add_argument("--format", choices=("table", "json", "csv", "markdown"), default="table")
    p.set_defaults(func=run)


def run(args) -> int:
    from bench.report import terminal
    from bench.report.markdown import results_markdown
    from bench.results.files import json_safe
    from bench.store.load import load_results

    rs = load_results(args.results)
    for note in rs.notes:
        terminal.say(f"warning: {note}", "yellow")
    df = rs.frame()
    if args.format == "json":
        print(json.dumps(json_safe(rs.rows)))
    elif args.format == "csv":
        sys.stdout.write(df.to_csv(index=False))
    elif args.format == "markdown":
        sys.stdout.write(results_markdown(df, rs.env, rs.command))
    else:
        terminal.show_results(df, args.baseline_model, cpu_count=rs.env.get("cpu_count"))
    return 0
