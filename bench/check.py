"""`resnet-bench check`: performance regression gates for CI.

Two gates, one command:

``check --exact``: params, MACs, FLOPs and activations of every registered variant at 224 px
    against the committed table ``results/reference_counts.csv``. Any difference (a changed
    value, a variant added or removed) fails (exit 1) with one line per difference;
    ``--update`` rewrites the table deliberately.

``check --speed``: the median latency of a candidate against a baseline on the asked cases,
    with a statistical decision (see `decide`). Exit 1 only when a slowdown beyond
    ``--threshold`` is statistically significant; 0 otherwise; 2 on bad input.
    ``--report-only`` prints the same verdicts and always exits 0.

How the exact gate stays fast and exact
    The table's numbers are fvcore's and FlopCounterMode's real counts (``bench.profile``,
    eager fp32 on CPU, batch 1): ``--update`` and ``--full`` run that profiler, which executes
    the network three times at 224 px (minutes for the whole registry on 2 cores). The default
    check instead builds each model on the **meta device** (no memory, no arithmetic) and runs
    one forward under two dispatch modes at once: ``FlopCounterMode`` (its FLOP count is
    shape-only, so identical on meta and CPU) and a recorder that hashes every aten call with
    its argument shapes, dtypes and non-tensor arguments (strides, paddings, groups, eps...)
    into ``trace_sha256``. ``params`` is recounted directly. fvcore's counts (``macs``,
    ``macs_all``, ``activations``) are pure functions of the traced operators and their shapes,
    so an unchanged trace means unchanged fvcore counts; a variant whose trace changed (or that
    is new) is re-profiled with fvcore and all its values compared. A trace that changed while
    every count stayed equal (e.g. a new torch names an op differently) passes with a note.

Speed gate: which statistics, and why
    The unit of comparison is one measuring **process** (a "round"): on a shared machine the
    samples within one process are correlated (CPU placement, memory layout, a neighbour's
    job), so pooling thousands of samples and testing them as if independent makes tiny
    process-level differences look significant. With ``--base-ref`` both sides run in
    ``--rounds`` fresh processes each, interleaved base, candidate, candidate, base, ... (the
    first side alternates), so slow drifts of the machine hit both sides alike. Each round is
    reduced to its median latency, and the comparison uses the per-round medians:

    * **p** = one-sided Mann-Whitney U (``scipy.stats.mannwhitneyu``, alternative "greater":
      candidate rounds slower than base rounds). Rank-based: one bad round moves p by one rank,
      not by its size.
    * **ratio** = Hodges-Lehmann estimate of the shift of log latency, exp(median over all
      pairs of log(candidate round) - log(base round)): the estimator that belongs to the
      Mann-Whitney test, robust to an outlier round, and a ratio (scale-free) after exp.
    * **CI** = the 95% confidence interval obtained by inverting the same Mann-Whitney test
      (order statistics of the pairwise differences at the U distribution's critical rank):
      distribution-free, exact coverage under a shift model, and consistent with p (a p below
      0.025 goes with a lower bound above 1). A bootstrap of the ratio of medians was the
      alternative; with 6-10 rounds a bootstrap's coverage is poor and it needs random seeds.

    With ``--baseline`` (saved samples of one earlier run) the base side has a single process,
    so the unit falls back to raw samples (pooled per side): the same estimator and test on
    samples, which is only as trustworthy as the two runs are comparable (same machine class;
    the command warns when device or torch differ). The pooled-sample Mann-Whitney p is also
    reported for ``--base-ref`` (asv's test), for information only.

    Why these defaults (8 rounds per side, 0.5 s of samples per process, alpha 0.05, 1 thread
    on CPU): a fresh process costs ~2 s before its first sample (importing torch), so rounds
    are the expensive resource; 8 + 8 processes take ~45 s here. Under no change the rounds of
    both sides are exchangeable (same code, alternating order), so the round-level Mann-Whitney
    test is exact: the false-alarm rate is at most alpha before the CI condition lowers it
    further, and alpha 0.05 keeps the power to see a 5% slowdown with 8 + 8 rounds (with
    alpha 0.01 a simulation with heavy-tailed round noise of 2.5% caught only ~55% of them).
    One thread: an oversubscribed multi-threaded CPU process degrades by orders of magnitude
    (see `gate_settings`).

    Decision (`decide`): **fail when p < alpha AND the CI's upper bound > 1 + threshold**:
    the candidate is significantly slower than base, and the measurement cannot rule out a
    slowdown of at least the threshold. A slowdown shown to be smaller than the threshold (CI
    entirely below 1 + threshold) passes as "slower, within threshold"; a difference that is
    not significant passes, whatever its point estimate. The rule is built to catch a true
    slowdown *of* the threshold (with a strict "CI lower bound > 1 + threshold" a true 5%
    slowdown would be caught at most half of the time), while a false alarm needs both a
    spurious significant rank shift and a CI reaching the threshold. results/speed_gate/
    measures its detection and false-alarm rates on this machine.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import hashlib
import io
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from bench.errors import UserError

REPO = Path(__file__).resolve().parent.parent
REFERENCE_TABLE = REPO / "results" / "reference_counts.csv"
EXACT_IMAGE_SIZE = 224
# Table columns: the counts (units in bench.profile's docstring), then provenance.
COUNT_COLUMNS = ("params", "macs", "flops", "macs_all", "activations", "flop_counter_flops")
FAST_COLUMNS = ("params", "flop_counter_flops")  # recounted on the meta device every check
TABLE_COLUMNS = ("model", "image_size") + COUNT_COLUMNS + ("trace_sha256",)

SPEED_FORMAT = "resnet-bench/speed-gate"
DEFAULT_THRESHOLD = 0.05
DEFAULT_ALPHA = 0.05
DEFAULT_ROUNDS = 8
DEFAULT_ROUND_TIME_S = 0.5
DEFAULT_WARMUP_S = 1.0
CONFIDENCE = 0.95
MIN_ROUNDS_PER_SIDE = 3  # fewer processes on a side: compare raw samples instead
SPEED_DEFAULTS = {"models": "resnet18", "batch_sizes": "1", "image_sizes": "64", "layouts": "contiguous",
                  "precisions": "fp32", "compile": "none", "workloads": "infer"}
CASE_FIELDS = ("model", "device", "workload", "batch_size", "image_size", "layout", "precision", "compile")


# ================================================================ exact gate
def _arg_signature(value: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return ("tensor", tuple(value.shape), str(value.dtype))
    if isinstance(value, (list, tuple)):
        return tuple(_arg_signature(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), _arg_signature(v)) for k, v in value.items()))
    if isinstance(value, float):
        return float.hex(value)
    return repr(value)


def fast_counts(name: str, image_size: int = EXACT_IMAGE_SIZE) -> dict[str, Any]:
    """params, FlopCounterMode FLOPs and the operator-trace hash of `name`, on the meta device
    (eval mode, no_grad, batch 1). Takes well under a second per variant."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import FlopCounterMode

    import resnet_impl

    class _Recorder(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.sha = hashlib.sha256()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            sig = (str(func), _arg_signature(args), _arg_signature(kwargs or {}), _arg_signature(out))
            self.sha.update(repr(sig).encode())
            return out

    with torch.device("meta"):
        model = resnet_impl.create_model(name)
    model.eval()
    params = sum(p.numel() for p in model.parameters())
    first_conv = next((m for m in model.modules() if isinstance(m, torch.nn.Conv2d)), None)
    channels = first_conv.in_channels if first_conv is not None else 3
    x = torch.zeros(1, channels, image_size, image_size, device="meta")
    rec = _Recorder()
    with torch.no_grad(), FlopCounterMode(display=False) as counter, rec:
        model(x)
    return {"model": name, "image_size": image_size, "params": int(params),
            "flop_counter_flops": int(counter.get_total_flops()), "trace_sha256": rec.sha.hexdigest()}


def full_counts(name: str, image_size: int = EXACT_IMAGE_SIZE) -> dict[str, Any]:
    """Every table column: fvcore/FlopCounterMode counts from bench.profile (a real CPU
    forward) plus the meta-device trace hash. The meta FLOP count must equal the CPU one."""
    from bench.profile import profile_name

    fast = fast_counts(name, image_size)
    prof = profile_name(name, image_size).as_row()
    if prof["params"] != fast["params"] or prof["flop_counter_flops"] != fast["flop_counter_flops"]:
        raise RuntimeError(f"{name}: meta-device counts {fast} differ from the CPU profile's; "
                           "the fast exact check cannot be trusted for this model")
    row = {k: int(prof[k]) for k in COUNT_COLUMNS}
    return {"model": name, "image_size": image_size, **row, "trace_sha256": fast["trace_sha256"]}


def read_table(path: Path) -> dict[str, dict[str, Any]]:
    """The reference table as {model: row}; a missing or malformed file is a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no reference table at {path}; create it with: resnet-bench check --exact --update")
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(line for line in f if not line.startswith("#"))
            missing = [c for c in TABLE_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise UserError(f"{path} lacks column(s) {', '.join(missing)}; regenerate it with "
                                "resnet-bench check --exact --update")
            table = {}
            for i, r in enumerate(reader, start=2):
                try:
                    row = {"model": r["model"], "trace_sha256": r["trace_sha256"],
                           "image_size": int(r["image_size"]), **{c: int(r[c]) for c in COUNT_COLUMNS}}
                except (TypeError, ValueError):
                    raise UserError(f"{path}: line {i} has a non-integer count; regenerate the table "
                                    "with resnet-bench check --exact --update") from None
                table[row["model"]] = row
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"cannot read reference table {path}: {e}") from None
    return table


def write_table(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    import torch

    try:
        import fvcore
        fv = getattr(fvcore, "__version__", "?")
    except ImportError:  # pragma: no cover
        fv = "?"
    buf = io.StringIO()
    buf.write("# Reference counts per variant, batch 1 (see bench/profile.py for units): written by\n"
              "# `resnet-bench check --exact --update`, checked by `resnet-bench check --exact`.\n"
              f"# Counted with torch {torch.__version__}, fvcore {fv}.\n")
    w = csv.DictWriter(buf, fieldnames=list(TABLE_COLUMNS), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: r[c] for c in TABLE_COLUMNS})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(buf.getvalue())
    os.replace(tmp, path)


def _fmt_change(old: int, new: int) -> str:
    d = new - old
    rel = f", {d / old:+.3%}" if old else ""
    return f"{old:,} -> {new:,} ({d:+,}{rel})"


@dataclass
class ExactResult:
    lines: list[str]  # one per difference
    notes: list[str]  # informational (trace changed, counts equal)
    checked: int
    recounted: list[str]

    @property
    def ok(self) -> bool:
        return not self.lines


def check_exact(table: dict[str, dict], names: Sequence[str], *, full: bool = False,
                complete: bool = True, image_size: int = EXACT_IMAGE_SIZE,
                progress: Callable[[str], None] | None = None) -> ExactResult:
    """Compare the registry's counts for `names` with `table`. `complete`: `names` is the whole
    registry, so table rows without a registered variant are reported as removed."""
    lines: list[str] = []
    notes: list[str] = []
    recounted = []
    for name in names:
        ref = table.get(name)
        cur = fast_counts(name, image_size)
        if full or ref is None or cur["trace_sha256"] != ref["trace_sha256"]:
            if progress:
                progress(f"profiling {name} with fvcore ...")
            cur = full_counts(name, image_size)
            recounted.append(name)
            columns = COUNT_COLUMNS
        else:
            columns = FAST_COLUMNS
        if ref is None:
            vals = ", ".join(f"{c} {cur[c]:,}" for c in COUNT_COLUMNS)
            lines.append(f"{name}: added (not in the table): {vals}")
            continue
        diffs = [f"{c} {_fmt_change(ref[c], cur[c])}" for c in columns if ref[c] != cur[c]]
        if diffs:
            lines.append(f"{name}: " + "; ".join(diffs))
        elif cur["trace_sha256"] != ref["trace_sha256"]:
            notes.append(f"{name}: operator trace changed but every count is equal (recounted with fvcore); "
                         "run `resnet-bench check --exact --update` to refresh its trace_sha256")
    if complete:
        for name in sorted(set(table) - set(names)):
            vals = ", ".join(f"{c} {table[name][c]:,}" for c in COUNT_COLUMNS)
            lines.append(f"{name}: removed (in the table, not registered): {vals}")
    return ExactResult(lines, notes, len(names), recounted)


def cmd_exact(args) -> int:
    import resnet_impl
    from bench import cases as C

    path = Path(args.table)
    names = list(C.expand_models(args.models)) if args.models else resnet_impl.list_models()
    log = (lambda msg: print(msg, file=sys.stderr, flush=True))
    if args.update:
        old = {}
        if path.is_file():
            try:
                old = read_table(path)
            except UserError:
                old = {}
        kept = {} if not args.models else {k: v for k, v in old.items() if k not in names}
        t0 = time.perf_counter()
        new = {}
        for n in names:
            log(f"profiling {n} ...")
            new[n] = full_counts(n)
        rows = sorted({**kept, **new}.values(), key=lambda r: resnet_impl.registry._natural_key(r["model"]))
        write_table(path, rows)
        changed = check_exact(old, names, complete=False).lines if old else []
        print(f"wrote {len(rows)} variants to {path} in {time.perf_counter() - t0:.0f} s"
              + (f"; {len(changed)} changed" if old else ""))
        for line in changed:
            print(f"  {line}")
        return 0
    table = read_table(path)
    t0 = time.perf_counter()
    res = check_exact(table, names, full=args.full, complete=not args.models, progress=log)
    took = time.perf_counter() - t0
    for line in res.notes:
        print(f"note: {line}")
    how = "fvcore recount" if args.full else "meta-device trace + recount of changed variants"
    if res.ok:
        print(f"exact gate: OK: {res.checked} variants match {path} ({how}, {took:.1f} s)")
        return 0
    print(f"exact gate: FAIL: {len(res.lines)} difference(s) from {path}:")
    for line in res.lines:
        print(f"  {line}")
    print("If the change is intended, rewrite the table with `resnet-bench check --exact --update` and commit it.")
    return 1


# ================================================================ speed gate: statistics
def parse_threshold(text: str) -> float:
    """'5%' or '0.05' -> 0.05. A bare number >= 1 is ambiguous (5 = 5% or 500%?) and refused."""
    s = str(text).strip()
    try:
        value = float(s[:-1]) / 100 if s.endswith("%") else float(s)
    except ValueError:
        raise UserError(f"--threshold must be a percentage like 5% or a fraction like 0.05, got {text!r}") from None
    if not s.endswith("%") and value >= 1:
        raise UserError(f"--threshold {text!r} is ambiguous; write {s}% or {float(s) / 100:g}")
    if not (math.isfinite(value) and 0 < value < 1):
        raise UserError(f"--threshold must be above 0% and below 100%, got {text!r}")
    return value


def _kth_pairwise_diff(a: "np.ndarray", b: "np.ndarray", k: int) -> float:
    """The k-th smallest (1-based) of the n*m differences b[j] - a[i], without forming them all:
    bisection on the value, counting pairs with searchsorted (a must be sorted)."""
    import numpy as np

    lo, hi = float(b.min() - a.max()), float(b.max() - a.min())
    for _ in range(200):
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        # number of pairs with b - a <= mid  ==  sum_j #{a >= b_j - mid}
        count = int(np.sum(a.size - np.searchsorted(a, b - mid, side="left")))
        if count >= k:
            hi = mid
        else:
            lo = mid
    return hi


def _u_critical(n: int, m: int, confidence: float) -> int:
    """Largest c with P(U <= c - 1) <= (1 - confidence) / 2 under H0 (exact for small n*m,
    normal approximation otherwise): the CI is [d_(c), d_(nm - c + 1)] of the sorted pairwise
    differences."""
    import numpy as np
    from scipy.stats import norm

    tail = (1 - confidence) / 2
    if n * m <= 2500:
        # exact null distribution of U by the recurrence f(u; n, m) = f(u - m; n - 1, m) + f(u; n, m - 1)
        f = {(0, j): np.zeros(1) + 1 for j in range(m + 1)}
        for i in range(1, n + 1):
            f[(i, 0)] = np.ones(1)
            for j in range(1, m + 1):
                a, b = f[(i - 1, j)], f[(i, j - 1)]
                out = np.zeros(i * j + 1)
                out[j:j + a.size] += a
                out[:b.size] += b
                f[(i, j)] = out
        cdf = np.cumsum(f[(n, m)]) / f[(n, m)].sum()
        c = int(np.searchsorted(cdf, tail, side="right"))  # #{u : cdf(u) <= tail}
        return max(c, 1)
    z = norm.ppf(1 - tail)
    c = int(math.floor(n * m / 2 - z * math.sqrt(n * m * (n + m + 1) / 12)))
    return max(c, 1)


def hodges_lehmann_ratio(base: Sequence[float], cand: Sequence[float],
                         confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(ratio, ci_low, ci_high) of candidate/base latency: exp of the Hodges-Lehmann shift of
    log latency and its Mann-Whitney-inverted confidence interval."""
    import numpy as np

    a = np.sort(np.log(np.asarray(base, dtype=float)))
    b = np.sort(np.log(np.asarray(cand, dtype=float)))
    n, m = a.size, b.size
    nm = n * m
    if nm % 2:
        est = _kth_pairwise_diff(a, b, (nm + 1) // 2)
    else:
        est = (_kth_pairwise_diff(a, b, nm // 2) + _kth_pairwise_diff(a, b, nm // 2 + 1)) / 2
    c = _u_critical(n, m, confidence)
    lo = _kth_pairwise_diff(a, b, c)
    hi = _kth_pairwise_diff(a, b, nm - c + 1)
    return math.exp(est), math.exp(lo), math.exp(hi)


@dataclass
class Comparison:
    """The statistics of one case (all ratios are candidate / base latency)."""

    unit: str  # "rounds": per-process medians; "samples": pooled raw samples
    n_base: int  # units on each side
    n_cand: int
    base_median_ms: float  # median of all base samples
    cand_median_ms: float
    ratio: float  # Hodges-Lehmann estimate
    ci_low: float
    ci_high: float
    p_slower: float  # one-sided Mann-Whitney U: candidate slower
    p_faster: float  # one-sided Mann-Whitney U: candidate faster
    p_pooled: float  # one-sided MWU (slower) on pooled raw samples (asv's test), for information
    rounds_slower: int | None  # rounds where the candidate's median exceeds the paired base round's
    verdict: str  # "regression" (fails the gate), "slower-within-threshold", "faster", "no-change"
    reason: str

    @property
    def fails(self) -> bool:
        return self.verdict == "regression"

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def decide(ratio_ci_high: float, ci_low: float, p_slower: float, p_faster: float,
           threshold: float, alpha: float) -> tuple[str, str]:
    """The decision rule (see the module docstring): regression iff p_slower < alpha and the
    CI's upper bound exceeds 1 + threshold."""
    limit = 1 + threshold
    if p_slower < alpha:
        if ratio_ci_high > limit:
            return "regression", (f"significantly slower (p={p_slower:.2g} < {alpha:g}) and a slowdown of "
                                  f"{threshold:.0%} or more is not ruled out (CI upper {ratio_ci_high:.3f} > {limit:.3f})")
        return "slower-within-threshold", (f"significantly slower (p={p_slower:.2g}) but by less than "
                                           f"{threshold:.0%} (CI upper {ratio_ci_high:.3f} <= {limit:.3f})")
    if p_faster < alpha:
        return "faster", f"significantly faster (p={p_faster:.2g} < {alpha:g})"
    return "no-change", f"no significant slowdown (p={p_slower:.2g} >= {alpha:g})"


def compare(base_rounds: Sequence[Sequence[float]], cand_rounds: Sequence[Sequence[float]],
            *, threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA,
            confidence: float = CONFIDENCE) -> Comparison:
    """Compare per-process sample lists of two sides (latencies, any one unit). With at least
    MIN_ROUNDS_PER_SIDE processes per side the unit is the per-process median, else the raw
    samples pooled per side."""
    import numpy as np
    from scipy.stats import mannwhitneyu

    base_rounds = [list(map(float, r)) for r in base_rounds if len(r)]
    cand_rounds = [list(map(float, r)) for r in cand_rounds if len(r)]
    if not base_rounds or not cand_rounds:
        raise ValueError("compare needs samples on both sides")
    pooled_a = np.concatenate([np.asarray(r) for r in base_rounds])
    pooled_b = np.concatenate([np.asarray(r) for r in cand_rounds])
    if np.any(pooled_a <= 0) or np.any(pooled_b <= 0) or not (np.all(np.isfinite(pooled_a)) and np.all(np.isfinite(pooled_b))):
        raise ValueError("latency samples must be positive and finite")
    if len(base_rounds) >= MIN_ROUNDS_PER_SIDE and len(cand_rounds) >= MIN_ROUNDS_PER_SIDE:
        unit = "rounds"
        a = np.array([np.median(r) for r in base_rounds])
        b = np.array([np.median(r) for r in cand_rounds])
        pairs = min(len(a), len(b))
        rounds_slower = int(np.sum(b[:pairs] > a[:pairs]))
    else:
        unit, a, b, rounds_slower = "samples", pooled_a, pooled_b, None
    p_slower = float(mannwhitneyu(b, a, alternative="greater").pvalue)
    p_faster = float(mannwhitneyu(b, a, alternative="less").pvalue)
    p_pooled = float(mannwhitneyu(pooled_b, pooled_a, alternative="greater").pvalue)
    ratio, lo, hi = hodges_lehmann_ratio(a, b, confidence)
    verdict, reason = decide(hi, lo, p_slower, p_faster, threshold, alpha)
    return Comparison(unit, int(a.size), int(b.size), float(np.median(pooled_a)), float(np.median(pooled_b)),
                      ratio, lo, hi, p_slower, p_faster, p_pooled, rounds_slower, verdict, reason)


# ================================================================ speed gate: measuring
def _git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=check)


def git_toplevel(start: Path) -> Path:
    try:
        out = _git(start, "rev-parse", "--show-toplevel")
    except (OSError, subprocess.CalledProcessError):
        raise UserError(f"--base-ref needs a git checkout; {start} is not inside one") from None
    return Path(out.stdout.strip())


def resolve_ref(repo: Path, ref: str) -> str:
    """The commit of `ref`, or a UserError; also refuses a ref whose tree cannot be measured."""
    if not ref or ref.startswith("-"):
        raise UserError(f"--base-ref: invalid git ref {ref!r}")
    r = _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
    if r.returncode != 0:
        raise UserError(f"--base-ref: unknown git ref {ref!r} in {repo} (try a branch, a tag, a commit or HEAD~1)")
    commit = r.stdout.strip()
    for needed in ("bench/worker.py", "bench/runner.py", "resnet_impl/__init__.py"):
        if _git(repo, "cat-file", "-e", f"{commit}:{needed}", check=False).returncode != 0:
            raise UserError(f"--base-ref {ref} ({commit[:12]}) has no {needed}: that revision cannot be "
                            "measured by this gate (it predates resnet-bench's isolated runner)")
    return commit


class Worktree:
    """`git worktree add --detach` of a commit in a temporary directory, removed on exit
    (also after an error or Ctrl-C)."""

    def __init__(self, repo: Path, commit: str):
        self.repo, self.commit = repo, commit
        self.parent = Path(tempfile.mkdtemp(prefix="resnet-bench-base-"))
        self.path = self.parent / "tree"

    def __enter__(self) -> Path:
        import signal
        import threading

        self._old_term = None
        if threading.current_thread() is threading.main_thread():  # SIGTERM (CI cancel, timeout): clean up too
            self._old_term = signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
        r = _git(self.repo, "worktree", "add", "--detach", "--quiet", str(self.path), self.commit, check=False)
        if r.returncode != 0:
            self.__exit__()
            raise UserError(f"git worktree add failed for {self.commit[:12]}: {r.stderr.strip().splitlines()[-1:]}")
        return self.path

    def __exit__(self, *exc) -> None:
        import signal

        _git(self.repo, "worktree", "remove", "--force", str(self.path), check=False)
        shutil.rmtree(self.parent, ignore_errors=True)
        _git(self.repo, "worktree", "prune", check=False)
        if self._old_term is not None:
            signal.signal(signal.SIGTERM, self._old_term)


def speed_cases(args, device: str) -> list:
    """The cases asked, exactly (no reference mode added), with the gate's small defaults."""
    from bench import cases as C

    get = lambda flag: getattr(args, flag) or SPEED_DEFAULTS[flag]  # noqa: E731
    sweep = C.Sweep(
        C.expand_models(get("models")),
        C.parse_positive_ints(get("batch_sizes"), "batch size"),
        C.parse_positive_ints(get("image_sizes"), "image size", C.MIN_IMAGE_SIZE),
        C.product_modes(C.parse_choices(get("layouts"), "layout", C.LAYOUTS),
                        C.parse_choices(get("precisions"), "precision", C.PRECISIONS),
                        C.parse_choices(get("compile"), "compile mode", C.COMPILE_MODES)),
        C.parse_choices(get("workloads"), "workload", C.WORKLOADS),
        device,
    )
    return sweep.cases()


def gate_settings(args, device: str = "cpu"):
    """Per-process timing: fixed sampling time (no early precision stop, so both sides get the
    same budget), a short warm-up, no profiling, no output check."""
    from bench.runner import RunSettings
    from bench.timing import TimingConfig

    round_time = args.max_time if args.max_time is not None else DEFAULT_ROUND_TIME_S
    try:
        timing = TimingConfig(
            min_samples=args.min_samples if args.min_samples is not None else 10,
            max_samples=1_000_000,
            min_time_s=args.min_time if args.min_time is not None else min(round_time, DEFAULT_ROUND_TIME_S),
            max_time_s=round_time,
            target_rel_ci=0.0,
            warmup_max_s=args.max_warmup if args.max_warmup is not None else DEFAULT_WARMUP_S,
            warmup_min_iters=3,
        )
    except ValueError as e:
        raise UserError(str(e)) from None
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads must be a positive integer, got {args.threads}")
    # One thread on CPU unless asked: on a shared machine a multi-threaded process degrades
    # catastrophically when the cores are oversubscribed (OpenMP barriers wait on a descheduled
    # thread): here, with 2 threads, one run's per-process medians ranged from 6.7 to 660 ms;
    # with 1 thread they stayed within +-3%.
    threads = args.threads if args.threads is not None else (1 if device == "cpu" else None)
    return RunSettings(timing=timing, threads=threads, isolate=True, check_outputs=False, profile=False)


@dataclass
class CaseSamples:
    case: Any  # bench.cases.Case
    base: list[list[float]] = field(default_factory=list)  # per round
    cand: list[list[float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def measure_rounds(cases: list, settings, rounds: int, sides: dict[str, str | None],
                   log: Callable[[str], None]) -> dict[str, CaseSamples]:
    """Run `rounds` rounds; a round runs each side in `sides` ({"base": code_root,
    "cand": code_root}) once, in its own worker process(es), alternating which goes first."""
    from bench.runner import run_sweep

    out = {c.key(): CaseSamples(c) for c in cases}
    names = list(sides)
    for i in range(rounds):
        order = names if i % 2 == 0 else names[::-1]
        t0 = time.perf_counter()
        for side in order:
            def on_row(row, side=side):
                from bench.cases import Case

                key = Case.from_dict({**row, "batch_size": row.get("batch_size_requested", row["batch_size"])}).key()
                cs = out.get(key)
                if cs is None:
                    return
                if row.get("status") == "ok" and row.get("samples_ms"):
                    getattr(cs, side).append(list(row["samples_ms"]))
                else:
                    cs.errors.append(f"{side} round {i + 1}: {row.get('status')}: {row.get('error') or 'no samples'}")
            run_sweep(cases, settings, on_row, code_root=sides[side])
        log(f"round {i + 1}/{rounds} ({' then '.join(order)}) {time.perf_counter() - t0:.1f} s")
    return out


def _case_label(case) -> str:
    return (f"{case.model} {case.workload} bs{case.batch_size} {case.image_size}px "
            f"{case.layout}/{case.precision}/{case.compile} {case.device}")


def baseline_samples(path: str, cases: list, env: dict, log: Callable[[str], None]) -> dict[str, list[list[float]]]:
    """Raw samples per asked case from saved results (ours or pytest-benchmark JSON)."""
    from bench import results

    rs = results.load_results(path)
    found: dict[str, list[list[float]]] = {}
    for row in rs.rows:
        if row.get("status", "ok") not in ("ok",):
            continue
        try:
            key = "|".join(str(row[f]) if f not in ("batch_size", "image_size") else str(int(row[f]))
                           for f in ("model", "workload", "batch_size", "image_size", "layout", "precision",
                                     "compile", "device"))
        except (KeyError, TypeError, ValueError):
            continue
        samples = row.get("samples_ms")
        if isinstance(samples, list) and samples:
            found.setdefault(key, []).append([float(s) for s in samples])
    out = {}
    for c in cases:
        if c.key() not in found:
            have = sorted(found) or ["none with raw samples"]
            raise UserError(f"--baseline {path} has no raw samples for {_case_label(c)}; it has: "
                            + "; ".join(h.replace("|", " ") for h in have[:5])
                            + (" (a CSV keeps no samples: use results.json/rows.jsonl or pytest-benchmark JSON)"
                               if str(path).endswith(".csv") else ""))
        out[c.key()] = found[c.key()]
    base_env = rs.env or {}
    for k in ("device_name", "torch", "threads"):
        if k == "threads":
            base_threads = {r.get("threads") for r in rs.rows if r.get("threads") is not None} or {base_env.get(k)}
            if None not in base_threads and env.get(k) is not None and {int(t) for t in base_threads} != {int(env[k])}:
                log(f"warning: baseline measured with {sorted(base_threads)} thread(s), this gate with {env[k]}: "
                    "pass --threads to match")
            continue
        if base_env.get(k) and env.get(k) and str(base_env[k]) != str(env[k]):
            log(f"warning: baseline {k} is {base_env[k]!r}, this machine's is {env[k]!r}: "
                "timings from another machine class or software are not comparable")
        elif not base_env.get(k):
            log(f"warning: baseline records no {k}; cannot confirm it comes from this machine class")
    return out


def _fmt_p(p: float) -> str:
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"


def render_comparisons(results: list[dict], threshold: float, alpha: float) -> str:
    lines = [f"speed gate: fail when p < {alpha:g} and the ratio's 95% CI upper bound > {1 + threshold:.3f} "
             f"(threshold {threshold:.1%})"]
    hdr = f"{'case':<52} {'base ms':>9} {'cand ms':>9} {'ratio':>7} {'95% CI':>15} {'p':>8} {'unit':>10}  verdict"
    lines.append(hdr)
    for r in results:
        c = r.get("comparison")
        label = r["label"]
        if not c:
            lines.append(f"{label:<52} {'':>9} {'':>9} {'':>7} {'':>15} {'':>8} {'':>10}  {r['verdict']}: {r['reason']}")
            continue
        unit = f"{c['n_base']}v{c['n_cand']} {c['unit'][:6]}"
        lines.append(f"{label:<52} {c['base_median_ms']:>9.4g} {c['cand_median_ms']:>9.4g} {c['ratio']:>7.3f} "
                     f"[{c['ci_low']:.3f}, {c['ci_high']:.3f}] {_fmt_p(c['p_slower']):>8} {unit:>10}  "
                     f"{c['verdict'].upper() if c['verdict'] == 'regression' else c['verdict']}: {c['reason']}")
    return "\n".join(lines)


def cmd_speed(args) -> int:
    from bench import cases as C
    from bench import env as E

    threshold = parse_threshold(args.threshold)
    if not (0 < args.alpha < 0.5):
        raise UserError(f"--alpha must be between 0 and 0.5, got {args.alpha:g}")
    if args.rounds < 1:
        raise UserError(f"--rounds must be a positive integer, got {args.rounds}")
    if args.recheck:
        if args.base_ref or args.baseline:
            raise UserError("--recheck re-decides a saved gate result; drop --base-ref/--baseline")
        return recheck(args.recheck, threshold, args.alpha, args.report_only)
    if bool(args.base_ref) == bool(args.baseline):
        raise UserError("check --speed needs exactly one of --base-ref GIT_REF or --baseline RESULTS")
    if args.out:
        out_path = Path(args.out)
        if out_path.is_dir():
            raise UserError(f"--out {out_path} is a directory; give a file name like gate.json")
        if not out_path.parent.exists():
            raise UserError(f"--out: directory {out_path.parent} does not exist")
    log = (lambda msg: print(msg, file=sys.stderr, flush=True)) if not args.quiet else (lambda msg: None)

    device = C.resolve_device(args.device)
    cases = speed_cases(args, device)
    settings = gate_settings(args, device)
    import torch

    env = E.collect(device, settings.threads or torch.get_num_threads())
    doc: dict[str, Any] = {
        "format": SPEED_FORMAT, "version": 1,
        "command": shlex.join(["resnet-bench"] + (args.argv if args.argv is not None else sys.argv[1:])),
        "time_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "environment": env, "threshold": threshold, "alpha": args.alpha, "confidence": CONFIDENCE,
        "rule": "regression iff one-sided Mann-Whitney p < alpha and the ratio's CI upper bound > 1 + threshold",
        "settings": settings.to_dict(), "rounds": args.rounds,
    }
    t0 = time.perf_counter()
    try:
        if args.base_ref:
            repo = git_toplevel(Path.cwd())
            commit = resolve_ref(repo, args.base_ref)
            doc["base"] = {"kind": "git", "ref": args.base_ref, "commit": commit}
            doc["candidate"] = {"kind": "working tree", "path": str(repo), "commit": E.git_commit(repo)}
            log(f"speed gate: base {args.base_ref} ({commit[:12]}) vs working tree {repo}, "
                f"{args.rounds} interleaved rounds x {len(cases)} case(s)")
            with Worktree(repo, commit) as base_root:
                measured = measure_rounds(cases, settings, args.rounds,
                                          {"base": str(base_root), "cand": str(repo)}, log)
        else:
            base = baseline_samples(args.baseline, cases, env, log)
            doc["base"] = {"kind": "saved", "path": str(args.baseline)}
            doc["candidate"] = {"kind": "this checkout", "path": str(REPO), "commit": E.git_commit()}
            log(f"speed gate: saved baseline {args.baseline} vs this checkout, {args.rounds} round(s)")
            measured = measure_rounds(cases, settings, args.rounds, {"cand": None}, log)
            for k, cs in measured.items():
                cs.base = base[k]
    except UserError as e:
        if args.report_only:
            print(f"speed gate (report only): skipped: {e}")
            return 0
        raise
    doc["wall_s"] = time.perf_counter() - t0

    results_out = []
    for key, cs in measured.items():
        entry = {"case": cs.case.as_dict(), "label": _case_label(cs.case), "base_rounds": cs.base,
                 "candidate_rounds": cs.cand, "errors": cs.errors}
        entry.update(_judge(cs.base, cs.cand, cs.errors, threshold, args.alpha))
        results_out.append(entry)
    doc["cases"] = results_out
    code = _exit_code(results_out)
    doc["exit_code"] = 0 if args.report_only else code
    print(render_comparisons(results_out, threshold, args.alpha))
    print(_summary_line(results_out, code, args.report_only, doc["wall_s"]))
    if args.out:
        from bench.results import json_safe

        Path(args.out).write_text(json.dumps(json_safe(doc), indent=1) + "\n")
        log(f"raw samples and decisions: {args.out} (re-check with: resnet-bench check --speed --recheck {args.out})")
    return doc["exit_code"]


def _judge(base, cand, errors, threshold, alpha) -> dict[str, Any]:
    if not base or not cand:
        why = "; ".join(errors[:2]) or "no samples"
        return {"verdict": "error", "reason": f"could not measure: {why}", "comparison": None}
    c = compare(base, cand, threshold=threshold, alpha=alpha)
    return {"verdict": c.verdict, "reason": c.reason, "comparison": c.as_dict()}


def _exit_code(results_out: list[dict]) -> int:
    if any(r["verdict"] == "regression" for r in results_out):
        return 1
    if any(r["verdict"] == "error" for r in results_out):
        return 2
    return 0


def _summary_line(results_out, code, report_only, wall_s) -> str:
    n_reg = sum(r["verdict"] == "regression" for r in results_out)
    n_err = sum(r["verdict"] == "error" for r in results_out)
    what = {0: "PASS", 1: f"FAIL ({n_reg} regression(s))", 2: f"ERROR ({n_err} case(s) not measured)"}[code]
    tail = " (report only: exit 0)" if report_only else ""
    return f"speed gate: {what} in {wall_s:.0f} s{tail}"


def recheck(path: str, threshold: float, alpha: float, report_only: bool) -> int:
    """Re-decide a saved gate result from its raw samples (with this threshold and alpha)."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except FileNotFoundError:
        raise UserError(f"--recheck: file not found: {p}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"--recheck: cannot read {p} as JSON: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != SPEED_FORMAT or not isinstance(doc.get("cases"), list):
        raise UserError(f"--recheck: {p} is not a speed-gate result (written by check --speed --out)")
    out = []
    for e in doc["cases"]:
        try:
            r = {"label": e["label"]}
            r.update(_judge(e["base_rounds"], e["candidate_rounds"], e.get("errors", []), threshold, alpha))
        except (KeyError, TypeError, ValueError) as err:
            raise UserError(f"--recheck: malformed case in {p}: {err}") from None
        out.append(r)
    code = _exit_code(out)
    print(render_comparisons(out, threshold, alpha))
    print(_summary_line(out, code, report_only, float(doc.get("wall_s") or 0)))
    return 0 if report_only else code


# ================================================================ CLI
def cmd_check(args) -> int:
    if args.exact == args.speed:
        raise UserError("choose one gate: check --exact or check --speed")
    if args.exact:
        speed_only = [f for f in ("base_ref", "baseline", "recheck", "out") if getattr(args, f)]
        if speed_only:
            raise UserError(f"--{speed_only[0].replace('_', '-')} belongs to check --speed")
        return cmd_exact(args)
    if args.update or args.full:
        raise UserError("--update/--full belong to check --exact")
    return cmd_speed(args)


def add_parser(sub) -> None:
    from bench.cli import add_sweep_flags

    p = sub.add_parser(
        "check", help="CI gates: exact params/MACs table, or a statistical speed comparison",
        description="--exact: compare params/MACs/FLOPs/activations with results/reference_counts.csv. "
                    "--speed: compare a candidate's latency with a base revision (--base-ref, interleaved "
                    "in fresh processes) or saved samples (--baseline). Exit 1 on a failed gate, 2 on bad input.")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--exact", action="store_true", help="check the committed counts table")
    g.add_argument("--speed", action="store_true", help="check for a statistically significant slowdown")
    p.add_argument("--table", default=str(REFERENCE_TABLE), help="(--exact) reference table (default %(default)s)")
    p.add_argument("--update", action="store_true", help="(--exact) rewrite the table with fresh counts")
    p.add_argument("--full", action="store_true", help="(--exact) recount every variant with fvcore (slow)")
    add_sweep_flags(p)
    p.set_defaults(max_time=None)
    p.add_argument("--base-ref", metavar="GIT_REF", help="(--speed) measure this revision vs the working tree")
    p.add_argument("--baseline", metavar="RESULTS", help="(--speed) saved samples: a run dir, results.json, "
                   "rows.jsonl or pytest-benchmark JSON, from the same machine class")
    p.add_argument("--threshold", default="5%", help="(--speed) slowdown that fails the gate: 5%% or 0.05 (default 5%%)")
    p.add_argument("--alpha", type=float, default=DEFAULT_ALPHA, help="(--speed) significance level (default %(default)s)")
    p.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS,
                   help="(--speed) processes per side, interleaved (default %(default)s)")
    p.add_argument("--out", help="(--speed) write the raw samples of both sides and the decisions to this JSON")
    p.add_argument("--recheck", metavar="GATE_JSON", help="(--speed) re-decide a saved --out file, no measuring")
    p.add_argument("--report-only", action="store_true", help="(--speed) print the verdict, always exit 0")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=cmd_check, argv=None)
    for action in p._actions:  # the sweep flags' help says "per case"; here it is per process and side
        if action.dest == "max_time":
            action.help = f"(--speed) sampling seconds per case per process (default {DEFAULT_ROUND_TIME_S:g})"
        elif action.dest == "max_warmup":
            action.help = f"(--speed) warm-up seconds at most per process (default {DEFAULT_WARMUP_S:g})"
        elif action.dest == "threads":
            action.help = "(--speed) torch threads in each measuring process (default 1 on CPU, torch's on CUDA)"
        elif action.dest == "models":
            action.help = "(--speed default resnet18; --exact default: every registered variant) names or patterns"
        elif action.dest == "image_sizes":
            action.help = "(--speed) comma-separated integers >= 32 (default 64; --exact always counts at 224)"
