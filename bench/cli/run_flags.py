"""What `resnet-bench run`'s flags mean, before anything is measured: the sweep (over a
preset's defaults), the timing of one case in one round, the rounds (budget, target), the
thread count, where results go, the executor, and which flags a resume may change. Every check
here raises a one-line UserError before anything is written."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

from bench.cli import common_args as A
from bench.errors import UserError


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
    modes = (REFERENCE_MODE + ("pytorch",),) + tuple(modes)  # eager fp32 in PyTorch, whatever else is asked
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
    backends = A.parse_backends(args.backends)
    if args.backends is not None and args.preset is not None:
        raise UserError("--backends replaces a preset's own backends; drop --preset or --backends")
    return Sweep(models, bss, sizes, tuple(modes), workloads, device, natural, ddp, backends)


#: Sampling of one case in one round: short, because the rounds, not one long sample, make a
#: number reliable (bench.execute.rounds); stops early once the round's median is known to 1%.
ROUND_MAX_TIME_S = 2.5
#: Warm-up windows of 3 calls (two must agree): a round's process warms up every case anew.
ROUND_WARMUP_WINDOW = 3


def timing_config(args):
    from bench.core.timing import TimingConfig

    kw = {"max_time_s": ROUND_MAX_TIME_S, "warmup_window": ROUND_WARMUP_WINDOW}
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
                     "--retry-failed", "--rounds", "--budget", "--target-ci")
_RESUME_FIXED = {"preset": "--preset", "device": "--device", "threads": "--threads", "max_time": "--max-time",
                 "min_time": "--min-time", "min_samples": "--min-samples", "max_warmup": "--max-warmup",
                 "overrides": "--set", "weights": "--weights", "out": "--out", "trace": "--trace",
                 "max_batch": "--max-batch", "max_batch_probes": "--max-batch-probes", "mem_cap_mb": "--mem-cap-mb",
                 "ddp": "--ddp", "baseline_model": "--baseline-model"}
#: flags (dest -> flag) whose default is True: given means False, which a resume refuses too
_RESUME_FIXED_OFF = {"stages": "--no-stages"}
#: Keys of a run's saved settings that are not RunSettings fields.
META_KEYS = ("planned_cases", "max_batch_search", "rounds", "rounds_end", "baseline_model")


def _check_flags(args) -> None:
    """Every flag value that needs no measuring, before anything is written."""
    if args.case_timeout is not None and not (math.isfinite(args.case_timeout) and args.case_timeout > 0):
        raise UserError(f"--case-timeout must be a positive number of seconds, got {args.case_timeout:g}")
    from bench.store.rundir import check_path

    A.check_threads(args.threads)
    if args.rounds is not None and args.rounds < 1:
        raise UserError(f"--rounds must be a positive integer, got {args.rounds}")
    A.check_seconds(args.budget, "--budget")
    if args.target_ci is not None:
        A.parse_fraction(args.target_ci, "--target-ci")
    if args.out is not None:
        check_path(args.out)
    if args.resume is not None:
        check_path(args.resume, "--resume")
        fixed = [flag for dest, flag in _RESUME_FIXED.items() if getattr(args, dest) not in (None, [])]
        fixed += [flag for dest, flag in _RESUME_FIXED_OFF.items() if getattr(args, dest, True) is False]
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
        check_path(args.trace, "--trace")
        t = Path(args.trace)
        if t.exists() and (not t.is_dir() or (any(t.iterdir()) and not args.overwrite)):
            raise UserError(f"--trace {t}: {'not a directory' if not t.is_dir() else 'already holds files'}; "
                            "choose another directory (or add --overwrite)")


def rounds_config(args, saved: dict | None = None):
    """The rounds of this session: the flags over the run's saved rounds (a resume) over the
    preset's defaults (bench.core.presets.PRESET_BUDGET_S)."""
    from bench.core.presets import DEFAULT_BUDGET_S, PRESET_BUDGET_S
    from bench.execute.rounds import RoundsConfig

    base = dict(saved or {})
    if not base:
        base["budget_s"] = PRESET_BUDGET_S.get(args.preset or "quick") if args.models is None else DEFAULT_BUDGET_S
    if args.rounds is not None:
        base["max_rounds"] = args.rounds
    if args.budget is not None:
        base["budget_s"] = args.budget
    if args.target_ci is not None:
        base["target_rel_ci"] = A.parse_fraction(args.target_ci, "--target-ci")
    known = {"max_rounds", "target_rel_ci", "budget_s", "min_rounds"}
    try:
        return RoundsConfig(**{k: v for k, v in base.items() if k in known})
    except TypeError as e:
        raise UserError(f"unreadable rounds settings: {e}") from None


def default_threads(args, device: str) -> tuple[int | None, str]:
    """--threads, or on a CPU the rule for this machine (bench.core.host.default_threads), and
    how it was chosen; on an accelerator torch's own count."""
    from bench.core.host import default_threads as rule

    if args.threads is not None:
        return args.threads, f"{args.threads} = --threads"
    if device == "cpu":
        return rule()
    return None, "torch's default (the device does the work)"


