"""`resnet-bench check`: the CI gates. ``--exact``: the committed params/MACs table
(bench.gates.exact). ``--speed``: a statistical speed comparison (bench.gates.speed).
Exit 1 on a failed gate, 2 on bad input; ``--report-only`` always exits 0."""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

from bench import escape
from bench.cli import common_args as A
from bench.errors import UserError

# The speed gate's cases when a flag is not given: small and quick on a CPU core.
SPEED_DEFAULTS = {"models": "resnet18", "batch_sizes": "1", "image_sizes": "64", "layouts": "contiguous",
                  "precisions": "fp32", "compile": "none", "workloads": "infer"}


def add_parser(sub) -> None:
    from bench.gates import exact, speed

    p = sub.add_parser(
        "check", help="CI gates: exact params/MACs table, or a statistical speed comparison",
        description="--exact: compare params/MACs/FLOPs/activations with results/reference_counts.csv. "
                    "--speed: compare a candidate's latency with a base revision (--base-ref, interleaved "
                    "in fresh processes) or saved samples (--baseline). Exit 1 on a failed gate, 2 on bad input.")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--exact", action="store_true", help="check the committed counts table")
    g.add_argument("--speed", action="store_true", help="check for a statistically significant slowdown")
    p.add_argument("--table", default=str(exact.REFERENCE_TABLE), help="(--exact) reference table (default %(default)s)")
    p.add_argument("--update", action="store_true", help="(--exact) rewrite the table with fresh counts")
    p.add_argument("--full", action="store_true", help="(--exact) recount every variant with fvcore (slow)")
    A.add_sweep_flags(p, helps={
        "max_time": f"(--speed) sampling seconds per case per process (default {speed.DEFAULT_ROUND_TIME_S:g})",
        "max_warmup": f"(--speed) warm-up seconds at most per process (default {speed.DEFAULT_WARMUP_S:g})",
        "threads": "(--speed) torch threads in each measuring process (default 1 on CPU, torch's on CUDA)",
        "models": "(--speed default resnet18; --exact default: every registered variant) names or patterns",
        "image_sizes": "(--speed) comma-separated sizes in px (default 64; --exact counts each at its natural size)",
    })
    p.add_argument("--base-ref", metavar="GIT_REF", help="(--speed) measure this revision vs the working tree")
    p.add_argument("--baseline", metavar="RESULTS", help="(--speed) saved samples: a run dir, results.json, "
                   "rows.jsonl or pytest-benchmark JSON, from the same machine class")
    p.add_argument("--threshold", default="5%", help="(--speed) slowdown that fails the gate: 5%% or 0.05 (default 5%%)")
    p.add_argument("--alpha", type=float, default=speed.DEFAULT_ALPHA,
                   help="(--speed) significance level (default %(default)s)")
    p.add_argument("--rounds", type=int, default=speed.DEFAULT_ROUNDS,
                   help="(--speed) processes per side, interleaved (default %(default)s)")
    p.add_argument("--out", help="(--speed) write the raw samples of both sides and the decisions to this JSON")
    p.add_argument("--recheck", metavar="GATE_JSON", help="(--speed) re-decide a saved --out file, no measuring")
    p.add_argument("--report-only", action="store_true", help="(--speed) print the verdict, always exit 0")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=run, argv=None)


def run(args) -> int:
    if args.exact == args.speed:
        raise UserError("choose one gate: check --exact or check --speed")
    if args.exact:
        speed_only = [f for f in ("base_ref", "baseline", "recheck", "out") if getattr(args, f)]
        if speed_only:
            raise UserError(f"--{speed_only[0].replace('_', '-')} belongs to check --speed")
        return run_exact(args)
    if args.update or args.full:
        raise UserError("--update/--full belong to check --exact")
    return run_speed(args)


def _log(quiet: bool = False):
    return (lambda msg: None) if quiet else (lambda msg: print(escape.terminal(msg), file=sys.stderr, flush=True))


# ---------------------------------------------------------------- exact
def run_exact(args) -> int:
    import resnet_impl
    from bench.core.case import expand_models
    from bench.gates import exact

    path = Path(args.table)
    names = list(expand_models(args.models)) if args.models else resnet_impl.list_models()
    log = _log()
    if args.update:
        t0 = time.perf_counter()
        n, changed = exact.update_table(path, names, replace_all=not args.models, log=log)
        print(f"wrote {n} variants to {path} in {time.perf_counter() - t0:.0f} s"
              + (f"; {len(changed)} changed" if changed is not None else ""))
        for line in changed or []:
            print(escape.terminal(f"  {line}"))
        return 0
    table = exact.read_table(path)
    t0 = time.perf_counter()
    res = exact.check_exact(table, names, full=args.full, complete=not args.models, progress=log)
    took = time.perf_counter() - t0
    for line in res.notes:
        print(escape.terminal(f"note: {line}"))
    how = "fvcore recount" if args.full else "meta-device trace + recount of changed variants"
    if res.ok:
        print(f"exact gate: OK: {res.checked} variants match {path} ({how}, {took:.1f} s)")
        return 0
    print(f"exact gate: FAIL: {len(res.lines)} difference(s) from {path}:")
    for line in res.lines:
        print(escape.terminal(f"  {line}"))
    print("If the change is intended, rewrite the table with `resnet-bench check --exact --update` and commit it.")
    return 1


# ---------------------------------------------------------------- speed
def parse_threshold(text: str) -> float:
    """'5%' or '0.05' -> 0.05 (bench.cli.common_args.parse_fraction)."""
    return A.parse_fraction(text, "--threshold")


def cases_and_settings(args):
    """(device, cases, settings, env): the cases asked (speed-gate defaults) and the gate's settings."""
    import torch

    from bench.core import devices
    from bench.core import env as E
    from bench.gates import speed

    A.check_threads(args.threads)
    for flag in ("max_time", "min_time", "max_warmup"):
        A.check_seconds(getattr(args, flag), "--" + flag.replace("_", "-"))
    device = devices.resolve_device(args.device or "auto")
    cases = speed_cases(args, device)
    settings = speed.gate_settings(device, threads=args.threads, round_time_s=args.max_time,
                                   min_samples=args.min_samples, min_time_s=args.min_time,
                                   max_warmup_s=args.max_warmup)
    env = E.collect(device, settings.threads or torch.get_num_threads())
    return device, cases, settings, env


def speed_cases(args, device: str) -> list:
    """The cases asked, exactly (no reference mode added), with the gate's small defaults."""
    from bench.core.case import (
        MIN_IMAGE_SIZE,
        WORKLOADS,
        Sweep,
        check_sizes,
        expand_models,
    )

    get = lambda flag: SPEED_DEFAULTS[flag] if getattr(args, flag) is None else getattr(args, flag)  # noqa: E731
    defaults = {"layout": A.split_list(SPEED_DEFAULTS["layouts"]),
                "precision": A.split_list(SPEED_DEFAULTS["precisions"]),
                "compile": A.split_list(SPEED_DEFAULTS["compile"])}
    models = expand_models(get("models"))
    sizes = A.parse_positive_ints(get("image_sizes"), "image size", MIN_IMAGE_SIZE)
    check_sizes(models, sizes)
    return Sweep(
        models,
        A.parse_positive_ints(get("batch_sizes"), "batch size"),
        sizes,
        A.parse_modes(args, defaults),
        A.parse_choices(get("workloads"), "workload", WORKLOADS),
        device,
        backends=A.parse_backends(args.backends),
    ).cases()


def run_speed(args) -> int:
    from bench.gates import speed
    from bench.report.terminal import speed_gate_text
    from bench.results.files import atomic_write, json_safe

    threshold = parse_threshold(args.threshold)
    if not (0 < args.alpha < 0.5):
        raise UserError(f"--alpha must be between 0 and 0.5, got {args.alpha:g}")
    if args.rounds < 1:
        raise UserError(f"--rounds must be a positive integer, got {args.rounds}")
    if args.recheck:
        if args.base_ref or args.baseline:
            raise UserError("--recheck re-decides a saved gate result; drop --base-ref/--baseline")
        return _recheck(args.recheck, threshold, args.alpha, args.report_only)
    if bool(args.base_ref) == bool(args.baseline):
        raise UserError("check --speed needs exactly one of --base-ref GIT_REF or --baseline RESULTS")
    if args.out:  # before measuring: a gate's samples must have somewhere to go
        A.check_output_file(args.out, "--out", replaceable=is_gate_doc)
    log = _log(args.quiet)
    device, cases, settings, env = cases_and_settings(args)
    command = shlex.join(["resnet-bench"] + (args.argv if args.argv is not None else sys.argv[1:]))
    try:
        doc = speed.run_gate(cases, settings, rounds=args.rounds, threshold=threshold, alpha=args.alpha, env=env,
                             command=command, base_ref=args.base_ref, baseline=args.baseline, log=log)
    except UserError as e:
        if args.report_only:
            print(escape.terminal(f"speed gate (report only): skipped: {e}"))
            return 0
        raise
    code = speed.exit_code(doc["cases"])
    doc["exit_code"] = 0 if args.report_only else code
    print(speed_gate_text(doc["cases"], threshold, args.alpha))
    print(speed.summary_line(doc["cases"], code, args.report_only, doc["wall_s"]))
    if args.out:
        atomic_write(Path(args.out), json.dumps(json_safe(doc), indent=1) + "\n")
        log(f"raw samples and decisions: {args.out} (re-check with: resnet-bench check --speed --recheck {args.out})")
    return doc["exit_code"]


def is_gate_doc(path: Path) -> bool:
    """A file an earlier `check --speed --out` wrote (it may be replaced)."""
    from bench.gates.speed import SPEED_FORMAT
    from bench.results.files import read_head

    return SPEED_FORMAT.encode() in read_head(path, 200)


def _recheck(path: str, threshold: float, alpha: float, report_only: bool) -> int:
    from bench.gates import speed
    from bench.report.terminal import speed_gate_text
    from bench.results.files import read_text

    p = Path(path)
    if not p.exists():
        raise UserError(f"--recheck: file not found: {p}")
    try:
        doc = json.loads(read_text(p))
    except json.JSONDecodeError as e:
        raise UserError(f"--recheck: cannot read {p} as JSON: {e}") from None
    except RecursionError:
        raise UserError(f"--recheck: {p}: JSON nested too deeply to be a speed-gate result") from None
    entries = speed.recheck(doc, threshold, alpha, source=str(p))
    code = speed.exit_code(entries)
    print(speed_gate_text(entries, threshold, alpha))
    print(speed.summary_line(entries, code, report_only, float(doc.get("wall_s") or 0)))
    return 0 if report_only else code
