"""`resnet-bench validate`: the harness checks itself against independent references.

Two checks (issue 3, "Performance bar"), each a table of ratios ours / reference:

``harness``: the harness adds nothing to what it measures. For one case (default resnet50,
    batch 1, 224 px, eager fp32 contiguous, inference) the median latency that
    :func:`bench.timing.measure` reports for the step function of :func:`bench.modes.prepare`
    is compared with ``torch.utils.benchmark.Timer(stmt="step()", num_threads=<same threads>)``
    timing the **same step object** (same model, same input) with ``blocked_autorange``.
    Timer's default ``num_threads=1`` would compare a 1-thread run with our N-thread run
    (REFERENCE.md), so the thread count is always passed. Two paths:

    * ``measure()``: our timing core on the step, round by round, interleaved with Timer.
    * ``CaseRunner.run``: the full in-process runner path (deep copy of the model, mode
      applied, warm-up until steady, default :class:`~bench.timing.TimingConfig`), whose row's
      ``latency_ms_p50`` is what users see, interleaved with Timer on a step built from the
      runner's own model and input. The runner samples until its own stopping rule; each
      Timer round then lasts as long as the runner's latest sampling did.

``torchvision``: resnet_impl's variant is as fast as torchvision's. ``create_model(NAME)``
    with torchvision's state_dict loaded strictly (same weights: the outputs are compared and
    recorded per mode) against ``torchvision.models.get_model(NAME, weights=None)``, each mode
    applied by :func:`bench.modes.prepare` exactly as the harness applies it (layout, autocast,
    ``torch.compile`` with inductor freezing for inference), both models prepared and compiled
    in the same process, then timed in interleaved rounds.

Rounds and statistics
    A round is one :func:`bench.timing.measure` call (no warm-up: each side was warmed up until
    steady before round 1) sampling for ``round_time_s`` (at least ``min_samples`` calls), or
    one ``Timer.blocked_autorange(min_run_time=round_time_s)``. Round r runs ours first when r
    is even, the reference first when r is odd (A B, B A, ...), so a slow drift of a shared
    machine hits both sides alike. Each round is reduced to its median.

    * **ratio** = median over rounds of the paired ratio ours_i / ref_i (> 1: ours slower).
      Round i of each side ran back to back, so a change of the machine's state (a neighbour
      starting or stopping) between rounds cancels in the pair. The plain ratio of the two
      sides' medians of round medians (``ratio_of_medians``, also reported) does not: in one
      run here both sides dropped from ~73 to ~59 ms mid-run, ours one round before the
      reference, and the ratio of medians read 0.846 while the paired ratio read 0.99.
      ``ours_ms`` / ``ref_ms`` are each side's median of round medians.
    * **CI** = 95% percentile bootstrap of the paired ratio: round indices are resampled
      with replacement (pairs kept together), ``N_RESAMPLES`` times with a fixed seed. With
      few rounds a bootstrap is only a rough interval (2 rounds: the two round ratios).
      It covers the noise *within* this process only: a process-level offset (which memory the
      allocator hands each model, see results/validation/README.md) is not in it.
    * **spread** of a side = IQR / median of its round medians (how much rounds disagree).
    * **page faults/call** (torchvision check): minor page faults of the whole process per
      call, median over rounds (``getrusage``). Eager bf16 autocast re-casts every weight on
      every call; when glibc hands those ~50 MB back to the OS and takes them again, each call
      faults thousands of pages, and how many depends on the process's allocation history,
      not on the model: a model can be 5-10% faster or slower than its twin in one process
      for that reason alone (results/validation/README.md).
    * **verdict**: ``pass`` when |ratio - 1| <= tolerance (3%), else ``fail``: the bar is on
      the point estimate, as the issue states it. ``ci`` says whether the CI lies ``inside`` the
      band, ``outside`` it, or ``straddles`` an edge (then the verdict rests on noise as much as
      on a difference: rerun with more rounds).

    Timer's ``blocked_autorange`` sizes its blocks so that timer overhead is < 0.01% of a
    block, so for a step of a few ms it averages 10+ calls per block and reports the median of
    block means, while ``measure`` keeps one sample per call. For the 100 ms-class steps of a
    ResNet on CPU both take one call per sample; on a noisy machine with short steps the two
    medians can differ (a block mean follows the mean, which a right-skewed distribution pulls
    above the median).

Exit codes: 0 every measured row passes; 1 a row fails (or errored); 2 bad input.
Outputs under ``--out`` (default results/validation/): ``harness.csv``, ``torchvision.csv``
(one per check run), ``validation.md`` (environment, command, load, tables) and
``validation.json`` (the same plus every round's raw samples).
"""

from __future__ import annotations

import argparse
import copy
import csv
import datetime as dt
import gc
import io
import json
import math
import os
import shlex
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from bench.errors import UserError
from bench.timing import TimingConfig

CHECKS = ("harness", "torchvision")
TOLERANCE = 0.03  # the bar: within 3% (harness) and 1.00 +/- 0.03 (torchvision)
CONFIDENCE = 0.95
N_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
DEFAULT_MODEL = "resnet50"
DEFAULT_ROUNDS = 7
DEFAULT_ROUND_TIME_S = 1.0
DEFAULT_WARMUP_S = 10.0
MIN_ROUNDS = 2
MIN_SAMPLES_PER_ROUND = 3
DEFAULT_OUT = Path("results") / "validation"
FORMAT = "resnet-bench/validation"

# Modes of the torchvision check by device: every mode the device can run (reduce-overhead,
# i.e. CUDA graphs, and fp16/tf32 need CUDA; on CPU they would only be skipped rows). On this
# project's CPU max-autotune compiles resnet50 in ~10 s (it autotunes the linear layer; convs go
# to oneDNN either way), so it is measured too.
DEFAULT_MODES = {
    "cpu": {"layouts": ("contiguous", "channels_last"), "precisions": ("fp32", "bf16"),
            "compile": ("none", "default", "max-autotune")},
    "cuda": {"layouts": ("contiguous", "channels_last"), "precisions": ("fp32", "tf32", "bf16", "fp16"),
             "compile": ("none", "default", "max-autotune", "reduce-overhead")},
}

# Columns of the two tables (CSV and Markdown; the JSON rows add the raw rounds).
COMPARISON_COLUMNS = ("ours_ms", "ref_ms", "ratio", "ratio_of_medians", "ci_low", "ci_high", "ours_spread",
                      "ref_spread", "rounds", "verdict", "ci")
HARNESS_COLUMNS = ("path", "model", "device", "batch_size", "image_size", "layout", "precision", "compile",
                   "threads", "reference", "status") + COMPARISON_COLUMNS + (
                   "ours_samples", "ref_samples", "error")
TORCHVISION_COLUMNS = ("model", "reference", "device", "batch_size", "image_size", "layout", "precision",
                       "compile", "threads", "status") + COMPARISON_COLUMNS + (
                       "max_abs_diff", "ours_faults_per_call", "ref_faults_per_call", "ours_first_call_s",
                       "ref_first_call_s", "error")
RAW_KEYS = ("ours_rounds_ms", "ref_rounds_ms", "ours_round_samples_ms", "ref_round_samples_ms")


# ================================================================ statistics (pure)
@dataclass(frozen=True)
class Comparison:
    """Interleaved rounds of two sides reduced to a ratio ours / reference (see module doc)."""

    ours_ms: float  # median of ours' round medians
    ref_ms: float  # median of the reference's round medians
    ratio: float  # median of the paired round ratios ours_i / ref_i; > 1 = ours slower
    ratio_of_medians: float  # ours_ms / ref_ms (unpaired)
    ci_low: float  # paired bootstrap CI of the ratio (CONFIDENCE)
    ci_high: float
    ours_spread: float  # IQR / median of ours' round medians
    ref_spread: float
    rounds: int
    verdict: str  # "pass" | "fail" (|ratio - 1| <= tolerance)
    ci: str  # "inside" | "outside" | "straddles" the band [1 - tolerance, 1 + tolerance]
    tolerance: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rel_iqr(x) -> float:
    import numpy as np

    q25, q50, q75 = np.percentile(x, [25, 50, 75])
    return float((q75 - q25) / q50) if q50 > 0 else math.inf


def paired_ratio(ours: Sequence[float], ref: Sequence[float]) -> float:
    """Median over rounds of ours_i / ref_i."""
    import numpy as np

    return float(np.median(np.asarray(ours, dtype=float) / np.asarray(ref, dtype=float)))


def ratio_ci(ours: Sequence[float], ref: Sequence[float], confidence: float = CONFIDENCE,
             n_resamples: int = N_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile bootstrap CI of :func:`paired_ratio`, resampling round indices (pairs kept)."""
    import numpy as np

    r = np.asarray(ours, dtype=float) / np.asarray(ref, dtype=float)
    n = r.size
    if n == 1:
        return float(r[0]), float(r[0])
    idx = np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))
    ratios = np.median(r[idx], axis=1)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(ratios, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def compare_rounds(ours: Sequence[float], ref: Sequence[float], tolerance: float = TOLERANCE) -> Comparison:
    """Round medians (ms) of two interleaved sides -> ratio, CI, spreads and verdict.

    Rounds are paired by index (round i of ours ran next to round i of the reference)."""
    import numpy as np

    a, b = np.asarray(ours, dtype=float), np.asarray(ref, dtype=float)
    if a.ndim != 1 or a.size == 0 or a.shape != b.shape:
        raise ValueError(f"compare_rounds needs two equally long, non-empty lists of round medians; "
                         f"got {a.shape} and {b.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b)) and np.all(a > 0) and np.all(b > 0)):
        raise ValueError("compare_rounds: round medians must be finite and > 0 (ms)")
    if not (0 <= tolerance < 1):
        raise ValueError(f"compare_rounds: tolerance must be in [0, 1), got {tolerance!r}")
    ours_ms, ref_ms = float(np.median(a)), float(np.median(b))
    ratio = paired_ratio(a, b)
    lo, hi = ratio_ci(a, b)
    band_lo, band_hi = 1.0 - tolerance, 1.0 + tolerance
    eps = 1e-12  # 1.03 computed as 103/100 must pass
    verdict = "pass" if band_lo - eps <= ratio <= band_hi + eps else "fail"
    if lo >= band_lo - eps and hi <= band_hi + eps:
        ci = "inside"
    elif hi < band_lo or lo > band_hi:
        ci = "outside"
    else:
        ci = "straddles"
    return Comparison(ours_ms=ours_ms, ref_ms=ref_ms, ratio=ratio, ratio_of_medians=ours_ms / ref_ms,
                      ci_low=lo, ci_high=hi,
                      ours_spread=_rel_iqr(a), ref_spread=_rel_iqr(b), rounds=int(a.size),
                      verdict=verdict, ci=ci, tolerance=tolerance)


# ================================================================ rounds
@dataclass(frozen=True)
class Round:
    median_ms: float
    samples_ms: tuple[float, ...]
    faults_per_call: float | None = None  # minor page faults of the process per call (Linux/macOS)


def _minor_faults() -> int | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


RoundFn = Callable[[], Round]


def round_config(round_time_s: float, min_samples: int = MIN_SAMPLES_PER_ROUND):
    """TimingConfig of one round: no warm-up (done before round 1), sample for round_time_s."""
    from bench.timing import TimingConfig

    return TimingConfig(min_samples=min_samples, max_samples=100_000, min_time_s=0.0,
                        max_time_s=round_time_s, target_rel_ci=0.0,
                        warmup_min_iters=0, warmup_max_s=0.0)


def measure_round(step: Callable[[], object], device: str, round_time_s: float) -> RoundFn:
    """A round of ours: bench.timing.measure on `step` (its first call is not a sample)."""
    from bench import timing

    cfg = round_config(round_time_s)

    def run() -> Round:
        f0 = _minor_faults()
        m = timing.measure(step, device=device, config=cfg)
        f1 = _minor_faults()
        per_call = None if f0 is None or f1 is None else (f1 - f0) / (m.n + 1)  # + the first call
        return Round(m.median_ms, m.samples_ms, per_call)

    return run


def timer_round(step: Callable[[], object], threads: int, round_time_s: float | Callable[[], float]) -> RoundFn:
    """A round of torch.utils.benchmark.Timer on the same `step`, with the same thread count.
    `round_time_s` may be a callable, read at the start of each round."""
    from torch.utils.benchmark import Timer

    timer = Timer(stmt="step()", globals={"step": step}, num_threads=threads,
                  label="resnet-bench validate", description="step")

    def run() -> Round:
        t = round_time_s() if callable(round_time_s) else round_time_s
        m = timer.blocked_autorange(min_run_time=t)
        return Round(m.median * 1e3, tuple(t * 1e3 for t in m.times))

    return run


def interleave(ours: RoundFn, ref: RoundFn, rounds: int,
               on_round: Callable[[str], None] | None = None) -> tuple[list[Round], list[Round]]:
    """`rounds` rounds of each side, alternating which goes first: A B, B A, A B, ..."""
    a: list[Round] = []
    b: list[Round] = []
    for r in range(rounds):
        order = (("ours", ours, a), ("ref", ref, b))
        for side, fn, sink in (order if r % 2 == 0 else order[::-1]):
            if on_round:
                on_round(f"round {r + 1}/{rounds} {side}")
            sink.append(fn())
    return a, b


def comparison_row(a: list[Round], b: list[Round], tolerance: float = TOLERANCE) -> dict[str, Any]:
    """Columns of COMPARISON_COLUMNS plus the raw rounds (RAW_KEYS)."""
    c = compare_rounds([r.median_ms for r in a], [r.median_ms for r in b], tolerance)
    row = {k: getattr(c, k) for k in COMPARISON_COLUMNS}
    row.update(ours_rounds_ms=[r.median_ms for r in a], ref_rounds_ms=[r.median_ms for r in b],
               ours_round_samples_ms=[list(r.samples_ms) for r in a],
               ref_round_samples_ms=[list(r.samples_ms) for r in b])
    for side, rounds in (("ours", a), ("ref", b)):
        faults = [r.faults_per_call for r in rounds if r.faults_per_call is not None]
        row[f"{side}_faults_per_call"] = float(statistics.median(faults)) if faults else None
    return row


def warm_up(step: Callable[[], object], device: str, max_s: float):
    """Call `step` until its time is steady (bench.timing's rule) or max_s; returns the
    Measurement (first_call_s = the first call: compile time for compiled models)."""
    from bench.timing import TimingConfig, measure

    cfg = TimingConfig(min_samples=1, min_time_s=0.0, max_time_s=1e-6, target_rel_ci=0.0,
                       warmup_max_s=max_s)
    return measure(step, device=device, config=cfg)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


# ================================================================ check 1: harness vs Timer
@dataclass(frozen=True)
class Settings:
    """What validate measures and how long; recorded in validation.json."""

    model: str = DEFAULT_MODEL
    device: str = "cpu"
    threads: int = 1
    batch_size: int = 1
    image_size: int = 224
    rounds: int = DEFAULT_ROUNDS
    round_time_s: float = DEFAULT_ROUND_TIME_S
    warmup_s: float = DEFAULT_WARMUP_S
    tolerance: float = TOLERANCE
    runner_path: bool = True  # harness check: also compare CaseRunner.run's row with Timer
    runner_timing: TimingConfig = TimingConfig()  # the runner path's timing: `run`'s default
    seed: int = 0


def harness_case(s: Settings):
    from bench.cases import Case

    return Case(s.model, "infer", s.batch_size, s.image_size, "contiguous", "fp32", "none", s.device)


def harness_check(s: Settings, on_round: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Rows: measure() vs Timer on the same step, and CaseRunner.run vs Timer (if runner_path)."""
    import torch
    from bench import modes
    from bench.runner import CaseRunner, RunSettings

    torch.set_num_threads(s.threads)
    case = harness_case(s)
    base_cols = {"model": s.model, "device": s.device, "batch_size": s.batch_size, "image_size": s.image_size,
                 "layout": case.layout, "precision": case.precision, "compile": case.compile,
                 "threads": s.threads, "reference": f"torch.utils.benchmark.Timer(num_threads={s.threads})"}
    # The runner's settings as `resnet-bench run` uses them, minus profiling and the output
    # check (both happen before timing and do not touch it).
    runner = CaseRunner(RunSettings(timing=s.runner_timing, threads=s.threads, isolate=False, profile=False,
                                    check_outputs=False, seed=s.seed))
    base = runner.base_model(s.model)  # the very weights the runner times
    x, y = modes.make_inputs(case, base.fc.out_features, seed=s.seed)
    rows = []
    with modes.precision_context(case):
        prepared = modes.prepare(copy.deepcopy(base).to(s.device), case, x, y)
        step = prepared.step
        warm_up(step, s.device, s.warmup_s)

        def tag(path):
            return (lambda msg: on_round(f"harness {path}: {msg}")) if on_round else None

        row = {"path": "measure()", **base_cols, "status": "ok"}
        try:
            a, b = interleave(measure_round(step, s.device, s.round_time_s),
                              timer_round(step, s.threads, s.round_time_s), s.rounds, tag("measure()"))
            row.update(comparison_row(a, b, s.tolerance))
            row.update(ours_samples=sum(len(r.samples_ms) for r in a), ref_samples=sum(len(r.samples_ms) for r in b))
        except Exception as e:  # a failure is a row, not a crash
            row.update(status="error", error=_one_line(e))
        rows.append(row)

        if s.runner_path:
            # The runner samples until its own stopping rule (seconds, not round_time_s); Timer's
            # paired round lasts as long as the runner's last sampling did, so both sides of a
            # pair see the machine for equally long.
            span_s = [s.round_time_s]

            def runner_round() -> Round:
                r = runner.run(case)
                if r["status"] != "ok":
                    raise RuntimeError(f"CaseRunner.run: {r['status']}: {r['error']}")
                span_s[0] = max(sum(r["samples_ms"]) / 1e3, s.round_time_s)
                return Round(float(r["latency_ms_p50"]), tuple(r["samples_ms"]))

            row = {"path": "CaseRunner.run", **base_cols, "status": "ok"}
            try:
                a, b = interleave(runner_round, timer_round(step, s.threads, lambda: span_s[0]), s.rounds,
                                  tag("CaseRunner.run"))
                row.update(comparison_row(a, b, s.tolerance))
                row.update(ours_samples=sum(len(r.samples_ms) for r in a),
                           ref_samples=sum(len(r.samples_ms) for r in b))
            except Exception as e:
                row.update(status="error", error=_one_line(e))
            rows.append(row)
    del prepared, step
    gc.collect()
    return rows


# ================================================================ check 2: resnet_impl vs torchvision
def torchvision_names() -> set[str]:
    import torchvision

    return set(torchvision.models.list_models(module=torchvision.models))


def build_pair(name: str, seed: int = 0):
    """(ours, torchvision's) in eval mode on CPU with identical weights: torchvision's model
    initialised with `seed`, its state_dict loaded strictly into resnet_impl's."""
    import torch
    import torchvision
    import resnet_impl

    torch.manual_seed(seed)
    ref = torchvision.models.get_model(name, weights=None)
    ours = resnet_impl.create_model(name)
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ours.eval(), ref.eval()


def mode_list(device: str, layouts=None, precisions=None, compiles=None) -> list[tuple[str, str, str]]:
    """(layout, precision, compile) triples: the product of the axes given, else the device's defaults."""
    import itertools

    d = DEFAULT_MODES["cuda" if device.startswith("cuda") else "cpu"]
    return list(itertools.product(layouts or d["layouts"], precisions or d["precisions"], compiles or d["compile"]))


def skip_reason(s: Settings, mode: tuple[str, str, str]) -> str | None:
    from bench import modes
    from bench.cases import Case

    return modes.skip_reason(Case(s.model, "infer", s.batch_size, s.image_size, *mode, s.device))


def torchvision_check(s: Settings, modes_to_run: list[tuple[str, str, str]],
                      on_round: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """One row per mode: ours vs torchvision, interleaved rounds, same weights and input."""
    import torch
    from bench import modes
    from bench.cases import Case

    torch.set_num_threads(s.threads)
    ours_base, ref_base = build_pair(s.model, s.seed)
    rows = []
    for layout, precision, comp in modes_to_run:
        case = Case(s.model, "infer", s.batch_size, s.image_size, layout, precision, comp, s.device)
        row: dict[str, Any] = {"model": s.model, "reference": f"torchvision.models.{s.model}",
                               "device": s.device, "batch_size": s.batch_size, "image_size": s.image_size,
                               "layout": layout, "precision": precision, "compile": comp,
                               "threads": s.threads, "status": "ok"}
        reason = modes.skip_reason(case)
        if reason:
            row.update(status="skipped", error=reason)
            rows.append(row)
            continue
        label = f"torchvision {layout}/{precision}/{comp}"
        tag = (lambda msg, label=label: on_round(f"{label}: {msg}")) if on_round else None
        try:
            row.update(_compare_mode(case, ours_base, ref_base, s, tag))
        except Exception as e:
            row.update(status="error", error=_one_line(e))
        finally:
            gc.collect()
            if s.device.startswith("cuda"):
                torch.cuda.empty_cache()
        rows.append(row)
    return rows


def _compare_mode(case, ours_base, ref_base, s: Settings, on_round) -> dict[str, Any]:
    import torch
    from bench import modes

    if case.compile != "none":
        torch._dynamo.reset()  # both models compile afresh, in this mode
    x, y = modes.make_inputs(case, ours_base.fc.out_features, seed=s.seed)
    out: dict[str, Any] = {}
    with modes.precision_context(case):
        sides = {}
        for side, base in (("ours", ours_base), ("ref", ref_base)):
            prepared = modes.prepare(copy.deepcopy(base).to(s.device), case, x, y)
            _sync(s.device)
            t0 = time.perf_counter()
            first = prepared.step()
            _sync(s.device)
            out[f"{side}_first_call_s"] = time.perf_counter() - t0
            sides[side] = (prepared, first.detach().float().cpu())
        out["max_abs_diff"] = modes.max_diff(sides["ours"][1], sides["ref"][1])[0]
        step_a, step_b = sides["ours"][0].step, sides["ref"][0].step
        for st in (step_a, step_b):
            warm_up(st, s.device, s.warmup_s)
        a, b = interleave(measure_round(step_a, s.device, s.round_time_s),
                          measure_round(step_b, s.device, s.round_time_s), s.rounds, on_round)
    out.update(comparison_row(a, b, s.tolerance))
    del sides, step_a, step_b
    return out


def oversubscription_warning(threads: int, cpu_count: int | None, load1: float) -> str | None:
    """A warning when other processes already keep the cores busy and we add several threads.

    On this project's 2-core machine, with another process running, resnet50 with 2 torch
    threads took 0.7-2.6 s per call instead of 84 ms with 1 thread: an OpenMP parallel region
    waits at its barrier for a thread the OS has descheduled, and a forward has hundreds of them.
    Such timings are bimodal (fast when the neighbour pauses) and say nothing about the code."""
    cpus = cpu_count or 1
    if threads > 1 and load1 > cpus - threads + 0.5:
        return (f"load average {load1:.2f} on {cpus} CPUs with {threads} threads: the cores are shared, and "
                f"multi-threaded CPU timings are then bimodal and up to 10-100x slower (OpenMP barriers wait "
                f"on descheduled threads); consider --threads 1")
    return None


# ================================================================ outputs
def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:500]


def _row_label(r: dict) -> str:
    return r.get("path") or f"{r['layout']}/{r['precision']}/{r['compile']}"


def _fail_reason(r: dict) -> str:
    if r.get("status") == "error":
        return f"not measured: {r.get('error')}"
    why = {"outside": "the CI lies outside the band too",
           "straddles": "but the CI straddles the band: noise cannot be ruled out, rerun with more --rounds"}
    return f"ratio {r['ratio']:.3f} outside 1 +/- {r.get('tolerance', TOLERANCE):g}; {why.get(r['ci'], '')}"


def failed(rows: list[dict]) -> list[dict]:
    """Rows that make the command exit 1: a failed verdict, or a mode that could not be measured."""
    return [r for r in rows if r.get("status") == "error" or r.get("verdict") == "fail"]


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def _ci(r: dict) -> str:
    if r.get("ci_low") is None:
        return "-"
    return f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}] {r['ci']}"


def _note_text(r: dict) -> str:
    return f"{r['status']}: {r.get('error') or ''}"


def _notes(rows: list[dict]) -> dict[str, int]:
    """Distinct skip/error messages -> note number (shown under the table, not in the cell)."""
    notes: dict[str, int] = {}
    for r in rows:
        if r.get("status") != "ok":
            notes.setdefault(_note_text(r), len(notes) + 1)
    return notes


def _verdict(r: dict, notes: dict[str, int]) -> str:
    if r.get("status") != "ok":
        return f"{r['status']} (note {notes[_note_text(r)]})"
    return r["verdict"]


# Table views (header, cell function) shared by the rich tables and Markdown.
def _views(check: str, notes: dict[str, int]) -> list[tuple[str, Callable[[dict], str]]]:
    def verdict(r: dict) -> str:
        return _verdict(r, notes)

    ratio = [("ours ms", lambda r: _fmt(r.get("ours_ms"))),
             ("Timer ms" if check == "harness" else "torchvision ms", lambda r: _fmt(r.get("ref_ms"))),
             ("ratio (paired)", lambda r: _fmt(r.get("ratio"), 4)),
             (f"{CONFIDENCE:.0%} CI (vs band)", _ci),
             ("ours spread", lambda r: f"{r['ours_spread']:.1%}" if r.get("ours_spread") is not None else "-"),
             ("ref spread", lambda r: f"{r['ref_spread']:.1%}" if r.get("ref_spread") is not None else "-"),
             ("rounds", lambda r: _fmt(r.get("rounds")))]
    if check == "harness":
        return [("path", lambda r: r["path"]),
                ("case", lambda r: f"{r['model']} bs{r['batch_size']} {r['image_size']}px "
                                   f"{r['layout']}/{r['precision']}/{r['compile']} {r['threads']} thr")] + ratio + [
                ("samples ours/Timer", lambda r: f"{_fmt(r.get('ours_samples'))}/{_fmt(r.get('ref_samples'))}"),
                ("verdict", verdict)]
    return [("layout", lambda r: r["layout"]), ("precision", lambda r: r["precision"]),
            ("compile", lambda r: r["compile"])] + ratio + [
            ("out max abs diff", lambda r: _fmt(r.get("max_abs_diff"), 3)),
            ("page faults/call ours/tv", lambda r: (f"{r['ours_faults_per_call']:.0f}/{r['ref_faults_per_call']:.0f}"
                                                    if r.get("ours_faults_per_call") is not None else "-")),
            ("first call s ours/tv", lambda r: (f"{r['ours_first_call_s']:.2f}/{r['ref_first_call_s']:.2f}"
                                                if r.get("ours_first_call_s") is not None else "-")),
            ("verdict", verdict)]


TITLES = {
    "harness": "Harness vs torch.utils.benchmark.Timer (same step, same threads): median latency ratio ours/Timer, "
               "bar: within ±{tol:.0%}",
    "torchvision": "resnet_impl vs torchvision ({model}, same weights, interleaved): latency ratio ours/torchvision, "
                   "bar: 1.00 ± {tol:.2f}",
}


def _title(check: str, doc: dict) -> str:
    s = doc["settings"]
    return TITLES[check].format(tol=s["tolerance"], model=s["model"])


def rich_table(check: str, rows: list[dict], doc: dict):
    from rich import box
    from rich.table import Table

    from rich.console import Group
    from rich.text import Text

    notes = _notes(rows)
    views = _views(check, notes)
    t = Table(title=_title(check, doc), box=box.SIMPLE_HEAVY)
    for head, _ in views:
        t.add_column(head, justify="left" if head in ("path", "case", "layout", "precision", "compile", "verdict")
                     else "right")
    style = {"pass": "green", "fail": "bold red", "error": "red", "skipped": "dim"}
    for r in rows:
        cells = [cell(r) for _, cell in views]
        key = r.get("verdict") if r.get("status") == "ok" else r.get("status")
        cells[-1] = f"[{style.get(key, '')}]{cells[-1]}[/]"
        t.add_row(*cells)
    return Group(t, *[Text(f"  note {i}: {text}", style="dim") for text, i in notes.items()])


def markdown(doc: dict) -> str:
    env, s = doc["environment"], doc["settings"]
    la = doc.get("load_average", {})
    lines = [
        "# resnet-bench validate", "",
        f"Command: `{doc['command']}`", "",
        f"Machine: {env.get('device_name')} ({env.get('device')}), {env.get('cpu_count')} CPUs, "
        f"threads {s['threads']}; torch {env.get('torch')}, torchvision {env.get('torchvision')}, "
        f"CUDA {env.get('cuda') or '-'}, Python {env.get('python')}; commit {env.get('git_commit')}; "
        f"{env.get('time_utc')}", "",
        f"Load average (1/5/15 min) at start: {_load(la.get('start'))}; at end: {_load(la.get('end'))}. "
        f"Wall time {doc.get('wall_s', 0):.0f} s.", "",
        *[f"Warning: {w}\n" for w in doc.get("warnings", [])],
        f"Rounds: {s['rounds']} per side, interleaved (A B, B A, ...), {s['round_time_s']:g} s each, after a "
        f"warm-up until steady (at most {s['warmup_s']:g} s). ms = median of a side's round medians; ratio = "
        f"median of the paired round ratios ours_i/ref_i (ratio of the two medians in the CSV as "
        f"ratio_of_medians); CI = {CONFIDENCE:.0%} bootstrap over rounds, pairs kept; spread = IQR/median of "
        f"a side's round medians. Verdict: pass when |ratio - 1| <= {s['tolerance']:g}.", "",
    ]
    for check in CHECKS:
        rows = doc["checks"].get(check)
        if rows is None:
            continue
        notes = _notes(rows)
        views = _views(check, notes)
        lines += [f"## {check}", "", _title(check, doc), "",
                  "| " + " | ".join(h for h, _ in views) + " |",
                  "|" + "|".join("---" for _ in views) + "|"]
        for r in rows:
            lines.append("| " + " | ".join(cell(r).replace("|", "\\|") for _, cell in views) + " |")
        lines.append("")
        lines += [f"- note {i}: {text}" for text, i in notes.items()]
        if notes:
            lines.append("")
    lines.append(f"Result: {'PASS' if doc['passed'] else 'FAIL'}")
    for check in CHECKS:
        lines += [f"- {check} {_row_label(r)}: {_fail_reason(r)}" for r in failed(doc["checks"].get(check) or [])]
    return "\n".join(lines) + "\n"


def _load(v) -> str:
    return " / ".join(f"{x:.2f}" for x in v) if v else "-"


def csv_text(rows: list[dict], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: ("" if r.get(c) is None else r.get(c)) for c in columns})
    return buf.getvalue()


CSV_COLUMNS = {"harness": HARNESS_COLUMNS, "torchvision": TORCHVISION_COLUMNS}


def write_outputs(out: Path, doc: dict) -> list[Path]:
    """Write validation.json/.md and one CSV per check run; a CSV of a check not run this time
    is removed so the directory describes one run. Other files (README.md) are left alone."""
    from bench.results import json_safe

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for check in CHECKS:
        p = out / f"{check}.csv"
        if check in doc["checks"]:
            _write(p, csv_text(doc["checks"][check], CSV_COLUMNS[check]))
            written.append(p)
        else:
            p.unlink(missing_ok=True)
    _write(out / "validation.json", json.dumps(json_safe(doc), indent=1) + "\n")
    _write(out / "validation.md", markdown(doc))
    return written + [out / "validation.json", out / "validation.md"]


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# ================================================================ CLI
def _check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create --out directory {out}: {e.strerror or e}") from None
    if not os.access(out, os.W_OK):
        raise UserError(f"cannot write to --out directory {out}")


def parse_args_to_plan(args) -> tuple[tuple[str, ...], Settings, list, Path]:
    """Validate every flag before anything is measured (UserError -> one line, exit 2)."""
    from bench import cases as C

    checks = C.parse_choices(args.check, "check", CHECKS)
    if args.rounds < MIN_ROUNDS:
        raise UserError(f"--rounds must be an integer >= {MIN_ROUNDS} (rounds per side), got {args.rounds}")
    if not (math.isfinite(args.round_time) and args.round_time > 0):
        raise UserError(f"--round-time must be a positive number of seconds, got {args.round_time:g}")
    if not (math.isfinite(args.warmup_time) and args.warmup_time >= 0):
        raise UserError(f"--warmup-time must be a number of seconds >= 0, got {args.warmup_time:g}")
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads must be a positive integer, got {args.threads}")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be a positive integer, got {args.batch_size}")
    if args.image_size < C.MIN_IMAGE_SIZE:
        raise UserError(f"--image-size must be at least {C.MIN_IMAGE_SIZE} (the network's total stride), "
                        f"got {args.image_size}")
    names = C.expand_models(args.model)
    if len(names) != 1:
        raise UserError(f"--model takes one name, got {args.model!r} ({len(names)} matches)")
    name = names[0]
    if "torchvision" in checks and name not in torchvision_names():
        raise UserError(f"--model {name} has no torchvision counterpart for --check torchvision; "
                        "try resnet18/34/50/101/152, resnext50_32x4d, wide_resnet50_2, ...")
    device = C.resolve_device(args.device)
    layouts = C.parse_choices(args.layouts, "layout", C.LAYOUTS) if args.layouts else None
    precisions = C.parse_choices(args.precisions, "precision", C.PRECISIONS) if args.precisions else None
    compiles = C.parse_choices(args.compile, "compile mode", C.COMPILE_MODES) if args.compile else None
    plan = mode_list(device, layouts, precisions, compiles)
    out = Path(args.out)
    _check_out_dir(out)
    import torch

    s = Settings(model=name, device=device, threads=args.threads or torch.get_num_threads(),
                 batch_size=args.batch_size, image_size=args.image_size, rounds=args.rounds,
                 round_time_s=args.round_time, warmup_s=args.warmup_time,
                 runner_path=not args.no_runner_path)
    return checks, s, plan, out


def cmd_validate(args) -> int:
    from bench import env as E
    from bench import render

    checks, s, plan, out = parse_args_to_plan(args)
    argv = args.argv if args.argv is not None else sys.argv[1:]
    doc: dict[str, Any] = {
        "format": FORMAT, "version": 1,
        "command": shlex.join(["resnet-bench"] + list(argv)),
        "environment": E.collect(s.device, s.threads),
        "load_average": {"start": list(os.getloadavg())},
        "settings": asdict(s), "checks": {},
    }
    warning = oversubscription_warning(s.threads, os.cpu_count(), os.getloadavg()[0]) if s.device == "cpu" else None
    doc["warnings"] = [warning] if warning else []
    doc["settings"]["modes"] = [list(m) for m in plan] if "torchvision" in checks else None
    err = render.console(stderr=True)
    for w in doc["warnings"]:
        err.print(f"[yellow]warning: {w}[/]", highlight=False)
    n_rounds = 0
    if "harness" in checks:
        n_rounds += 2 * s.rounds * (2 if s.runner_path else 1)
    if "torchvision" in checks:
        n_rounds += 2 * s.rounds * sum(1 for m in plan if not skip_reason(s, m))

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=err, transient=True, disable=args.quiet)
    task = progress.add_task("validate", total=n_rounds)

    def on_round(msg: str) -> None:
        progress.update(task, description=msg)
        progress.advance(task)

    t0 = time.perf_counter()
    with progress:
        if "harness" in checks:
            doc["checks"]["harness"] = harness_check(s, on_round)
        if "torchvision" in checks:
            doc["checks"]["torchvision"] = torchvision_check(s, plan, on_round)
    doc["wall_s"] = time.perf_counter() - t0
    doc["load_average"]["end"] = list(os.getloadavg())
    bad = [r for rows in doc["checks"].values() for r in failed(rows)]
    doc["passed"] = not bad
    doc["exit_code"] = 1 if bad else 0
    files = write_outputs(out, doc)

    if args.format == "json":
        from bench.results import json_safe

        print(json.dumps(json_safe(doc)))
    else:
        con = render.console()
        for check in checks:
            con.print(rich_table(check, doc["checks"][check], doc))
        la = doc["load_average"]
        con.print(f"load average at start {_load(la['start'])}, at end {_load(la['end'])}; "
                  f"wall {doc['wall_s']:.0f} s", highlight=False)
        con.print("[green]validate: PASS[/]" if not bad else f"[bold red]validate: FAIL[/]")
        for check in checks:
            for r in failed(doc["checks"][check]):
                con.print(f"[red]  {check} {_row_label(r)}: {_fail_reason(r)}[/]", highlight=False)
    err.print(f"validation results: {', '.join(str(p) for p in files)}", highlight=False)
    return doc["exit_code"]


def add_parser(sub) -> None:
    from bench import cases as C

    p = sub.add_parser(
        "validate", help="check the harness against torch.utils.benchmark.Timer and resnet_impl against torchvision",
        description="harness: our median latency vs torch.utils.benchmark.Timer on the same step and threads "
                    "(within 3%). torchvision: resnet_impl vs torchvision's model with the same weights, in every "
                    "mode the device runs (ratio 1.00 +/- 0.03). Interleaved rounds in one process. Exit 0 all "
                    "pass, 1 a check fails, 2 bad input.")
    p.add_argument("--check", default=",".join(CHECKS), help=f"comma-separated: {', '.join(CHECKS)} (default both)")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help="registered variant (with a torchvision counterpart for --check torchvision; default %(default)s)")
    p.add_argument("--device", default="auto", help=f"{', '.join(C.DEVICES)} (default auto: cuda if available)")
    p.add_argument("--threads", type=int, help="torch threads, also passed to Timer (default: torch's)")
    p.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help="interleaved rounds per side (default %(default)s)")
    p.add_argument("--round-time", type=float, default=DEFAULT_ROUND_TIME_S,
                   help="seconds of sampling per round per side (default %(default)s)")
    p.add_argument("--warmup-time", type=float, default=DEFAULT_WARMUP_S,
                   help="warm-up seconds at most per side and mode, after the first call (default %(default)s)")
    p.add_argument("--image-size", type=int, default=224, help="input size in px (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=1, help="batch size (default %(default)s)")
    p.add_argument("--layouts", help=f"(torchvision) comma-separated: {', '.join(C.LAYOUTS)} (default both)")
    p.add_argument("--precisions", help=f"(torchvision) comma-separated: {', '.join(C.PRECISIONS)} "
                                        "(default: fp32,bf16 on CPU; all four on CUDA)")
    p.add_argument("--compile", help=f"(torchvision) comma-separated: {', '.join(C.COMPILE_MODES)} "
                                     "(default: none,default,max-autotune on CPU; all four on CUDA)")
    p.add_argument("--no-runner-path", action="store_true",
                   help="(harness) skip the CaseRunner.run vs Timer comparison (the slower one)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="output directory (default %(default)s)")
    p.add_argument("--format", choices=("table", "json"), default="table",
                   help="json: stdout holds only the JSON document")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_validate, argv=None)
