"""`resnet-bench ci --base-ref REF`: both performance gates of a pull request in one step, as
examples/github-actions/perf.yml (through perf-gate.sh) runs them: the exact params/MACs gate
(bench.gates.exact) and the speed gate against REF (bench.gates.speed, interleaved rounds of
REF's worktree and this tree); a Markdown summary appended to --summary (default
$GITHUB_STEP_SUMMARY), one HTML page (--html), the gate's raw samples (--out), and with --db
both sides' rounds appended to the results database (the candidate only when its tree is a
clean commit). Exit 1 when a gate fails (0 with --report-only), 2 on bad input."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from bench import escape
from bench.cli import common_args as A
from bench.cli import history_args as H
from bench.cli.check import cases_and_settings
from bench.errors import UserError


def add_parser(sub) -> None:
    from bench.gates import speed

    p = sub.add_parser("ci", help="CI: exact gate + speed gate vs a base revision, Markdown summary, HTML, history",
                       description="Run the exact gate and the speed gate against --base-ref; write a Markdown "
                                   "summary (to $GITHUB_STEP_SUMMARY), an HTML page, the raw samples and, with --db, "
                                   "append the rounds to the results database.")
    p.add_argument("--base-ref", required=True, metavar="GIT_REF", help="the base revision (the PR's base branch)")
    H.add_case_flags(p, "variants for the speed gate")
    p.add_argument("--rounds", type=int, default=speed.DEFAULT_ROUNDS, help="interleaved rounds (default %(default)s)")
    p.add_argument("--threshold", default="5%", help="slowdown that fails the speed gate (default 5%%)")
    p.add_argument("--summary", metavar="FILE", help="append the Markdown summary here (default $GITHUB_STEP_SUMMARY; "
                   "neither: stdout)")
    p.add_argument("--html", metavar="FILE", help="write the speed gate's HTML page here")
    p.add_argument("--out", metavar="FILE", help="write the speed gate's raw samples and decisions here (JSON)")
    p.add_argument("--no-exact", action="store_true", help="skip the exact gate")
    p.add_argument("--report-only", action="store_true", help="report, always exit 0")
    H.add_db_flag(p)
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=run, argv=None)


def run(args) -> int:
    from bench.cli.check import is_gate_doc
    from bench.gates import speed
    from bench.report.terminal import speed_gate_text
    from bench.results.files import append_fsync, atomic_write, json_safe

    threshold = A.parse_fraction(args.threshold, "--threshold")
    H.check_rounds(args.rounds)
    summary = args.summary if args.summary is not None else (os.environ.get("GITHUB_STEP_SUMMARY") or None)
    if summary is not None:
        _check_summary(summary)
    H.check_html(args.html)
    if args.out:
        A.check_output_file(args.out, "--out", replaceable=is_gate_doc)
    log = H.logger(args.quiet)
    database = H.open_database(args) if args.db is not None else None  # before measuring: a bad URL fails fast
    try:
        exact_md, exact_ok = ("", True) if args.no_exact else _exact(log)
        _device, cases, settings, env = cases_and_settings(args)
        try:
            doc = speed.run_gate(cases, settings, rounds=args.rounds, threshold=threshold, alpha=speed.DEFAULT_ALPHA,
                                 env=env, command=H.command_line(args), base_ref=args.base_ref, log=log)
        except UserError as e:
            if not args.report_only:
                raise
            line = f"speed gate (report only): skipped: {e}"
            print(escape.terminal(line))
            md = f"## resnet-bench performance gates\n\n{exact_md}**Speed gate**: {escape.markdown(line)}\n"
            if summary is not None:
                append_fsync(summary, md.encode("utf-8"))
            return 0
        code = speed.exit_code(doc["cases"])
        text = speed_gate_text(doc["cases"], threshold, speed.DEFAULT_ALPHA)
        print(text)
        print(speed.summary_line(doc["cases"], code, args.report_only, doc["wall_s"]))
        failed = code == 1 or not exact_ok
        doc["exit_code"] = 0 if args.report_only else (1 if failed else code)
        md = markdown(doc, exact_md, threshold, args.report_only)
        if summary is not None:
            append_fsync(summary, md.encode("utf-8"))
            log(f"summary appended to {summary}")
        else:
            sys.stdout.write(md)
        if args.out:
            atomic_write(Path(args.out), json.dumps(json_safe(doc), indent=1) + "\n")
        if args.html:
            from bench.report import documents, figures

            page = documents.gate_html(doc, text, f"{args.base_ref} vs this tree", figures.gate_figures(doc))
            atomic_write(Path(args.html), page)
            log(f"report: {args.html}")
        if database is not None:
            log(f"history: {store_gate(database, doc, env, settings)} record(s) appended to {database.where()}")
    finally:
        if database is not None:
            database.close()
    return doc["exit_code"]


def _check_summary(path: str) -> None:
    from bench.results.files import refuse_special

    p = Path(path)
    refuse_special(p)
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"--summary {p}: {parent} is not a directory")


def _exact(log) -> tuple[str, bool]:
    import resnet_impl
    from bench.gates import exact

    res = exact.check_exact(exact.read_table(exact.REFERENCE_TABLE), resnet_impl.list_models(), progress=log)
    if res.ok:
        print(f"exact gate: OK: {res.checked} variants match {exact.REFERENCE_TABLE.name}")
        return f"**Exact gate**: PASS: {res.checked} variants match the committed counts table.\n\n", True
    print(f"exact gate: FAIL: {len(res.lines)} difference(s)")
    for line in res.lines:
        print(escape.terminal(f"  {line}"))
    lines = "".join(f"- {escape.markdown(line)}\n" for line in res.lines)
    return (f"**Exact gate**: FAIL: {len(res.lines)} difference(s) from the committed counts table "
            f"(if intended: {escape.markdown_code('resnet-bench check --exact --update')}):\n\n{lines}\n"), False


def markdown(doc: dict, exact_md: str, threshold: float, report_only: bool) -> str:
    """The step summary: the exact gate's line, the speed gate's verdict per case."""
    md = escape.markdown
    from bench.gates.speed import exit_code

    base = doc.get("base") or {}
    verdict = {0: "PASS", 1: "FAIL (a regression)", 2: "ERROR (a case not measured)"}[exit_code(doc.get("cases", []))]
    out = ["## resnet-bench performance gates", "", exact_md.rstrip("\n"), "",
           f"**Speed gate** against {escape.markdown_code(base.get('ref', '?'))} "
           f"({escape.markdown_code(str(base.get('commit', '?'))[:12])}), {doc.get('rounds')} interleaved rounds, "
           f"threshold {threshold:.0%}: {verdict}" + (" (report only)" if report_only else ""), "",
           "| case | base ms | candidate ms | ratio | 95% CI | p (slower) | verdict |", "|---|---|---|---|---|---|---|"]
    for e in doc.get("cases", []):
        c = e.get("comparison") or {}
        ci = f"[{_num(c, 'ci_low', '.3f')}, {_num(c, 'ci_high', '.3f')}]" if c else "-"
        out.append(f"| {md(e.get('label'))} | {_num(c, 'base_median_ms', '.3f')} | "
                   f"{_num(c, 'cand_median_ms', '.3f')} | {_num(c, 'ratio', '.3f')} | {ci} | "
                   f"{_num(c, 'p_slower', '.2g')} | {md(e.get('verdict'))} |")
    env = doc.get("environment") or {}
    machine = (f"Machine: {md(env.get('device_name') or env.get('device') or '?')}, "
               f"torch {md(env.get('torch') or '?')}, {md(env.get('threads'))} thread(s). "
               f"Rule: {md(doc.get('rule', ''))}.")
    out += ["", machine, ""]
    return "\n".join(x for x in out if x is not None) + "\n"


def _num(c: dict, key: str, spec: str) -> str:
    v = c.get(key)
    return format(v, spec) if isinstance(v, (int, float)) and not isinstance(v, bool) else "-"


def store_gate(database, doc: dict, env: dict, settings) -> int:
    """Both sides' rounds of a gate run as records of one session (paired by round)."""
    import uuid

    from bench.core.case import Case
    from bench.history import gitrange, store

    repo = gitrange.toplevel(Path.cwd())
    base_sha = str((doc.get("base") or {}).get("commit") or "")
    cand = str((doc.get("candidate") or {}).get("commit") or "")
    cand_sha = None if (not cand or cand.endswith("+dirty") or cand == "unknown") else gitrange.resolve(repo, "HEAD")
    machine = store.machine_of(env, settings.to_dict())
    session = f"ci:{uuid.uuid4().hex[:20]}"
    added = 0
    with database.begin() as conn:
        store.ensure_machine(conn, machine)
        store.ensure_session(conn, session, "ci", machine.fingerprint, str(repo), str(doc.get("command") or ""))
        sides = [(base_sha, "base_rounds")] + ([(cand_sha, "candidate_rounds")] if cand_sha else [])
        for sha, key in sides:
            store.ensure_commit(conn, *gitrange.describe(repo, [sha])[0].info())
            for e in doc.get("cases", []):
                case = Case.from_dict(e["case"])
                for rec in store.records_from_samples(case, sha, e.get(key) or [], env):
                    added += store.add_record(conn, session, machine.fingerprint, sha, rec)
    return added
