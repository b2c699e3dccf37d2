"""The speed gate: is a candidate's median latency significantly slower than a base's?

The gate is one user of the harness's measuring engine (bench.execute.rounds): with a git base
both trees are *sides* of the same rounds, each round measuring every case once on each side
in a fresh worker process of that side's tree, the sides' order alternating from round to
round. The unit of comparison is the round: on a shared machine the samples within one
process are correlated (CPU placement, memory layout, a neighbour's job), so pooling thousands
of samples as if independent makes tiny process-level differences look significant; and the
two sides of one round ran back to back, so a change of the machine between rounds cancels in
their ratio. Each round is reduced to its 10th percentile (:data:`ROUND_QUANTILE`) and the
comparison is the paired ratio every comparison of the harness uses
(bench.core.ratios.compare_paired): ratio = geometric mean of the per-round ratios candidate /
base, CI = Student's t on their logs, p = the one-sided paired t test.

Why the 10th percentile, not the median: the gate asks whether the code's own cost changed,
and on a shared machine interference only ever adds time. Measured on this project's 2-core
VM (12 alternating processes of resnet18 at 64 px, results/speed_gate/README.md): the
processes' medians scattered 3.7% (sd of log), their 10th percentiles 2.5%, their minimums
2.4%; a low quantile is as stable as the minimum without resting on one lucky call. (`run`
keeps the median: its latencies are what a user sees, and its speedups are their ratios.) Against saved samples (an earlier run, not interleaved with this one) nothing
pairs: the unpaired statistics of bench.core.stats.compare_unpaired (Hodges-Lehmann ratio,
inverted Mann-Whitney CI) on per-process medians, or on raw samples pooled per side when a
side has fewer than 3 processes, which is only as trustworthy as the two runs are comparable.

Decision (:func:`decide`): **regression when p < alpha AND the CI's upper bound > 1 +
threshold**: significantly slower, and a slowdown of at least the threshold is not ruled out.
A slowdown shown to be smaller than the threshold passes as "slower-within-threshold"; a
difference that is not significant passes. The rule catches a true slowdown *of* the
threshold (a strict "CI lower bound > 1 + threshold" would catch one at most half of the
time). Under no change the rounds of both sides are exchangeable, so the round-level test is
exact: the false-alarm rate is at most alpha before the CI condition lowers it further.
results/speed_gate/ records its detection and false-alarm rates.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.core import stats
from bench.core.case import Case
from bench.errors import UserError
from bench.execute.base import RunSettings

SPEED_FORMAT = "resnet-bench/speed-gate"
DEFAULT_THRESHOLD = 0.05
DEFAULT_ALPHA = 0.05
DEFAULT_ROUNDS = 7
#: Each round's statistic the gate compares (see the module doc).
ROUND_QUANTILE = 10
DEFAULT_ROUND_TIME_S = 0.5
DEFAULT_WARMUP_S = 1.0
RULE = ("regression iff p < alpha and the ratio's 95% CI upper bound > 1 + threshold; p and CI from the "
        "paired t test over rounds (each round's 10th percentile) against a git base, from Mann-Whitney "
        "against saved samples")


def decide(c: stats.Comparison, threshold: float, alpha: float) -> stats.Comparison:
    """The gate's verdict on a comparison: regression, slower-within-threshold, faster or no-change."""
    limit = 1 + threshold
    if c.p_slower < alpha:
        if c.ci_high > limit:
            return c.decided("regression", f"significantly slower (p={c.p_slower:.2g} < {alpha:g}) and a slowdown "
                                           f"of {threshold:.0%} or more is not ruled out (CI upper {c.ci_high:.3f} "
                                           f"> {limit:.3f})")
        return c.decided("slower-within-threshold", f"significantly slower (p={c.p_slower:.2g}) but by less than "
                                                    f"{threshold:.0%} (CI upper {c.ci_high:.3f} <= {limit:.3f})")
    if c.p_faster < alpha:
        return c.decided("faster", f"significantly faster (p={c.p_faster:.2g} < {alpha:g})")
    return c.decided("no-change", f"no significant slowdown (p={c.p_slower:.2g} >= {alpha:g})")


def compare(base_rounds: Sequence[Sequence[float] | None], cand_rounds: Sequence[Sequence[float] | None], *,
            threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA, paired: bool = True) -> stats.Comparison:
    """Per-round sample lists of the two sides -> the decided comparison: `paired` (both sides
    measured in the same rounds; None where a round measured nothing on a side) round by round
    over the rounds both measured, when there are at least two; else unpaired (a saved
    baseline)."""
    from bench.core import ratios

    if paired and len(base_rounds) == len(cand_rounds):
        pairs = [(b, c) for b, c in zip(base_rounds, cand_rounds) if b and c]
        if len(pairs) >= 2:
            base_ms = [round_value(b) for b, _ in pairs]
            cand_ms = [round_value(c) for _, c in pairs]
            return decide(ratios.compare_paired(cand_ms, base_ms), threshold, alpha)
    return decide(stats.compare_unpaired([b for b in base_rounds if b], [c for c in cand_rounds if c]),
                  threshold, alpha)


def round_value(samples: Sequence[float]) -> float:
    """A round's value: the :data:`ROUND_QUANTILE`-th percentile of its samples (ms)."""
    return float(np.percentile(np.asarray(samples, dtype=float), ROUND_QUANTILE))


def gate_settings(device: str, *, threads: int | None = None, round_time_s: float | None = None,
                  min_samples: int | None = None, min_time_s: float | None = None,
                  max_warmup_s: float | None = None) -> RunSettings:
    """Per-process timing: a fixed sampling time (no early precision stop, so both sides get the
    same budget), a short warm-up, no profiling, no output check, no memory estimate. One thread on CPU unless
    asked: an oversubscribed multi-threaded CPU process degrades by orders of magnitude (OpenMP
    barriers wait on a descheduled thread)."""
    from bench.core.timing import TimingConfig

    round_time = round_time_s if round_time_s is not None else DEFAULT_ROUND_TIME_S
    try:
        timing = TimingConfig(
            min_samples=min_samples if min_samples is not None else 10,
            max_samples=1_000_000,
            min_time_s=min_time_s if min_time_s is not None else min(round_time, DEFAULT_ROUND_TIME_S),
            max_time_s=round_time,
            target_rel_ci=0.0,
            warmup_max_s=max_warmup_s if max_warmup_s is not None else DEFAULT_WARMUP_S,
            warmup_min_iters=3,
        )
    except ValueError as e:
        raise UserError(str(e)) from None
    if threads is None and device == "cpu":
        threads = 1
    # no memory estimate either: a gate case is small, and the estimate costs ~1.3 s per process
    return RunSettings(timing=timing, threads=threads, isolate=True, check_outputs=False, profile=False,
                       memory_check=False)


@dataclass
class CaseSamples:
    case: Case
    base: list[list[float] | None] = field(default_factory=list)  # samples per round (None: none measured)
    cand: list[list[float] | None] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def measure_rounds(cases: list[Case], settings: RunSettings, rounds: int, sides: dict[str, str | None],
                   log: Callable[[str], None]) -> dict[str, CaseSamples]:
    """`rounds` rounds of the engine (bench.execute.rounds.run_rounds), every case each round on
    every side of `sides` ({"base": code_root, "cand": code_root}, None = this installation),
    each side's cases in its own worker process(es)."""
    from bench.execute.local import LocalExecutor
    from bench.execute.rounds import RoundsConfig, run_rounds

    out = {c.key(): CaseSamples(c) for c in cases}
    for cs in out.values():
        for name in sides:
            getattr(cs, name).extend([None] * rounds)

    def on_record(side: str, row: dict) -> None:
        cs = out.get(Case.from_row(row).key())
        if cs is None:
            return
        r = int(row["round"])
        if row.get("status") == "ok" and row.get("samples_ms"):
            getattr(cs, side)[r - 1] = list(row["samples_ms"])
        else:
            cs.errors.append(f"{side} round {r}: {row.get('status')}: {row.get('error') or 'no samples'}")

    started: dict[tuple[str, int], float] = {}

    def on_start(side: str, r: int, case: Case) -> None:
        if (side, r) not in started:
            started[(side, r)] = time.perf_counter()
            log(f"round {r}/{rounds} {side}")

    executors = {name: LocalExecutor(code_root=root) for name, root in sides.items()}
    # every round measures every case on both sides: no early stop (equal rounds keep the test exact)
    config = RoundsConfig(max_rounds=rounds, min_rounds=rounds)
    # the gate's settings time only already; the same payload every round, so a base tree of an
    # older revision never sees a setting it does not know
    run_rounds(executors, cases, settings, config, on_record, on_start=on_start, settings_for=lambda s, r: s)
    return out


def baseline_samples(path: str, cases: list[Case], env: dict, log: Callable[[str], None]) -> dict[str, list[list[float]]]:
    """Raw samples per asked case from saved results (ours or pytest-benchmark JSON)."""
    from bench.store.load import load_results

    rs = load_results(path)
    found: dict[str, list[list[float]]] = {}
    for row in rs.rows:
        if row.get("status", "ok") != "ok":
            continue
        try:
            key = Case.from_row(row).key()
        except (KeyError, TypeError, ValueError):
            continue
        samples = row.get("samples_ms")
        if isinstance(samples, list) and samples:
            found.setdefault(key, []).append([float(s) for s in samples])
    out = {}
    for c in cases:
        if c.key() not in found:
            have = sorted(found) or ["none with raw samples"]
            raise UserError(f"--baseline {path} has no raw samples for {c.label()}; it has: "
                            + "; ".join(h.replace("|", " ") for h in have[:5])
                            + (" (a CSV keeps no samples: use results.json/rows.jsonl or pytest-benchmark JSON)"
                               if str(path).endswith(".csv") else ""))
        out[c.key()] = found[c.key()]
    base_env = rs.env or {}
    base_threads = {r.get("threads") for r in rs.rows if r.get("threads") is not None} or {base_env.get("threads")}
    if None not in base_threads and env.get("threads") is not None and {int(t) for t in base_threads} != {int(env["threads"])}:
        log(f"warning: baseline measured with {sorted(base_threads)} thread(s), this gate with {env['threads']}: "
            "pass --threads to match")
    for k in ("device_name", "torch"):
        if base_env.get(k) and env.get(k) and str(base_env[k]) != str(env[k]):
            log(f"warning: baseline {k} is {base_env[k]!r}, this machine's is {env[k]!r}: "
                "timings from another machine class or software are not comparable")
        elif not base_env.get(k):
            log(f"warning: baseline records no {k}; cannot confirm it comes from this machine class")
    return out


def judge(base, cand, errors, threshold: float, alpha: float, paired: bool = True) -> dict[str, Any]:
    """One case's entry: verdict, reason and the comparison (None when a side has no samples)."""
    if not any(base or []) or not any(cand or []):
        why = "; ".join(errors[:2]) or "no samples"
        return {"verdict": "error", "reason": f"could not measure: {why}", "comparison": None}
    c = compare(base, cand, threshold=threshold, alpha=alpha, paired=paired)
    return {"verdict": c.verdict, "reason": c.reason, "comparison": c.as_dict()}


def exit_code(entries: list[dict]) -> int:
    """1 on any regression, 2 when a case could not be measured, else 0."""
    if any(r["verdict"] == "regression" for r in entries):
        return 1
    if any(r["verdict"] == "error" for r in entries):
        return 2
    return 0


def summary_line(entries: list[dict], code: int, report_only: bool, wall_s: float) -> str:
    n_reg = sum(r["verdict"] == "regression" for r in entries)
    n_err = sum(r["verdict"] == "error" for r in entries)
    what = {0: "PASS", 1: f"FAIL ({n_reg} regression(s))", 2: f"ERROR ({n_err} case(s) not measured)"}[code]
    return f"speed gate: {what} in {wall_s:.0f} s" + (" (report only: exit 0)" if report_only else "")


def run_gate(cases: list[Case], settings: RunSettings, *, rounds: int, threshold: float, alpha: float,
             env: dict, command: str, base_ref: str | None = None, baseline: str | None = None,
             log: Callable[[str], None] = lambda msg: None) -> dict[str, Any]:
    """Measure and decide; returns the gate document (format SPEED_FORMAT): settings, both
    sides' raw samples per round, and every case's verdict."""
    from bench.core.env import git_commit
    from bench.gates import git

    doc: dict[str, Any] = {
        "format": SPEED_FORMAT, "version": 2, "command": command,
        "time_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "environment": env, "threshold": threshold, "alpha": alpha, "confidence": stats.CONFIDENCE,
        "rule": RULE, "settings": settings.to_dict(), "rounds": rounds,
    }
    t0 = time.perf_counter()
    if base_ref:
        repo = git.git_toplevel(Path.cwd())
        commit = git.resolve_ref(repo, base_ref)
        doc["base"] = {"kind": "git", "ref": base_ref, "commit": commit}
        doc["candidate"] = {"kind": "working tree", "path": str(repo), "commit": git_commit(repo)}
        log(f"speed gate: base {base_ref} ({commit[:12]}) vs working tree {repo}, "
            f"{rounds} interleaved rounds x {len(cases)} case(s)")
        with git.Worktree(repo, commit) as base_root:
            measured = measure_rounds(cases, settings, rounds, {"base": str(base_root), "cand": str(repo)}, log)
    else:
        base = baseline_samples(baseline, cases, env, log)
        doc["base"] = {"kind": "saved", "path": str(baseline)}
        doc["candidate"] = {"kind": "this checkout", "path": str(Path(__file__).resolve().parents[2]),
                            "commit": git_commit()}
        log(f"speed gate: saved baseline {baseline} vs this checkout, {rounds} round(s)")
        measured = measure_rounds(cases, settings, rounds, {"cand": None}, log)
        for k, cs in measured.items():
            cs.base = base[k]
            cs.cand = [c for c in cs.cand if c]  # unpaired against a saved run
    doc["wall_s"] = time.perf_counter() - t0
    doc["cases"] = []
    for cs in measured.values():
        entry = {"case": cs.case.as_dict(), "label": cs.case.label(), "base_rounds": cs.base,
                 "candidate_rounds": cs.cand, "errors": cs.errors}
        entry.update(judge(cs.base, cs.cand, cs.errors, threshold, alpha, paired=base_ref is not None))
        doc["cases"].append(entry)
    return doc


def recheck(doc: Any, threshold: float, alpha: float, source: str = "") -> list[dict]:
    """Re-decide a saved gate document from its raw samples (with this threshold and alpha)."""
    if not isinstance(doc, dict) or doc.get("format") != SPEED_FORMAT or not isinstance(doc.get("cases"), list):
        raise UserError(f"--recheck: {source} is not a speed-gate result (written by check --speed --out)")
    paired = isinstance(doc.get("base"), dict) and doc["base"].get("kind") == "git" and doc.get("version", 1) >= 2
    out = []
    for e in doc["cases"]:
        try:
            r = {"label": e["label"]}
            r.update(judge(e["base_rounds"], e["candidate_rounds"], e.get("errors", []), threshold, alpha,
                           paired=paired))
        except (KeyError, TypeError, ValueError) as err:
            raise UserError(f"--recheck: malformed case in {source}: {err}") from None
        out.append(r)
    return out
