"""`resnet-bench bisect GOOD BAD`: the first commit of a step between two revisions, by probes of
the speed gate's interleaved measurement (bench.history.bisect); every probe logged and stored
in the results database. Exit 0 when the first commit was found (an adjacent pair), 1 when
GOOD and BAD do not differ or the budget ran out first, 2 on bad input."""

from __future__ import annotations

import math
from pathlib import Path

from bench import escape
from bench.cli import common_args as A
from bench.cli import history_args as H
from bench.cli.check import cases_and_settings
from bench.errors import UserError


def add_parser(sub) -> None:
    from bench.gates import speed

    p = sub.add_parser("bisect", help="find the first commit of a step between GOOD and BAD",
                       description="Bisect the first-parent history GOOD..BAD for the commit where one case's latency "
                                   "changed: each probe measures a commit against the last good one in interleaved "
                                   "rounds (the speed gate), at most ceil(log2 n) + 2 probes. Every probe is logged "
                                   "and stored in the results database.")
    p.add_argument("good", metavar="GOOD", help="a revision before the step")
    p.add_argument("bad", metavar="BAD", help="a revision after the step (GOOD must be its ancestor)")
    H.add_case_flags(p, "the variant (one case in all)")
    p.add_argument("--rounds", type=int, default=speed.DEFAULT_ROUNDS,
                   help="interleaved rounds per probe (default %(default)s)")
    p.add_argument("--budget", type=float, metavar="S", help="wall seconds for all probes; stop before one that "
                   "would not fit (default: none)")
    p.add_argument("--threshold", default="5%",
                   help="the smallest step to look for: the first probe must not rule out a change this large "
                        "(default 5%%); also each probe's gate verdict")
    H.add_db_flag(p)
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=run, argv=None)


def run(args) -> int:
    from bench.history import gitrange
    from bench.history.bisect import bisect, max_probes

    H.check_rounds(args.rounds)
    if args.budget is not None and not (math.isfinite(args.budget) and args.budget > 0):
        raise UserError(f"--budget must be a positive number of seconds, got {args.budget:g}")
    threshold = A.parse_fraction(args.threshold, "--threshold")
    repo = gitrange.toplevel(Path.cwd())
    good_sha = gitrange.resolve(repo, args.good, "GOOD")
    bad_sha = gitrange.resolve(repo, args.bad, "BAD")
    if good_sha == bad_sha:
        raise UserError("GOOD and BAD are the same commit")
    commits = gitrange.commits_in(repo, f"{good_sha}..{bad_sha}")
    if commits[-1].sha != bad_sha:
        raise UserError(f"BAD {args.bad} is not on the first-parent history after GOOD {args.good}")
    for sha in (good_sha, bad_sha):
        if not gitrange.measurable(repo, sha):
            raise UserError(f"{sha[:12]} has no isolated worker (bench/execute/worker.py): it cannot be measured")
    _device, cases, settings, env = cases_and_settings(args)
    if len(cases) != 1:
        raise UserError(f"bisect follows one case; these flags give {len(cases)} (e.g. "
                        f"{'; '.join(c.label() for c in cases[:2])}): narrow --models/--image-sizes/...")
    good = gitrange.describe(repo, [good_sha])[0]
    log = H.logger(args.quiet)
    with H.open_database(args) as database:
        out = bisect(repo, good, commits, cases[0], settings, rounds=args.rounds, database=database, env=env,
                     command=H.command_line(args), budget_s=args.budget, threshold=threshold, log=log)
    subject = {c.sha: c.subject for c in commits}
    n = len(out.probes)
    print(escape.terminal(f"bisect {cases[0].label()}: {len(commits)} commit(s), {n} probe(s) "
                          f"(at most {max_probes(len(commits))}), {out.wall_s:.0f} s"))
    if out.reason == "no-step":
        s = out.step
        why = ("holds 1" if s.ci_low is None or s.ci_low <= 1.0 <= s.ci_high
               else f"rules out a change of {threshold:.0%} (the threshold)")
        ci = f"[{s.ci_low:.4f}, {s.ci_high:.4f}]" if s.ci_low is not None else "(no CI)"
        print(escape.terminal(f"no step: BAD/GOOD = {s.ratio:.4f}x {ci} {why}"))
        return 1
    if out.reason == "error":
        print("bisect stopped: a probe measured nothing (see the lines above)")
        return 1
    step = out.pair or out.step
    size = f"{step.ratio:.4f}x [{step.ci_low:.4f}, {step.ci_high:.4f}]" if step and step.ci_low is not None else "?"
    if out.adjacent:
        print(escape.terminal(f"first commit of the step: {out.bad} {subject.get(out.bad, '')}".rstrip()))
        print(escape.terminal(f"  after {out.good[:12]}; step {size}"))
        return 0
    print(escape.terminal(f"budget spent: the step's first commit is after {out.good[:12]} and at or before "
                          f"{out.bad[:12]} ({out.reason})"))
    return 1
