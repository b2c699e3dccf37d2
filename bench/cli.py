"""`resnet-bench` command line: thin. Parses flags, validates them into cases, calls the runner,
hands rows to bench.results and bench.render. Bad input: one line on stderr, exit code 2."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import sys
import traceback
from pathlib import Path

from bench.errors import UserError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line (exit 2) instead of usage + message."""

    def error(self, message: str):  # noqa: D401 - argparse API
        raise UserError(f"{message} (see {self.prog} --help)")


# ---------------------------------------------------------------- list
def cmd_list(args) -> int:
    import resnet_impl
    from bench import render

    names = resnet_impl.list_models(args.pattern or "*")
    if not names:
        raise UserError(f"no registered model matches {' '.join(args.pattern)!r}; see `resnet-bench list`")
    rows = []
    for n in names:
        s = resnet_impl.get_spec(n)
        rows.append({
            "name": n, "block": s.block, "depth": s.depth,
            "stride": f"{s.version or '-'} ({s.stride_at})" if s.block == "bottleneck" else "-",
            "stem": f"{s.stem} {'-'.join(map(str, s.stem_channels))}", "shortcut": s.shortcut,
            "groups_x_width": s.width_label, "params": resnet_impl.count_params(n),
            "description": s.description,
        })
    if args.format == "json":
        print(json.dumps(rows, indent=1))
    else:
        render.console().print(render.registry_table(rows))
    return 0


# ---------------------------------------------------------------- variant options
def parse_overrides(items: list[str] | None) -> dict:
    """--set KEY=VALUE ... -> {field: value}; ints, booleans and comma lists (layers) parsed."""
    out: dict = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set takes KEY=VALUE (e.g. --set stem=deep), got {item!r}")
        key, value = key.strip(), value.strip()
        if "," in value:
            try:
                out[key] = tuple(int(v) for v in value.split(","))
            except ValueError:
                raise UserError(f"--set {key}: expected comma-separated integers, got {value!r}") from None
        elif value.lower() in ("true", "false"):
            out[key] = value.lower() == "true"
        else:
            try:
                out[key] = int(value)
            except ValueError:
                out[key] = None if value.lower() == "none" else value
    return out


def validate_variants(models, overrides: dict, weights: str | None) -> None:
    """Fail fast, before any measuring: overrides must be valid for every model and a checkpoint
    must load strictly into every model (built once here on CPU)."""
    import resnet_impl

    for name in models:
        try:
            resnet_impl.get_spec(name).replace(**overrides)
        except ValueError as e:
            raise UserError(f"invalid --set for {name}: {e}") from None
        if weights:
            try:
                resnet_impl.create_model(name, weights=weights, **overrides)
            except ValueError as e:  # CheckpointError is a ValueError
                raise UserError(f"--weights {weights} for {name}: {e}") from None


def add_variant_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                   help="override a spec field for every model, e.g. --set stride_at=1x1 --set stem=deep")
    p.add_argument("--weights", help="local checkpoint (.pth state_dict) loaded strictly into every model")


# ---------------------------------------------------------------- profile
def cmd_profile(args) -> int:
    from bench import cases, render
    from bench.profile import profile_name

    names = cases.expand_models(args.models)
    size = cases.parse_positive_ints(str(args.image_size), "image size", cases.MIN_IMAGE_SIZE)[0]
    overrides = parse_overrides(args.overrides)
    validate_variants(names, overrides, None)
    rows = []
    for n in names:
        row = profile_name(n, size, **overrides).as_row()
        row.update(model=n, image_size=size)
        rows.append(row)
    if args.format == "json":
        print(json.dumps(rows, indent=1, default=str))
    else:
        render.console().print(render.profile_table(rows))
        bad = [r["model"] for r in rows if not r.get("counters_agree")]
        if bad:
            render.console(stderr=True).print(f"[red]fvcore and FlopCounterMode disagree for: {', '.join(bad)}[/]")
    return 0


# ---------------------------------------------------------------- run
SWEEP_FLAGS = ("models", "batch_sizes", "image_sizes", "layouts", "precisions", "compile", "workloads")


def build_sweep(args, device: str):
    """Flags (over a preset's defaults) -> Sweep. The eager fp32 reference mode is always added:
    speedups and output checks are relative to it."""
    from bench import cases as C

    p = C.preset(args.preset, device)
    models = C.expand_models(args.models) if args.models else C.expand_models(p["models"])
    bss = C.parse_positive_ints(args.batch_sizes, "batch size") if args.batch_sizes else p["batch_sizes"]
    sizes = (C.parse_positive_ints(args.image_sizes, "image size", C.MIN_IMAGE_SIZE)
             if args.image_sizes else p["image_sizes"])
    if args.layouts or args.precisions or args.compile:
        modes = C.product_modes(
            C.parse_choices(args.layouts, "layout", C.LAYOUTS) if args.layouts else ("contiguous",),
            C.parse_choices(args.precisions, "precision", C.PRECISIONS) if args.precisions else ("fp32",),
            C.parse_choices(args.compile, "compile mode", C.COMPILE_MODES) if args.compile else ("none",),
        )
    else:
        modes = p["modes"]
    if C.REFERENCE_MODE not in modes:
        modes = (C.REFERENCE_MODE,) + tuple(modes)
    workloads = C.parse_choices(args.workloads, "workload", C.WORKLOADS) if args.workloads else p["workloads"]
    return C.Sweep(models, bss, sizes, tuple(modes), workloads, device)


def timing_config(args):
    from bench.timing import TimingConfig

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


def cmd_run(args) -> int:
    from bench import cases as C
    from bench import env as E
    from bench import render, results
    from bench.runner import RunSettings, run_sweep

    if args.case_timeout is not None and args.case_timeout <= 0:
        raise UserError(f"--case-timeout must be a positive number of seconds, got {args.case_timeout:g}")
    if args.case_timeout is not None and not args.isolate:
        raise UserError("--case-timeout needs process isolation; drop --no-isolate")
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads must be a positive integer, got {args.threads}")
    if args.resume and (args.overwrite or args.out):
        raise UserError("--resume continues the run in its own directory; drop --out/--overwrite")
    if args.resume and any(getattr(args, f) for f in SWEEP_FLAGS):
        raise UserError("--resume continues the saved sweep; drop the sweep flags (--models, --batch-sizes, ...)")

    overrides = parse_overrides(args.overrides)
    if args.resume and (overrides or args.weights):
        raise UserError("--resume continues the saved sweep; drop --set/--weights")
    command = shlex.join(["resnet-bench"] + sys.argv[1:]) if args.command_line is None else args.command_line
    import torch

    if args.resume:
        # The saved run decides what is measured and how: its planned cases and its settings.
        out = Path(args.resume)
        prev = results.load_results(out)
        meta = dict(prev.settings)
        planned = [C.Case.from_dict(d) for d in meta.pop("planned_cases", [])]
        if not planned:
            raise UserError(f"{out} does not record its planned cases; cannot resume it")
        try:
            settings = RunSettings.from_dict(meta)
        except (TypeError, ValueError) as e:
            raise UserError(f"{out}: unreadable run settings ({e})") from None
        device = C.resolve_device(planned[0].device)
        env = E.collect(device, settings.threads or torch.get_num_threads())
        fp = E.fingerprint(env, settings.fingerprint_part())
        writer = results.ResultsWriter.resume(out, env, prev.settings, command, fingerprint=fp)
    else:
        device = C.resolve_device(args.device)
        settings = RunSettings(timing=timing_config(args), threads=args.threads, isolate=args.isolate,
                               case_timeout_s=args.case_timeout, oom_backoff=args.oom_backoff,
                               overrides=overrides,
                               weights=os.path.abspath(args.weights) if args.weights else None)
        sweep = build_sweep(args, device)
        validate_variants(sweep.models, settings.overrides, settings.weights)
        planned = sweep.cases()
        env = E.collect(device, settings.threads or torch.get_num_threads())
        fp = E.fingerprint(env, settings.fingerprint_part())
        out = Path(args.out) if args.out else default_out_dir(device, args.preset if not args.models else "custom")
        meta = settings.to_dict() | {"planned_cases": [c.as_dict() for c in planned]}
        writer = results.ResultsWriter.create(out, env, meta, command, fingerprint=fp, overwrite=args.overwrite)

    done = writer.done_keys()
    todo = [c for c in planned if c.key() not in done]
    err = render.console(stderr=True)
    if args.resume:
        err.print(f"resuming {out}: {len(done)} case(s) done, {len(todo)} to measure")

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=err, transient=True, disable=args.quiet)
    task = progress.add_task("starting", total=len(todo))

    def on_start(case):
        progress.update(task, description=f"{case.model} {case.workload} bs{case.batch_size} "
                                          f"{case.image_size}px {case.layout}/{case.precision}/{case.compile}")

    def on_row(row):
        writer.append(row)
        progress.advance(task)

    try:
        with progress:
            run_sweep(todo, settings, on_row, on_start)
    except KeyboardInterrupt:
        err.print(f"interrupted: {len(writer.rows)} row(s) kept in {out}; continue with: resnet-bench run --resume {out}")
        return 130

    df = writer.frame()
    if args.format == "json":
        print(json.dumps(results.json_safe(writer.rows)))
    else:
        show_results(df, args.baseline_model)
    err.print(f"results: {out}/results.csv, results.md, results.json ({len(df)} rows)")
    return 0


def show_results(df, baseline_model: str | None = None) -> None:
    from bench import render, results

    con = render.console()
    con.print(render.results_table(results.with_speedup(df)))
    best = results.best_modes(df)
    if not best.empty:
        con.print(render.frame_table(best, "Best mode per variant (speedup over eager fp32 contiguous)"))
    if baseline_model:
        con.print(render.frame_table(results.ratio_to_baseline(df, baseline_model),
                                     f"Latency ratio to {baseline_model}"))
    for line in render.error_lines(df):
        render.console(stderr=True).print(f"[yellow]{line}[/]", highlight=False)
    from bench.runner import busy

    n_busy = sum(busy(r) for r in df.to_dict("records"))
    if n_busy:
        render.console(stderr=True).print(
            f"[yellow]{n_busy} CPU row(s) were measured while other work competed for the cores (load average "
            f"above the core count): their latencies are unreliable. On a shared machine use --threads 1, "
            f"or rerun when it is idle.[/]", highlight=False)


# ---------------------------------------------------------------- report
def cmd_report(args) -> int:
    from bench import results

    rs = results.load_results(args.results)
    df = rs.frame()
    if args.format == "json":
        print(json.dumps(results.json_safe(rs.rows)))
    elif args.format == "csv":
        sys.stdout.write(df.to_csv(index=False))
    elif args.format == "markdown":
        sys.stdout.write(results.to_markdown(df, rs.env, rs.command))
    else:
        show_results(df, args.baseline_model)
    return 0


# ---------------------------------------------------------------- parser
def add_sweep_flags(p: argparse.ArgumentParser) -> None:
    """Case flags shared by `run` and `check --speed`."""
    from bench import cases as C

    p.add_argument("--models", help="names or fnmatch patterns, comma-separated (e.g. 'resnet50*,resnext*')")
    p.add_argument("--batch-sizes", help="comma-separated positive integers")
    p.add_argument("--image-sizes", help=f"comma-separated integers >= {C.MIN_IMAGE_SIZE}")
    p.add_argument("--layouts", help=f"comma-separated: {', '.join(C.LAYOUTS)}")
    p.add_argument("--precisions", help=f"comma-separated: {', '.join(C.PRECISIONS)}")
    p.add_argument("--compile", help=f"comma-separated: {', '.join(C.COMPILE_MODES)}")
    p.add_argument("--workloads", help=f"comma-separated: {', '.join(C.WORKLOADS)}")
    p.add_argument("--device", default="auto", help=f"{', '.join(C.DEVICES)} (default auto: cuda if available)")
    p.add_argument("--threads", type=int, help="torch threads in the measuring process (default: torch's)")
    p.add_argument("--max-time", type=float, help="seconds of samples per case at most (default 10)")
    p.add_argument("--min-time", type=float, help="seconds of samples per case at least (default 0.5)")
    p.add_argument("--min-samples", type=int, help="samples per case at least (default 10)")
    p.add_argument("--max-warmup", type=float, help="seconds of warm-up per case at most, after the first call "
                                                     "(default 30; a case still unsteady then is marked steady=False)")


def build_parser() -> argparse.ArgumentParser:
    from bench import __version__
    from bench import cases as C

    parser = _Parser(prog="resnet-bench", description="Profile and time ResNet-family variants.")
    parser.add_argument("--version", action="version", version=f"resnet-bench {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = parser.add_subparsers(dest="cmd", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("list", help="show the registered variants")
    p.add_argument("pattern", nargs="*", help="fnmatch patterns (default: all)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("profile", help="params, MACs/FLOPs and activations of models")
    p.add_argument("models", nargs="+", help="names or fnmatch patterns")
    p.add_argument("--image-size", default="224", help="input size in px (default 224)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    add_variant_flags(p)
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("run", help="measure a sweep of cases")
    p.add_argument("--preset", default="quick", help=f"{', '.join(C.PRESETS)} (default quick)")
    add_sweep_flags(p)
    add_variant_flags(p)
    p.add_argument("--out", help="directory for this run's results (default results/runs/<time>-<device>-<preset>)")
    p.add_argument("--overwrite", action="store_true", help="replace results already in --out")
    p.add_argument("--resume", metavar="DIR", help="continue an interrupted run: measure only the cases not in DIR")
    p.add_argument("--no-isolate", dest="isolate", action="store_false",
                   help="measure in this process instead of one fresh subprocess per model")
    p.add_argument("--case-timeout", type=float, metavar="SECONDS", help="end a case that runs longer (status timeout)")
    p.add_argument("--oom-backoff", action="store_true",
                   help="on out-of-memory retry with half the batch (status ok-reduced, both batch sizes kept)")
    p.add_argument("--baseline-model", help="also show each variant's latency ratio to this variant")
    p.add_argument("--format", choices=("table", "json"), default="table", help="json: stdout holds only the rows")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_run, command_line=None)

    p = sub.add_parser("report", help="re-render saved results (ours or pytest-benchmark JSON)")
    p.add_argument("results", help="a run directory, results.json/.csv/rows.jsonl, or pytest-benchmark JSON")
    p.add_argument("--baseline-model", help="also show each variant's latency ratio to this variant")
    p.add_argument("--format", choices=("table", "json", "csv", "markdown"), default="table")
    p.set_defaults(func=cmd_report)

    from bench import check, validate

    check.add_parser(sub)
    validate.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv or bool(os.environ.get("RESNET_BENCH_DEBUG"))
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "cmd", None):
            parser.print_help()
            return EXIT_USAGE
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"resnet-bench: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("resnet-bench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # internal error: one line unless --debug
        if debug:
            traceback.print_exc()
        msg = " ".join(f"{type(e).__name__}: {e}".split())[:300]
        print(f"resnet-bench: internal error: {msg} (rerun with --debug for the traceback)", file=sys.stderr)
        return 1
