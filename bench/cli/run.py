"""`resnet-bench run`: measure a sweep into a run directory (or continue one with --resume)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shlex
import signal
import sys
from pathlib import Path

from bench.cli import common_args as A
from bench.cli.run_flags import (META_KEYS, _check_flags, _executor, _executor_options, build_sweep, default_out_dir,
                                 default_threads, rounds_config, timing_config)
from bench.errors import UserError


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
    p.add_argument("--rounds", type=int, metavar="N", help="measure in at most N rounds (default 10): each round "
                   "measures every case still wanted in fresh processes, in a changing order")
    p.add_argument("--budget", type=float, metavar="SECONDS", help="stop starting rounds when the next would not fit "
                   "in this many seconds (default: 270 for quick, 240 for cifar, 3600 for full, 600 for a sweep of flags)")
    p.add_argument("--target-ci", metavar="PCT", help="rounds go on until every ratio's 95%% CI half-width is below "
                   "this (default 2%%)")
    p.add_argument("--no-stages", dest="stages", action="store_false",
                   help="skip the stage pass (time per stage, round 1, eager cases) and the device's peak measurement")
    p.add_argument("--baseline-model", help="also show each variant's latency ratio to this variant (paired by round; "
                   "rounds go on until these ratios are known too)")
    p.add_argument("--format", choices=("table", "json"), default="table", help="json: stdout holds only the rows")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run, command_line=None)


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
    from bench.execute import RunSettings
    from bench.report import terminal
    from bench.store.rundir import RETRYABLE, ResultsWriter

    if args.resume is not None:
        # The saved run decides what is measured and how: its planned cases and its settings.
        from bench.store.load import load_results

        out = Path(args.resume)
        prev = load_results(out)
        meta = dict(prev.settings)
        searched = (meta.pop("max_batch_search", None) or {}).get("results", [])
        saved_rounds = meta.pop("rounds", None)
        baseline = meta.pop("baseline_model", None)
        meta.pop("rounds_end", None)
        try:
            planned = [Case.from_dict(d) for d in meta.pop("planned_cases", None) or []]
            settings = RunSettings.from_dict(meta)
        except (TypeError, ValueError, KeyError, AttributeError) as e:
            raise UserError(f"{out}: its planned cases or settings are unreadable ({type(e).__name__}: {e})") from None
        if not planned:
            raise UserError(f"{out} does not record its planned cases; cannot resume it")
        cfg = rounds_config(args, saved_rounds if isinstance(saved_rounds, dict) else {"max_rounds": 1})
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
        env["threads_rule"] = prev.env.get("threads_rule")
        writer = ResultsWriter.resume(out, env, command, fingerprint=fingerprint, keys=scope,
                                      notice=lambda msg: terminal.say(f"note: {msg}", "yellow"))
        if args.retry_failed:
            n = writer.set_aside(RETRYABLE)
            terminal.say(f"--retry-failed: {n} {'/'.join(RETRYABLE)} record(s) moved to retried.jsonl, measured again")
        writer.update_settings(rounds=cfg.to_dict())
    else:
        executor = executor_for(executor_name)
        device = executor.resolve_device(args.device or "auto")
        threads, threads_rule = default_threads(args, device)
        settings = RunSettings(timing=timing_config(args), threads=threads, isolate=isolate,
                               executor=None if executor_name in ("local", "inline") else executor_name,
                               case_timeout_s=args.case_timeout, oom_backoff=args.oom_backoff,
                               overrides=A.parse_overrides(args.overrides),
                               weights=os.path.abspath(args.weights) if args.weights else None,
                               memory_check=not args.no_memory_check, env_scope=executor.env_scope,
                               trace_dir=os.path.abspath(args.trace) if args.trace else None,
                               threads_rule=threads_rule, interleave=True,
                               stage_pass_steps=STAGE_PASS_STEPS if args.stages else 0)
        sweep = build_sweep(args, device)
        baseline = args.baseline_model
        if baseline is not None and baseline not in sweep.models:
            raise UserError(f"--baseline-model {baseline!r} is not among the models of this sweep "
                            f"({', '.join(sweep.models)})")
        A.validate_variants(sweep.models, settings.overrides, settings.weights)
        cfg = rounds_config(args)
        planned = [] if args.find_max_batch else sweep.cases()
        searched = []
        env = executor.environment(device, settings.threads or torch.get_num_threads())
        env["threads_rule"] = threads_rule
        if settings.stage_pass_steps and executor.env_scope == "host" and planned:
            env["peak"] = device_peak(device, settings.threads, tuple(m[1] for m in sweep.modes))
        out = Path(args.out) if args.out is not None else default_out_dir(
            device, (args.preset or "quick") if args.models is None else "custom")
        if settings.trace_dir:
            try:
                Path(settings.trace_dir).mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise UserError(f"--trace {args.trace}: cannot create it: {e.strerror or e}") from None
        meta = settings.to_dict() | {"planned_cases": [c.as_dict() for c in planned], "rounds": cfg.to_dict(),
                                     "baseline_model": baseline}
        writer = ResultsWriter.create(out, env, meta, command, fingerprint=fingerprint(env, meta),
                                      overwrite=args.overwrite)

    executor.expect(writer.run_env, scope(writer.settings))
    previous_term = signal.signal(signal.SIGTERM, _terminated) if _main_thread() else None
    ended = "interrupted"
    try:
        if args.find_max_batch:
            planned, searched = _find_max_batch(args, sweep, executor, settings, writer)
        outcome = _measure(args, writer, executor, planned, settings, cfg, searched, baseline)
        ended = outcome.reason
    except (KeyboardInterrupt, Terminated) as e:
        analysis, kept = _finish(writer, ended, baseline)
        terminal.say(f"{'terminated' if isinstance(e, Terminated) else 'interrupted'}: {kept} record(s) of "
                     f"{len(analysis.rows)} case(s) kept in {out}; continue with: resnet-bench run --resume "
                     f"{shlex.quote(str(out))}")
        return 143 if isinstance(e, Terminated) else 130
    except OSError as e:
        try:  # the answer files from what was kept, if the disk lets us
            _finish(writer, ended, baseline)
        except (OSError, UserError):
            pass
        terminal.say(f"resnet-bench: cannot write results to {out}: {e.strerror or e}; {len(writer.records)} "
                     f"record(s) kept; free space and continue with: resnet-bench run --resume "
                     f"{shlex.quote(str(out))}", "red")
        return 1
    finally:
        if previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)

    analysis, kept = _finish(writer, ended, baseline)
    if args.format == "json":
        print(json.dumps(json_safe_rows(analysis)))
    else:
        terminal.show_results(analysis)
    terminal.say(f"results: {out}/results.csv, results.md, results.json ({len(analysis.rows)} rows, "
                 f"{kept} records in rows.jsonl; rounds ended: {ended})")
    return 0


#: Steps of the stage pass in round 1 (bench.core.stages): a few, so that it adds well under a
#: fifth to a case's time in its round.
STAGE_PASS_STEPS = 4  # 6 cost 12-24% of a round-1 visit (results/stages-cpu/checks.md, first run); 4: under 20%


def device_peak(device: str, threads: int | None, precisions: tuple[str, ...]) -> dict:
    """The device's peak (bench.core.peak), in the thread count the cases measure with."""
    from bench.core.peak import peak
    from bench.execute.torch_settings import torch_settings

    with torch_settings(threads):
        return peak(device, precisions)


def json_safe_rows(analysis) -> list[dict]:
    """The pooled rows as `--format json` prints them: every column, derived and raw ones included."""
    from bench.results.files import json_safe

    return json_safe(analysis.full_records())


def _measure(args, writer, executor, planned, settings, cfg, searched, baseline):
    """Measure the planned cases in rounds (bench.execute.rounds), each record appended to the
    run's log as it arrives; returns how the rounds ended."""
    from bench.execute import max_batch
    from bench.execute.rounds import run_rounds
    from bench.report import terminal
    from bench.results.rounds import aggregate
    from bench.results.views import needs_rounds, to_frame

    results = {max_batch.target_key(r): r for r in searched}
    done = writer.done()
    todo = sum(1 for c in planned if f"{c.key()}#1" not in done)
    if args.resume is not None:
        terminal.say(f"resuming {writer.out}: {len({k.rsplit('#', 1)[0] for k in done})} case(s) measured, "
                     f"{todo} to measure")
    cpu_count = writer.run_env.get("cpu_count")
    progress = terminal.Progress(todo, quiet=args.quiet)

    def on_record(side: str, record: dict) -> None:
        writer.append(max_batch.stamp(record, results) if results else record)
        progress.advance()

    def wanted(seen, round_no: int) -> set[str]:
        return needs_rounds(to_frame(aggregate(seen[""])), cfg.target_rel_ci, baseline, cpu_count)

    def on_round(round_no: int, visits: int) -> None:
        progress.restart(visits, f"round {round_no}")

    with progress, contextlib.redirect_stdout(sys.stderr):  # stdout holds only our output
        return run_rounds({"": executor}, planned, settings, cfg, on_record, records={"": writer.records},
                          wanted=wanted, on_round=on_round,
                          on_start=lambda side, r, c: progress.describe(f"round {r}: {c.label()}"))


def _finish(writer, ended: str, baseline):
    """How the rounds ended into run.json, then the answer files and the analysis from the
    records the log holds (read back: the log, not this process's memory, is the truth)."""
    from bench.report import summary
    from bench.results.analysis import analyse
    from bench.store.load import load_results

    writer.update_settings(rounds_end={"reason": ended})
    records = load_results(writer.out / "rows.jsonl").records
    analysis = analyse(records, writer.run_env, writer.settings, writer.command, baseline=baseline)
    summary.write(writer.out, writer.meta(), analysis, records)
    return analysis, len(records)


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
