"""Rounds of `resnet-bench validate`: one side's timing of a step, interleaved with another's,
reduced to a paired ratio ours / reference with a verdict against a band.

A round is one bench.core.timing.measure call (no warm-up: each side was warmed up until steady
before round 1) sampling for ``round_time_s`` (at least ``MIN_SAMPLES_PER_ROUND`` calls), or one
``torch.utils.benchmark.Timer.blocked_autorange(min_run_time=round_time_s)``. Rounds alternate
which side goes first (bench.core.stats.interleave), each is reduced to its median, and the
comparison is bench.core.ratios.compare_paired, the paired ratio every comparison of the
harness uses: ratio = geometric mean of the paired round ratios, CI = Student's t on their logs.
The CI covers the noise *within* this process only.

Verdict: ``pass`` when |ratio - 1| <= tolerance (3%), else ``fail``: the bar is on the point
estimate. ``ci`` says whether the CI lies ``inside`` the band, ``outside`` it, or ``straddles``
an edge (then the verdict rests on noise as much as on a difference: rerun with more rounds).

Timer's ``blocked_autorange`` sizes its blocks so that timer overhead is < 0.01% of a block, so
for a step of a few ms it averages 10+ calls per block and reports the median of block means,
while ``measure`` keeps one sample per call: on a noisy machine with short steps the two
medians can differ (a block mean follows the mean, which a right-skewed distribution pulls
above the median). Page faults per call (``getrusage``) are recorded per round: an allocator
that hands memory back to the OS and takes it again makes every call fault, and how often
depends on the process's allocation history, not on the model.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.core import ratios, stats
from bench.core.timing import TimingConfig

CHECKS = ("harness", "torchvision")
TOLERANCE = 0.03  # the bar: within 3% (harness) and 1.00 +/- 0.03 (torchvision)
DEFAULT_MODEL = "resnet50"
DEFAULT_ROUNDS = 7
DEFAULT_ROUND_TIME_S = 1.0
DEFAULT_WARMUP_S = 10.0
MIN_ROUNDS = 2
MIN_SAMPLES_PER_ROUND = 3
DEFAULT_OUT = Path("results") / "validation"
FORMAT = "resnet-bench/validation"

# Columns of the two tables (CSV; the JSON rows add the raw rounds).
COMPARISON_COLUMNS = ("ours_ms", "ref_ms", "ratio", "ratio_of_medians", "ci_low", "ci_high", "ours_spread",
                      "ref_spread", "rounds", "verdict", "ci")
HARNESS_COLUMNS = ("path", "model", "device", "batch_size", "image_size", "layout", "precision", "compile",
                   "threads", "reference", "status") + COMPARISON_COLUMNS + (
                   "ours_samples", "ref_samples", "error")
TORCHVISION_COLUMNS = ("model", "reference", "device", "batch_size", "image_size", "layout", "precision",
                       "compile", "threads", "status") + COMPARISON_COLUMNS + (
                       "max_abs_diff", "ours_faults_per_call", "ref_faults_per_call", "ours_first_call_s",
                       "ref_first_call_s", "error")
CSV_COLUMNS = {"harness": HARNESS_COLUMNS, "torchvision": TORCHVISION_COLUMNS}
RAW_KEYS = ("ours_rounds_ms", "ref_rounds_ms", "ours_round_samples_ms", "ref_round_samples_ms")


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


def compare_rounds(ours: Sequence[float], ref: Sequence[float], tolerance: float = TOLERANCE) -> stats.Comparison:
    """Round medians (ms) of two interleaved sides -> the paired comparison, decided against
    the band [1 - tolerance, 1 + tolerance]: verdict pass/fail, reason = where the CI lies."""
    if not (0 <= tolerance < 1):
        raise ValueError(f"compare_rounds: tolerance must be in [0, 1), got {tolerance!r}")
    c = ratios.compare_paired(ours, ref)
    lo, hi, eps = 1.0 - tolerance, 1.0 + tolerance, 1e-12  # 1.03 computed as 103/100 must pass
    verdict = "pass" if lo - eps <= c.ratio <= hi + eps else "fail"
    if c.ci_low >= lo - eps and c.ci_high <= hi + eps:
        where = "inside"
    elif c.ci_high < lo or c.ci_low > hi:
        where = "outside"
    else:
        where = "straddles"
    return c.decided(verdict, where)


@dataclass(frozen=True)
class Round:
    median_ms: float
    samples_ms: tuple[float, ...]
    faults_per_call: float | None = None  # minor page faults of the process per call (Linux/macOS)


RoundFn = Callable[[], Round]


def _minor_faults() -> int | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def round_config(round_time_s: float, min_samples: int = MIN_SAMPLES_PER_ROUND) -> TimingConfig:
    """TimingConfig of one round: no warm-up (done before round 1), sample for round_time_s."""
    return TimingConfig(min_samples=min_samples, max_samples=100_000, min_time_s=0.0,
                        max_time_s=round_time_s, target_rel_ci=0.0, warmup_min_iters=0, warmup_max_s=0.0)


def measure_round(step: Callable[[], object], device: str, round_time_s: float) -> RoundFn:
    """A round of ours: bench.core.timing.measure on `step` (its first call is not a sample)."""
    from bench.core import timing

    cfg = round_config(round_time_s)

    def run() -> Round:
        f0 = _minor_faults()
        m = timing.measure(step, device=device, config=cfg)
        f1 = _minor_faults()
        per_call = None if f0 is None or f1 is None else (f1 - f0) / (m.n + 1)  # + the first call
        return Round(m.median_ms, m.samples_ms, per_call)

    return run


def timer_round(step: Callable[[], object], threads: int, round_time_s: float | Callable[[], float]) -> RoundFn:
    """A round of torch.utils.benchmark.Timer on the same `step`, with the same thread count
    (Timer's default is 1 thread, whatever torch uses). `round_time_s` may be a callable,
    read at the start of each round."""
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
    """`rounds` rounds of each side, alternating which goes first (bench.core.stats.interleave)."""
    step = (lambda r, side, s: on_round(f"round {r + 1}/{rounds} {side}")) if on_round else None
    out = stats.interleave({"ours": ours, "ref": ref}, rounds, on_step=step)
    return out["ours"], out["ref"]


def comparison_row(a: list[Round], b: list[Round], tolerance: float = TOLERANCE) -> dict[str, Any]:
    """Columns of COMPARISON_COLUMNS plus the raw rounds (RAW_KEYS) and page faults per call."""
    c = compare_rounds([r.median_ms for r in a], [r.median_ms for r in b], tolerance)
    row = {"ours_ms": c.cand_median_ms, "ref_ms": c.base_median_ms, "ratio": c.ratio,
           "ratio_of_medians": c.ratio_of_medians, "ci_low": c.ci_low, "ci_high": c.ci_high,
           "ours_spread": c.cand_spread, "ref_spread": c.base_spread, "rounds": c.n_cand,
           "verdict": c.verdict, "ci": c.reason}
    row.update(ours_rounds_ms=[r.median_ms for r in a], ref_rounds_ms=[r.median_ms for r in b],
               ours_round_samples_ms=[list(r.samples_ms) for r in a],
               ref_round_samples_ms=[list(r.samples_ms) for r in b])
    for side, rounds in (("ours", a), ("ref", b)):
        faults = [r.faults_per_call for r in rounds if r.faults_per_call is not None]
        row[f"{side}_faults_per_call"] = float(statistics.median(faults)) if faults else None
    return row


def warm_up(step: Callable[[], object], device: str, max_s: float):
    """Call `step` until its time is steady (bench.core.timing's rule) or max_s; returns the
    Measurement (first_call_s = the first call: compile time for compiled models)."""
    from bench.core.timing import measure

    cfg = TimingConfig(min_samples=1, min_time_s=0.0, max_time_s=1e-6, target_rel_ci=0.0, warmup_max_s=max_s)
    return measure(step, device=device, config=cfg)


def oversubscription_warning(threads: int, cpu_count: int | None, load1: float) -> str | None:
    """A warning when other processes already keep the cores busy and we add several threads:
    an OpenMP parallel region then waits at its barrier for a thread the OS has descheduled,
    and multi-threaded CPU timings become bimodal and many times slower."""
    cpus = cpu_count or 1
    if threads > 1 and load1 > cpus - threads + 0.5:
        return (f"load average {load1:.2f} on {cpus} CPUs with {threads} threads: the cores are shared, and "
                f"multi-threaded CPU timings are then bimodal and up to 10-100x slower (OpenMP barriers wait "
                f"on descheduled threads); consider --threads 1")
    return None
