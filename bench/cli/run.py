"""`resnet-bench run`: measure a sweep into a run directory (or continue one with --resume)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import shlex
import sys
from pathlib import Path

from bench.cli import common_args as A
from bench.errors import UserError


def add_parser(sub) -> None:
    from bench.core.presets import PRESETS
    from bench.execute import executor_names

    p = sub.add_parser("run", help="measure a sweep of cases")
    p.add_argument("--preset", default="quick", help=f"{', '.join(PRESETS)} (default quick)")
    A.add_sweep_flags(p)
    A.add_variant_flags(p)
    p.add_argument("--out", help="directory for this run's results (default results/runs/<time>-<device>-<preset>)")
    p.add_argument("--overwrite", action="store_true", help="replace results already in --out")
    p.add_argument("--resume", metavar="DIR", help="continue an interrupted run: measure only the cases not in DIR")
    p.add_argument("--executor", choices=executor_names(), default=None,
                   help="where cases run: local (default: a fresh process per model) or inline (this process)")
    p.add_argument("--no-isolate", dest="isolate", action="store_false",
                   help="measure in this process instead of one fresh subprocess per model (= --executor inline)")
    p.add_argument("--case-timeout", type=float, metavar="SECONDS", help="end a case that runs longer (status timeout)")
    p.add_argument("--oom-backoff", action="store_true",
                   help="on out-of-memory retry with half the batch (status ok-reduced, both batch sizes kept)")
    p.add_argument("--baseline-model", help="also show each variant's latency ratio to this variant")
    p.add_argument("--format", choices=("table", "json"), default="table", help="json: stdout holds only the rows")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run, command_line=None)


def build_sweep(args, device: str):
    """Flags (over a preset's defaults) -> Sweep. The eager fp32 reference mode is always added:
    speedups and output checks are relative to it."""
    from bench.core.case import MIN_IMAGE_SIZE, REFERENCE_MODE, WORKLOADS, Sweep, expand_models
    from bench.core.presets import preset

    p = preset(args.preset, device)
    models = expand_models(args.models) if args.models else expand_models(p["models"])
    bss = A.parse_positive_ints(args.batch_sizes, "batch size") if args.batch_sizes else p["batch_sizes"]
    sizes = (A.parse_positive_ints(args.image_sizes, "image size", MIN_IMAGE_SIZE)
             if args.image_sizes else p["image_sizes"])
    if args.layouts or args.precisions or args.compile:
        modes = A.parse_modes(args, dict(zip(("layout", "precision", "compile"), ([m] for m in REFERENCE_MODE))))
    else:
        modes = p["modes"]
    if REFERENCE_MODE not in modes:
        modes = (REFERENCE_MODE,) + tuple(modes)
    workloads = A.parse_choices(args.workloads, "workload", WORKLOADS) if args.workloads else p["workloads"]
    return Sweep(models, bss, sizes, tuple(modes), workloads, device)


def timing_config(args):
    from bench.core.timing import TimingConfig

    kw = {}
    if args.max_time is not None:
        kw["max_time_s"] = args.max_time
        kw["min_time_s"] = min(TimingConfig.min_time_s, args.max_time)
    if args.min_time is not None:
        kw["min_time_s"] = args.min_time
    if args.min_samples is not None:
        kw["min_samples"] = args.min_samples
    if args.max_warmup is not None:
        kw["warmup_max_s"] = args.max_warmup
    try:
        return TimingConfig(**kw)
    except (ValueError, TypeError) as e:
        raise UserError(str(e)) from None


def default_out_dir(device: str, preset: str) -> Path:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = Path("results") / "runs" / f"{stamp}-{device}-{preset}"
    out, n = base, 1
    while out.exists():  # never reuse an earlier run's directory
        n += 1
        out = base.with_name(f"{base.name}-{n}")
    return out


def _executor(args) -> str:
    if args.executor is not None and not args.isolate and args.executor != "inline":
        raise UserError(f"--no-isolate means --executor inline; drop one of them (got --executor {args.executor})")
    return "inline" if not args.isolate else (args.executor or "local")


def run(args) -> int:
    import torch

    from bench.core import devices
    from bench.core import env as E
    from bench.execute import Events, RunSettings, get_executor
    from bench.report import terminal
    from bench.results.files import json_safe
    from bench.store.load import load_results
    from bench.store.rundir import ResultsWriter
    from bench.core.case import Case

    if args.case_timeout is not None and args.case_timeout <= 0:
        raise UserError(f"--case-timeout must be a positive number of seconds, got {args.case_timeout:g}")
    executor_name = _executor(args)
    isolate = executor_name != "inline"
    if args.case_timeout is not None and not isolate:
        raise UserError("--case-timeout needs process isolation; drop --no-isolate")
    A.check_threads(args.threads)
    if args.resume and (args.overwrite or args.out):
        raise UserError("--resume continues the run in its own directory; drop --out/--overwrite")
    if args.resume and any(getattr(args, f) for f in A.SWEEP_FLAGS):
        raise UserError("--resume continues the saved sweep; drop the sweep flags (--models, --batch-sizes, ...)")
    overrides = A.parse_overrides(args.overrides)
    if args.resume and (overrides or args.weights):
        raise UserError("--resume continues the saved sweep; drop --set/--weights")
    command = shlex.join(["resnet-bench"] + sys.argv[1:]) if args.command_line is None else args.command_line

    if args.resume:
        # The saved run decides what is measured and how: its planned cases and its settings.
        out = Path(args.resume)
        prev = load_results(out)
        meta = dict(prev.settings)
        planned = [Case.from_dict(d) for d in meta.pop("planned_cases", [])]
        if not planned:
            raise UserError(f"{out} does not record its planned cases; cannot resume it")
        try:
            settings = RunSettings.from_dict(meta)
        except (TypeError, ValueError) as e:
            raise UserError(f"{out}: unreadable run settings ({e})") from None
        if args.executor or not args.isolate:  # where cases run may change; what is measured may not
            settings = dataclasses.replace(settings, isolate=isolate,
                                           executor=None if executor_name in ("local", "inline") else executor_name)
        device = devices.resolve_device(planned[0].device)
        env = E.collect(device, settings.threads or torch.get_num_threads())
        fp = E.fingerprint(env, settings.fingerprint_part())
        writer = ResultsWriter.resume(out, env, prev.settings, command, fingerprint=fp)
    else:
        device = devices.resolve_device(args.device)
        settings = RunSettings(timing=timing_config(args), threads=args.threads, isolate=isolate,
                               executor=None if executor_name in ("local", "inline") else executor_name,
                               case_timeout_s=args.case_timeout, oom_backoff=args.oom_backoff, overrides=overrides,
                               weights=os.path.abspath(args.weights) if args.weights else None)
        sweep = build_sweep(args, device)
        A.validate_variants(sweep.models, settings.overrides, settings.weights)
        planned = sweep.cases()
        env = E.collect(device, settings.threads or torch.get_num_threads())
        fp = E.fingerprint(env, settings.fingerprint_part())
        out = Path(args.out) if args.out else default_out_dir(device, args.preset if not args.models else "custom")
        meta = settings.to_dict() | {"planned_cases": [c.as_dict() for c in planned]}
        writer = ResultsWriter.create(out, env, meta, command, fingerprint=fp, overwrite=args.overwrite)

    done = writer.done_keys()
    todo = [c for c in planned if c.key() not in done]
    if args.resume:
        terminal.say(f"resuming {out}: {len(done)} case(s) done, {len(todo)} to measure")
    try:
        executor = get_executor(settings.executor_name)
    except ValueError as e:
        raise UserError(str(e)) from None
    progress = terminal.Progress(len(todo), quiet=args.quiet)

    def on_row(row: dict) -> None:
        writer.append(row)
        progress.advance()

    try:
        with progress:
            executor.run(todo, settings, Events(row=on_row, start=lambda c: progress.describe(c.label())))
    except KeyboardInterrupt:
        terminal.say(f"interrupted: {len(writer.rows)} row(s) kept in {out}; continue with: "
                     f"resnet-bench run --resume {out}")
        return 130

    df = writer.frame()
    if args.format == "json":
        print(json.dumps(json_safe(writer.rows)))
    else:
        terminal.show_results(df, args.baseline_model, cpu_count=env.get("cpu_count"))
    terminal.say(f"results: {out}/results.csv, results.md, results.json ({len(df)} rows)")
    return 0
