"""`resnet-bench run`: measure a sweep into a run directory (or continue one with --resume)."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import math
import os
import shlex
import signal
import sys
from pathlib import Path

from bench.cli import common_args as A
from bench.errors import UserError
from bench.store.rundir import check_path


def add_parser(sub) -> None:
    from bench.core.presets import PRESETS
    from bench.execute import executor_names

    p = sub.add_parser("run", help="measure a sweep of cases")
    p.add_argument("--preset", help=f"{', '.join(PRESETS)} (default quick)")
    A.add_sweep_flags(p)
    A.add_variant_flags(p)
    p.add_argument("--out", help="directory for this run's results (default results/runs/<time>-<device>-<preset>)")
    p.add_argument("--overwrite", action="store_true", help="replace results already in --out")
    p.add_argument("--resume", metavar="DIR", help="continue an interrupted run: measure only the cases not in DIR "
                   "(with its saved settings; may change --case-timeout, --executor, --no-memory-check)")
    p.add_argument("--retry-failed", action="store_true",
                   help="with --resume: measure crashed, timeout and error cases again (their rows move to retried.jsonl)")
    p.add_argument("--no-memory-check", action="store_true",
                   help="run cases whose estimated memory exceeds the free memory (default: an oom row at once)")
    p.add_argument("--executor", choices=executor_names(), default=None,
                   help="where cases run: local (default: a fresh process per model), inline (this process), "
                        "ray (each model's cases as a Ray task on a cluster; pip install 'resnet-bench[ray]')")
    p.add_argument("--address", help="with --executor ray: local (default: a new cluster on this machine, loopback "
                   "only), auto (the cluster started here with `ray start`, or RAY_ADDRESS), or HOST:PORT")
    p.add_argument("--ddp", metavar="N,N,...", help="measure train cases data-parallel with torch.distributed on "
                   "N ranks each (one GPU per rank, one node), e.g. 1,2,8; --batch-sizes is then per rank")
    p.add_argument("--no-isolate", dest="isolate", action="store_false",
                   help="measure in this process instead of one fresh subprocess per model (= --executor inline)")
    p.add_argument("--case-timeout", type=float, metavar="SECONDS", help="end a case that runs longer (status timeout)")
    p.add_argument("--oom-backoff", action="store_true",
                   help="on out-of-memory retry with half the batch (status ok-reduced, both batch sizes kept)")
    p.add_argument("--find-max-batch", action="store_true",
                   help="search each mode's largest batch that runs, then measure the batch ladder up to it "
                        "(powers of two and the max); replaces --batch-sizes")
    p.add_argument("--max-batch", type=int, metavar="N", help="with --find-max-batch: the largest batch tried (default 4096)")
    p.add_argument("--max-batch-probes", type=int, metavar="N", help="with --find-max-batch: probes per mode at most "
                   "(default 24)")
    p.add_argument("--mem-cap-mb", type=float, metavar="MIB", help="with --find-max-batch: memory a probe may use "
                   "(CPU: peak RSS, default half the available RAM; CUDA: peak allocated, default the GPU's own limit)")
    p.add_argument("--trace", metavar="DIR", help="write a torch.profiler Chrome trace of a few steps per case, and "
                   "its top kernels/operators, to DIR (after the timed samples)")
    p.add_argument("--baseline-model", help="also show each variant's latency ratio to this variant")
    p.add_argument("--format", choices=("table", "json"), default="table", help="json: stdout holds only the rows")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run, command_line=None)


def build_sweep(args, device: str):
    """Flags (over a preset's defaults) -> Sweep. The eager fp32 reference mode is always added:
    speedups and output checks are relative to it."""
    from bench.core.case import MIN_IMAGE_SIZE, REFERENCE_MODE, WORKLOADS, Sweep, check_sizes, expand_models, natural_size
    from bench.core.presets import preset

    p = preset(args.preset or "quick", device)
    models = expand_models(args.models) if args.models is not None else expand_models(p["models"])
    bss = A.parse_positive_ints(args.batch_sizes, "batch size") if args.batch_sizes is not None else p["batch_sizes"]
    sizes = (A.parse_positive_ints(args.image_sizes, "image size", MIN_IMAGE_SIZE)
             if args.image_sizes is not None else p["image_sizes"])
    if any(getattr(args, f) is not None for f in ("layouts", "precisions", "compile")):
        modes = A.parse_modes(args, dict(zip(("layout", "precision", "compile"), ([m] for m in REFERENCE_MODE))))
    else:
        modes = p["modes"]
    if REFERENCE_MODE not in modes:
        modes = (REFERENCE_MODE,) + tuple(modes)
    workloads = (A.parse_choices(args.workloads, "workload", WORKLOADS) if args.workloads is not None
                 else p["workloads"])
    overrides = A.parse_overrides(args.overrides)
    try:
        natural = {m: natural_size(m, overrides) for m in models}
    except ValueError as e:
        raise UserError(f"invalid --set: {e}") from None
    check_sizes(models, sizes or tuple(natural.values()), overrides)
    ddp = A.parse_positive_ints(args.ddp, "--ddp world size") if args.ddp is not None else ()
    if ddp and "train" not in workloads:
        raise UserError("--ddp measures data-parallel training: add --workloads train")
    return Sweep(models, bss, sizes, tuple(modes), workloads, device, natural, ddp)


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


def _executor_options(args, name: str) -> dict:
    if name == "ray":
        return {"address": args.address or "local"}
    if args.address is not None:
        raise UserError(f"--address goes with --executor ray (got --executor {name})")
    return {}


# What a resume may change: where and how long cases may run, never what a row means.
RESUME_MAY_CHANGE = ("--case-timeout", "--executor", "--address", "--no-isolate", "--no-memory-check",
                     "--retry-failed")
_RESUME_FIXED = {"preset": "--preset", "device": "--device", "threads": "--threads", "max_time": "--max-time",
                 "min_time": "--min-time", "min_samples": "--min-samples", "max_warmup": "--max-warmup",
                 "overrides": "--set", "weights": "--weights", "out": "--out", "trace": "--trace",
                 "max_batch": "--max-batch", "max_batch_probes": "--max-batch-probes", "mem_cap_mb": "--mem-cap-mb",
                 "ddp": "--ddp"}
#: Keys of a run's saved settings that are not RunSettings fields.
META_KEYS = ("planned_cases", "max_batch_search")


def _check_flags(args) -> None:
    """Every flag value that needs no measuring, before anything is written."""
    if args.case_timeout is not None and not (math.isfinite(args.case_timeout) and args.case_timeout > 0):
        raise UserError(f"--case-timeout must be a positive number of seconds, got {args.case_timeout:g}")
    A.check_threads(args.threads)
    if args.out is not None:
        check_path(args.out)
    if args.resume is not None:
        check_path(args.resume)
        fixed = [flag for dest, flag in _RESUME_FIXED.items() if getattr(args, dest) not in (None, [])]
        fixed += ["--overwrite"] * args.overwrite + ["--oom-backoff"] * args.oom_backoff
        fixed += ["--find-max-batch"] * args.find_max_batch
        fixed += ["--" + f.replace("_", "-") for f in A.SWEEP_FLAGS if getattr(args, f) is not None]
        if fixed:
            raise UserError(f"--resume continues the saved sweep with its saved settings: drop the sweep flags and "
                            f"settings ({', '.join(fixed)}: they change what a row means); a resume may change "
                            f"only {', '.join(RESUME_MAY_CHANGE)}")
    elif args.retry_failed:
        raise UserError("--retry-failed goes with --resume DIR")
    search_flags = [f for f, v in (("--max-batch", args.max_batch), ("--max-batch-probes", args.max_batch_probes),
                                   ("--mem-cap-mb", args.mem_cap_mb)) if v is not None]
    if search_flags and not args.find_max_batch:
        raise UserError(f"{', '.join(search_flags)} go with --find-max-batch")
    if args.find_max_batch and args.ddp is not None:
        raise UserError("--find-max-batch searches one process's batch; it does not combine with --ddp")
    if args.find_max_batch and args.batch_sizes is not None:
        raise UserError("--find-max-batch chooses the batch sizes (the ladder up to each mode's max); drop --batch-sizes")
    for flag, v in (("--max-batch", args.max_batch), ("--max-batch-probes", args.max_batch_probes)):
        if v is not None and v < 1:
            raise UserError(f"{flag} must be a positive integer, got {v}")
    if args.mem_cap_mb is not None and not (math.isfinite(args.mem_cap_mb) and args.mem_cap_mb > 0):
        raise UserError(f"--mem-cap-mb must be a positive number of MiB, got {args.mem_cap_mb:g}")
    if args.trace is not None:
        check_path(args.trace)
        t = Path(args.trace)
        if t.exists() and (not t.is_dir() or (any(t.iterdir()) and not args.overwrite)):
            raise UserError(f"--trace {t}: {'not a directory' if not t.is_dir() else 'already holds files'}; "
                            "choose another directory (or add --overwrite)")


def run(args) -> int:
    from bench.core import env as E
    from bench.execute import RunSettings, get_executor

    _check_flags(args)
    executor_name = _executor(args)
    isolate = executor_name != "inline"
    if args.case_timeout is not None and not isolate:
        raise UserError("--case-timeout needs process isolation; drop --no-isolate")
    command = shlex.join(["resnet-bench"] + sys.argv[1:]) if args.command_line is None else args.command_line
    opened = []

    def executor_for(name: str):
        try:
            ex = get_executor(name, **_executor_options(args, name))
        except ValueError as e:
            raise UserError(str(e)) from None
        opened.append(ex)
        return ex

    def scope(saved: dict) -> tuple[str, ...]:
        return E.scope_keys(saved.get("env_scope") or "host")

    def fingerprint(env: dict, saved: dict) -> str:
        saved = {k: v for k, v in saved.items() if k not in META_KEYS}
        return E.fingerprint(env, RunSettings.from_dict(saved).fingerprint_part(), scope(saved))

    try:
        return _run(args, executor_for, executor_name, isolate, command, scope, fingerprint)
    finally:
        for ex in opened:
            ex.close()


def _run(args, executor_for, executor_name: str, isolate: bool, command: str, scope, fingerprint) -> int:
    import torch

    from bench.core.case import Case
    from bench.execute import Events, RunSettings, max_batch
    from bench.report import terminal
    from bench.results.files import json_safe
    from bench.store.load import load_results
    from bench.store.rundir import RETRYABLE, ResultsWriter

    if args.resume is not None:
        # The saved run decides what is measured and how: its planned cases and its settings.
        out = Path(args.resume)
        prev = load_results(out)
        meta = dict(prev.settings)
        searched = (meta.pop("max_batch_search", None) or {}).get("results", [])
        try:
            planned = [Case.from_dict(d) for d in meta.pop("planned_cases", None) or []]
            settings = RunSettings.from_dict(meta)
        except (TypeError, ValueError, KeyError, AttributeError) as e:
            raise UserError(f"{out}: its planned cases or settings are unreadable ({type(e).__name__}: {e})") from None
        if not planned:
            raise UserError(f"{out} does not record its planned cases; cannot resume it")
        changes = {}
        if args.executor or not args.isolate:
            changes.update(isolate=isolate, executor=None if executor_name in ("local", "inline") else executor_name)
        if args.case_timeout is not None:
            changes["case_timeout_s"] = args.case_timeout
        if args.no_memory_check:
            changes["memory_check"] = False
        settings = dataclasses.replace(settings, **changes)
        if settings.case_timeout_s is not None and not settings.isolate:
            raise UserError("--case-timeout needs process isolation; drop --no-isolate")
        executor = executor_for(settings.executor_name)  # the saved one unless --executor says otherwise
        device = executor.resolve_device(planned[0].device)
        env = executor.environment(device, settings.threads or torch.get_num_threads())
        writer = ResultsWriter.resume(out, env, command, fingerprint=fingerprint, keys=scope,
                                      notice=lambda msg: terminal.say(f"note: {msg}", "yellow"))
        if args.retry_failed:
            n = writer.set_aside(RETRYABLE)
            terminal.say(f"--retry-failed: {n} {'/'.join(RETRYABLE)} row(s) moved to retried.jsonl, measured again")
    else:
        executor = executor_for(executor_name)
        device = executor.resolve_device(args.device or "auto")
        settings = RunSettings(timing=timing_config(args), threads=args.threads, isolate=isolate,
                               executor=None if executor_name in ("local", "inline") else executor_name,
                               case_timeout_s=args.case_timeout, oom_backoff=args.oom_backoff,
                               overrides=A.parse_overrides(args.overrides),
                               weights=os.path.abspath(args.weights) if args.weights else None,
                               memory_check=not args.no_memory_check, env_scope=executor.env_scope,
                               trace_dir=os.path.abspath(args.trace) if args.trace else None)
        sweep = build_sweep(args, device)
        if args.baseline_model is not None and args.baseline_model not in sweep.models:
            raise UserError(f"--baseline-model {args.baseline_model!r} is not among the models of this sweep "
                            f"({', '.join(sweep.models)})")
        A.validate_variants(sweep.models, settings.overrides, settings.weights)
        planned = [] if args.find_max_batch else sweep.cases()
        searched = []
        env = executor.environment(device, settings.threads or torch.get_num_threads())
        out = Path(args.out) if args.out is not None else default_out_dir(
            device, (args.preset or "quick") if args.models is None else "custom")
        if settings.trace_dir:
            try:
                Path(settings.trace_dir).mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise UserError(f"--trace {args.trace}: cannot create it: {e.strerror or e}") from None
        meta = settings.to_dict() | {"planned_cases": [c.as_dict() for c in planned]}
        writer = ResultsWriter.create(out, env, meta, command, fingerprint=fingerprint(env, meta),
                                      overwrite=args.overwrite)

    executor.expect(writer.run_env, scope(writer.settings))
    previous_term = signal.signal(signal.SIGTERM, _terminated) if _main_thread() else None
    try:
        if args.find_max_batch:
            planned, searched = _find_max_batch(args, sweep, executor, settings, writer)
        results = {max_batch.target_key(r): r for r in searched}
        done = writer.done_keys()
        todo = [c for c in planned if c.key() not in done]
        if args.resume is not None:
            terminal.say(f"resuming {out}: {len(done)} case(s) done, {len(todo)} to measure")
        progress = terminal.Progress(len(todo), quiet=args.quiet)

        def on_row(row: dict) -> None:
            writer.append(max_batch.stamp(row, results) if results else row)
            progress.advance()

        with progress, contextlib.redirect_stdout(sys.stderr):  # stdout holds only our output
            executor.run(todo, settings, Events(row=on_row, start=lambda c: progress.describe(c.label())))
    except (KeyboardInterrupt, Terminated) as e:
        terminal.say(f"{'terminated' if isinstance(e, Terminated) else 'interrupted'}: {len(writer.rows)} row(s) "
                     f"kept in {out}; continue with: resnet-bench run --resume {shlex.quote(str(out))}")
        return 143 if isinstance(e, Terminated) else 130
    except OSError as e:
        terminal.say(f"resnet-bench: cannot write results to {out}: {e.strerror or e}; {len(writer.rows)} row(s) "
                     f"kept; free space and continue with: resnet-bench run --resume {shlex.quote(str(out))}", "red")
        return 1
    finally:
        if previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)

    df = writer.frame()
    if args.format == "json":
        print(json.dumps(json_safe(writer.rows)))
    else:
        terminal.show_results(df, args.baseline_model, cpu_count=env.get("cpu_count"))
    terminal.say(f"results: {out}/results.csv, results.md, results.json ({len(df)} rows)")
    return 0


def _find_max_batch(args, sweep, executor, settings, writer):
    """Search each mode's largest batch (a progress bar, every probe logged), then record the
    search and the planned ladder in the run's settings; (planned cases, search rows)."""
    from bench.core import devices
    from bench.execute import Events, max_batch
    from bench.report import terminal

    cap = args.mem_cap_mb
    if cap is None:
        cap = devices.backend(sweep.device).default_mem_cap_mb(sweep.device)
    options = {"max_batch": args.max_batch, "max_probes": args.max_batch_probes, "mem_cap_mb": cap}
    cases = max_batch.targets(sweep)
    terminal.say(f"--find-max-batch: {len(cases)} search(es), batches up to {args.max_batch or max_batch.DEFAULTS['max_batch']}"
                 + (f", memory cap {cap:,.0f} MiB" if cap else ""))
    progress = terminal.Progress(len(cases), quiet=args.quiet)

    def on_row(row: dict) -> None:
        progress.advance()
        for line in max_batch.probe_lines(row, _target_label):
            terminal.say(line)

    with progress, contextlib.redirect_stdout(sys.stderr):
        found = max_batch.search(executor, cases, settings, options, Events(
            row=on_row, start=lambda c: progress.describe("max batch: " + c.label())))
    planned = max_batch.plan(cases, found)
    writer.update_settings(planned_cases=[c.as_dict() for c in planned],
                           max_batch_search={"options": {**max_batch.DEFAULTS, **{k: v for k, v in options.items()
                                                                                 if v is not None}},
                                             "results": list(found.values())})
    return planned, list(found.values())


def _target_label(row: dict) -> str:
    return (f"{row['model']} {row['workload']} {row['image_size']}px {row['layout']}/{row['precision']}/"
            f"{row['compile']} {row['device']}")


class Terminated(Exception):
    """SIGTERM arrived (a CI cancel, a scheduler's time limit)."""


def _terminated(signum, frame):
    raise Terminated()


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
