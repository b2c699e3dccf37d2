"""`resnet-bench validate`: the harness against torch.utils.benchmark.Timer, resnet_impl
against torchvision (bench.validate). Exit 0 all pass, 1 a check fails, 2 bad input."""

from __future__ import annotations

import json
import math
import os
import shlex
import sys
from pathlib import Path

from bench.cli import common_args as A
from bench.errors import UserError


def add_parser(sub) -> None:
    from bench.core import devices, modes
    from bench import validate as V

    p = sub.add_parser(
        "validate", help="check the harness against torch.utils.benchmark.Timer and resnet_impl against torchvision",
        description="harness: our median latency vs torch.utils.benchmark.Timer on the same step and threads "
                    "(within 3%). torchvision: resnet_impl vs torchvision's model with the same weights, in every "
                    "mode the device runs (ratio 1.00 +/- 0.03). Interleaved rounds in one process. Exit 0 all "
                    "pass, 1 a check fails, 2 bad input.")
    p.add_argument("--check", default=",".join(V.CHECKS), help=f"comma-separated: {', '.join(V.CHECKS)} (default both)")
    p.add_argument("--model", default=V.DEFAULT_MODEL,
                   help="registered variant (with a torchvision counterpart for --check torchvision; default %(default)s)")
    p.add_argument("--device", default="auto", help=f"auto, {', '.join(devices.kinds())} (default auto)")
    p.add_argument("--threads", type=int, help="torch threads, also passed to Timer (default: torch's)")
    p.add_argument("--rounds", type=int, default=V.DEFAULT_ROUNDS, help="interleaved rounds per side (default %(default)s)")
    p.add_argument("--round-time", type=float, default=V.DEFAULT_ROUND_TIME_S,
                   help="seconds of sampling per round per side (default %(default)s)")
    p.add_argument("--warmup-time", type=float, default=V.DEFAULT_WARMUP_S,
                   help="warm-up seconds at most per side and mode, after the first call (default %(default)s)")
    p.add_argument("--image-size", type=int, default=224, help="input size in px (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=1, help="batch size (default %(default)s)")
    p.add_argument("--layouts", help=f"(torchvision) comma-separated: {', '.join(modes.names('layout'))} (default both)")
    p.add_argument("--precisions", help=f"(torchvision) comma-separated: {', '.join(modes.names('precision'))} "
                                        "(default: fp32,bf16 on CPU; all four on CUDA)")
    p.add_argument("--compile", help=f"(torchvision) comma-separated: {', '.join(modes.names('compile'))} "
                                     "(default: none,default,max-autotune on CPU; all four on CUDA)")
    p.add_argument("--no-runner-path", action="store_true",
                   help="(harness) skip the CaseRunner.run vs Timer comparison (the slower one)")
    p.add_argument("--out", default=str(V.DEFAULT_OUT), help="output directory (default %(default)s)")
    p.add_argument("--format", choices=("table", "json"), default="table",
                   help="json: stdout holds only the JSON document")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run, argv=None)


def _check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create --out directory {out}: {e.strerror or e}") from None
    if not os.access(out, os.W_OK):
        raise UserError(f"cannot write to --out directory {out}")


def plan(args):
    """Validate every flag before anything is measured: (checks, Settings, modes, out dir)."""
    import torch

    from bench import validate as V
    from bench.core import devices, modes
    from bench.core.case import MIN_IMAGE_SIZE, check_sizes, expand_models

    checks = A.parse_choices(args.check, "check", V.CHECKS)
    if args.rounds < V.MIN_ROUNDS:
        raise UserError(f"--rounds must be an integer >= {V.MIN_ROUNDS} (rounds per side), got {args.rounds}")
    if not (math.isfinite(args.round_time) and args.round_time > 0):
        raise UserError(f"--round-time must be a positive number of seconds, got {args.round_time:g}")
    if not (math.isfinite(args.warmup_time) and args.warmup_time >= 0):
        raise UserError(f"--warmup-time must be a number of seconds >= 0, got {args.warmup_time:g}")
    A.check_threads(args.threads)
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be a positive integer, got {args.batch_size}")
    if args.image_size < MIN_IMAGE_SIZE:
        raise UserError(f"--image-size must be a positive integer, got {args.image_size}")
    names = expand_models(args.model)
    check_sizes(names, [args.image_size])
    if len(names) != 1:
        raise UserError(f"--model takes one name, got {args.model!r} ({len(names)} matches)")
    name = names[0]
    if "torchvision" in checks and name not in V.torchvision_names():
        raise UserError(f"--model {name} has no torchvision counterpart for --check torchvision; "
                        "try resnet18/34/50/101/152, resnext50_32x4d, wide_resnet50_2, ...")
    device = devices.resolve_device(args.device)

    def axis(flag: str, axis_name: str, what: str):
        value = getattr(args, flag)
        return A.parse_choices(value, what, modes.names(axis_name)) if value else None

    mode_plan = V.mode_list(device, axis("layouts", "layout", "layout"), axis("precisions", "precision", "precision"),
                            axis("compile", "compile", "compile mode"))
    out = Path(args.out)
    _check_out_dir(out)
    s = V.Settings(model=name, device=device, threads=args.threads or torch.get_num_threads(),
                   batch_size=args.batch_size, image_size=args.image_size, rounds=args.rounds,
                   round_time_s=args.round_time, warmup_s=args.warmup_time, runner_path=not args.no_runner_path)
    return checks, s, mode_plan, out


def run(args) -> int:
    from bench import validate as V
    from bench.report import terminal
    from bench.results.files import json_safe

    checks, s, mode_plan, out = plan(args)
    command = shlex.join(["resnet-bench"] + list(args.argv if args.argv is not None else sys.argv[1:]))
    progress = terminal.Progress(V.count_rounds(checks, s, mode_plan), quiet=args.quiet, description="validate")

    def on_round(msg: str) -> None:
        progress.describe(msg)
        progress.advance()

    if s.device == "cpu":
        warning = V.oversubscription_warning(s.threads, os.cpu_count(), os.getloadavg()[0])
        if warning:
            terminal.say(f"warning: {warning}", "yellow")
    with progress:
        doc = V.run_validation(checks, s, mode_plan, command=command, on_round=on_round)
    files = V.write_outputs(out, doc)
    if args.format == "json":
        print(json.dumps(json_safe(doc)))
    else:
        con = terminal.console()
        terminal.show(V.check_tables(doc).values(), con)
        la = doc["load_average"]
        load = lambda v: " / ".join(f"{x:.2f}" for x in v)  # noqa: E731
        terminal.say(f"load average at start {load(la['start'])}, at end {load(la['end'])}; "
                     f"wall {doc['wall_s']:.0f} s", stderr=False)
        terminal.say("validate: PASS" if doc["passed"] else "validate: FAIL",
                     "green" if doc["passed"] else "bold red", stderr=False)
        for line in doc["failures"]:
            terminal.say(f"  {line}", "red", stderr=False)
    terminal.say(f"validation results: {', '.join(str(p) for p in files)}")
    return doc["exit_code"]
