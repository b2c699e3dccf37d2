"""What the commands share: parsing and validating flag values (one-line UserErrors), the
sweep and variant flags, and the argparse subclass that reports a bad flag as one line."""

from __future__ import annotations

import argparse
import difflib
import math
from collections.abc import Sequence

from bench.errors import UserError


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line (exit 2) instead of usage + message."""

    def error(self, message: str):  # noqa: D401 - argparse API
        raise UserError(f"{message} (see {self.prog} --help)")


# ---------------------------------------------------------------- values
def split_list(text: str | Sequence[str]) -> list[str]:
    """'a,b, c' -> ['a', 'b', 'c']; a list of such strings is flattened."""
    parts = [text] if isinstance(text, str) else list(text)
    return [p.strip() for item in parts for p in item.split(",") if p.strip()]


def parse_choices(text: str | Sequence[str], what: str, valid: Sequence[str]) -> tuple[str, ...]:
    values = split_list(text)
    if not values:
        raise UserError(f"no {what} given; valid: {', '.join(valid)}")
    for v in values:
        if v not in valid:
            hint = difflib.get_close_matches(v, valid, n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise UserError(f"unknown {what} {v!r}{extra}; valid: {', '.join(valid)}")
    return tuple(dict.fromkeys(values))


def parse_positive_ints(text: str | Sequence[str], what: str, minimum: int = 1) -> tuple[int, ...]:
    values = split_list(text)
    if not values:
        raise UserError(f"no {what} given")
    out = []
    for v in values:
        try:
            n = int(v)
        except ValueError:
            raise UserError(f"{what} must be a positive integer, got {v!r}") from None
        if n < 1:
            raise UserError(f"{what} must be a positive integer, got {v!r}")
        if n < minimum:
            raise UserError(f"{what} must be at least {minimum} (the network's total stride), got {n}")
        out.append(n)
    return tuple(dict.fromkeys(out))


def parse_backends(text: str | None) -> tuple[str, ...]:
    """--backends (default: pytorch alone)."""
    from bench.core import backends

    return parse_choices(text, "backend", backends.names()) if text is not None else (backends.DEFAULT,)


def parse_modes(args, defaults: dict[str, Sequence[str]]) -> tuple[tuple[str, str, str], ...]:
    """--layouts x --precisions x --compile (each defaulting to `defaults[axis]`)."""
    from bench.core import modes
    from bench.core.case import product_modes

    def axis(flag: str, name: str, what: str) -> tuple[str, ...]:
        value = getattr(args, flag)
        return parse_choices(value, what, modes.names(name)) if value is not None else tuple(defaults[name])

    return product_modes(axis("layouts", "layout", "layout"), axis("precisions", "precision", "precision"),
                         axis("compile", "compile", "compile mode"))


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def check_threads(threads: int | None) -> None:
    """A positive thread count no larger than the CPUs this process may use: more threads than
    cores only make the threads wait on each other."""
    if threads is None:
        return
    if threads < 1:
        raise UserError(f"--threads must be a positive integer, got {threads}")
    cpus = usable_cpus()
    if threads > cpus:
        raise UserError(f"--threads {threads} is more than the {cpus} CPU(s) this process may use; "
                        f"give at most {cpus} (1 is steadiest on a shared machine)")


def check_seconds(value: float | None, flag: str, *, zero_ok: bool = False) -> None:
    if value is None:
        return
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        what = "a number of seconds >= 0" if zero_ok else "a positive number of seconds"
        raise UserError(f"{flag} must be {what}, got {value:g}")


def parse_fraction(text: str, flag: str) -> float:
    """'5%' or '0.05' -> 0.05, strictly between 0 and 1. A bare number >= 1 is ambiguous (5 =
    5% or 500%?) and refused."""
    s = str(text).strip()
    try:
        value = float(s[:-1]) / 100 if s.endswith("%") else float(s)
    except ValueError:
        raise UserError(f"{flag} must be a percentage like 5% or a fraction like 0.05, got {text!r}") from None
    if not s.endswith("%") and value >= 1:
        raise UserError(f"{flag} {text!r} is ambiguous; write {s}% or {float(s) / 100:g}")
    if not (math.isfinite(value) and 0 < value < 1):
        raise UserError(f"{flag} must be above 0% and below 100%, got {text!r}")
    return value


# ---------------------------------------------------------------- output files
def check_output_file(path: str, flag: str, replaceable=None) -> None:
    """UserError unless `path` can be written as a new file: not empty, not a directory, in an
    existing writable directory. An existing file is replaced only when ``replaceable(path)``
    says it is one this command wrote (never a file the user had for something else)."""
    import os
    from pathlib import Path

    from bench.results.files import refuse_special

    if not str(path).strip():
        raise UserError(f"{flag} must name a file, got an empty string")
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if p.is_symlink():
        refuse_special(p)
    if p.is_dir():
        raise UserError(f"{flag} {p} is a directory; give a file name like report.html")
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise UserError(f"{flag} {p}: {parent} {what}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {p}: cannot write in {parent} (permission denied)")
    if p.exists() and not p.is_file():
        refuse_special(p)
    if p.exists() and not (replaceable and replaceable(p)):
        raise UserError(f"{flag} {p} exists and was not written by resnet-bench; not replacing it (choose another "
                        f"name or remove it)")


def check_output_dir(path: str, flag: str) -> None:
    """UserError unless `path` is a directory, or can be created (its nearest existing ancestor
    a writable directory)."""
    import os
    from pathlib import Path

    if not str(path).strip():
        raise UserError(f"{flag} must name a directory, got an empty string")
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UserError(f"{flag} {p} exists and is not a directory")
    probe = p
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"{flag} {p}: {probe} is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {p}: cannot write in {probe} (permission denied)")


# ---------------------------------------------------------------- variants
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


# ---------------------------------------------------------------- sweeps
SWEEP_FLAGS = ("models", "batch_sizes", "image_sizes", "layouts", "precisions", "compile", "workloads", "backends")


def add_sweep_flags(p: argparse.ArgumentParser, helps: dict[str, str] | None = None) -> None:
    """Case and timing flags shared by `run` and `check --speed`; `helps` replaces the help of
    some flags (by dest) where a command means them differently."""
    from bench.core import devices, modes
    from bench.core.case import WORKLOADS

    h = {
        "models": "names or fnmatch patterns, comma-separated (e.g. 'resnet50*,resnext*')",
        "batch_sizes": "comma-separated positive integers",
        "image_sizes": "comma-separated sizes in px (default: each model's natural size, 224 or 32 for CIFAR "
                       "variants; at least the model's total stride)",
        "layouts": f"comma-separated: {', '.join(modes.names('layout'))}",
        "precisions": f"comma-separated: {', '.join(modes.names('precision'))}",
        "compile": f"comma-separated: {', '.join(modes.names('compile'))}",
        "workloads": f"comma-separated: {', '.join(WORKLOADS)}",
        "backends": "comma-separated runtimes: pytorch (default: eager or torch.compile per --compile), aoti, "
                    "onnxruntime, openvino, tensorrt; each mode is measured in each",
        "device": f"auto, {', '.join(devices.kinds())} (default auto: an accelerator if available)",
        "threads": "torch threads in the measuring process (default: torch's)",
        "max_time": "seconds of samples per case at most (default 10)",
        "min_time": "seconds of samples per case at least (default 0.5)",
        "min_samples": "samples per case at least (default 10)",
        "max_warmup": "seconds of warm-up per case at most, after the first call "
                      "(default 30; a case still unsteady then is marked steady=False)",
    } | (helps or {})
    for dest in SWEEP_FLAGS:
        p.add_argument("--" + dest.replace("_", "-"), dest=dest, help=h[dest])
    p.add_argument("--device", help=h["device"])
    p.add_argument("--threads", type=int, help=h["threads"])
    p.add_argument("--max-time", type=float, help=h["max_time"])
    p.add_argument("--min-time", type=float, help=h["min_time"])
    p.add_argument("--min-samples", type=int, help=h["min_samples"])
    p.add_argument("--max-warmup", type=float, help=h["max_warmup"])
