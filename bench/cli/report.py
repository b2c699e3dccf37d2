"""`resnet-bench report`: re-render saved results (ours or pytest-benchmark JSON), or a speed
gate's document; ``--html FILE`` writes one self-contained page, ``--plots DIR`` the figures as
PNG and SVG files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.cli import common_args as A
from bench.errors import UserError


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="re-render saved results; --html one self-contained page, --plots figures",
                       description="Render a run directory, results.json/.csv/rows.jsonl, pytest-benchmark JSON or "
                                   "a speed gate's --out file as a table (stdout), one self-contained HTML page "
                                   "(--html: figures embedded, no script, no network) or figure files (--plots).")
    p.add_argument("results", help="a run directory, results.json/.csv/rows.jsonl, pytest-benchmark JSON, or a "
                   "speed gate's JSON (check --speed --out)")
    p.add_argument("--baseline-model", help="also show each variant's latency ratio to this variant "
                   "(in the HTML: default the first model)")
    p.add_argument("--format", choices=("table", "json", "csv", "markdown"), default=None,
                   help="stdout format (default table; none with --html/--plots unless given)")
    p.add_argument("--html", metavar="FILE", help="write one self-contained HTML report here")
    p.add_argument("--plots", metavar="DIR", help="write every figure here as NAME.png and NAME.svg")
    p.set_defaults(func=run)


def is_report(path: Path) -> bool:
    """A file an earlier `--html` wrote (it may be replaced)."""
    from bench.report.html import GENERATOR
    from bench.results.files import read_head

    return f'<meta name="generator" content="{GENERATOR}'.encode() in read_head(path)


def check_outputs(args) -> None:
    """Output paths and matplotlib, before anything is read or drawn."""
    if args.html is not None:
        A.check_output_file(args.html, "--html", replaceable=is_report)
    if args.plots is not None:
        A.check_output_dir(args.plots, "--plots")
    if args.html is not None or args.plots is not None:
        from bench.report.figures import require_matplotlib

        require_matplotlib()


def write_outputs(args, figures, page: str | None) -> None:
    """The figure files and the page; an OSError (a full disk, a read-only place) is one line."""
    from bench.report import figures as F
    from bench.report.terminal import say
    from bench.results.files import atomic_write

    try:
        if args.plots is not None:
            paths = F.save(figures, args.plots)
            say(f"figures: {len(paths)} file(s) in {args.plots}")
        if args.html is not None and page is not None:
            atomic_write(Path(args.html), page)
            say(f"report: {args.html}")
    except OSError as e:
        raise UserError(f"cannot write {e.filename or args.html or args.plots}: {e.strerror or e}") from None


def _gate_doc(path: str):
    """The speed-gate document at `path`, or None when it is not one."""
    from bench.gates.speed import SPEED_FORMAT

    from bench.results.files import read_text

    p = Path(path)
    if not (p.is_file() and p.suffix == ".json"):
        return None
    try:
        text = read_text(p)
        if SPEED_FORMAT not in text[:200]:
            return None
        doc = json.loads(text)
    except (UserError, json.JSONDecodeError, RecursionError):
        return None
    return doc if isinstance(doc, dict) and doc.get("format") == SPEED_FORMAT else None


def run(args) -> int:
    check_outputs(args)
    doc = _gate_doc(args.results)
    if doc is not None:
        return _gate(args, doc)
    from bench.report import summary, terminal
    from bench.report.markdown import results_markdown
    from bench.results.analysis import analyse
    from bench.results.files import json_safe
    from bench.store.load import load_results

    rs = load_results(args.results)
    for note in rs.notes:
        terminal.say(f"warning: {note}", "yellow")
    models = {r.get("model") for r in rs.rows}
    if args.baseline_model is not None and args.baseline_model not in models:
        raise UserError(f"--baseline-model {args.baseline_model!r} is not in these results; "
                        f"models: {', '.join(sorted(map(str, models)))}")
    if not rs.records:
        terminal.say(f"warning: {args.results} holds no rows yet (a run that has measured nothing)", "yellow")
    analysis = analyse(rs.records, rs.env, rs.settings, rs.command, baseline=args.baseline_model,
                       rows=rs.rows)  # analysed once: every format below renders this
    fmt = args.format or (None if (args.html or args.plots) else "table")
    if fmt == "json":
        print(json.dumps(json_safe(analysis.full_records())))
    elif fmt == "csv":
        sys.stdout.write(summary.csv_text(analysis))
    elif fmt == "markdown":
        sys.stdout.write(results_markdown(analysis))
    elif fmt == "table":
        terminal.show_results(analysis)
    if args.html is None and args.plots is None:
        return 0
    from bench.report import documents, figures

    figs = figures.run_figures(analysis)
    page = None
    if args.html is not None:
        notes = list(rs.notes)
        if not any(isinstance(r.get("samples_ms"), list) and r["samples_ms"] for r in rs.records):
            notes.append(f"{args.results} keeps no raw samples (a CSV keeps none): no latency distributions")
        page = documents.run_html(analysis, f"resnet-bench report: {args.results}", figures=figs, notes=notes)
    write_outputs(args, figs, page)
    return 0


def _gate(args, doc: dict) -> int:
    """A speed gate's document: its verdicts (stdout), and both sides' samples as a figure."""
    from bench.gates import speed
    from bench.report import documents, figures
    from bench.report.terminal import speed_gate_text

    if args.format not in (None, "table"):
        raise UserError(f"{args.results} is a speed gate's result: it renders as a table, --html or --plots, "
                        f"not --format {args.format}")
    try:
        threshold, alpha = float(doc.get("threshold", speed.DEFAULT_THRESHOLD)), float(doc.get("alpha", speed.DEFAULT_ALPHA))
    except (TypeError, ValueError):
        raise UserError(f"{args.results}: threshold and alpha must be numbers") from None
    entries = speed.recheck(doc, threshold, alpha, source=args.results)
    doc = {**doc, "cases": [{**case, **entry} for case, entry in zip(doc["cases"], entries)]}  # decided now
    text = speed_gate_text(entries, threshold, alpha)
    if args.format == "table" or not (args.html or args.plots):
        print(text)
    if args.html is None and args.plots is None:
        return 0
    figs = figures.gate_figures(doc)
    page = documents.gate_html(doc, text, args.results, figs) if args.html is not None else None
    write_outputs(args, figs, page)
    return 0
