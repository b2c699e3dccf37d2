#!/usr/bin/env python
"""Which step detector for `history report`: a measured comparison on synthetic series with
planted steps and outliers, noise like ours; writes results/history/step_detection.md.

    .venv/bin/python tools/step_detection_compare.py [--series 300] [--out results/history/step_detection.md]

The series, measured as `history run` measures them:
- 40 commits at a level of 20 ms, in windows of 4 commits that share one commit with the next,
  5 rounds per window; every value is one round's statistic (the 10th percentile);
- the noise, log-normal, as measured in the speed gate's raw rounds (results/speed_gate/raw/,
  noise_from_gate_runs): a per-process scatter (~1.1%), a part shared by every process of one
  round (~0.7%: cancels in a paired ratio) and a session drift shared by every round of a
  window (~1.0%: the level moves between sessions);
- outliers: each commit with probability 4% is measured on a busy machine, 8-20% slower in all
  its rounds of one window;
- "steps" series: three planted steps, +5%, +10% and -4% in random order at random commits
  (at least 4 apart, none in the first or last 3); "null" series: none.

Detectors, each followed by the same interpretation (bench.history.steps.interpret: one-commit
blips are outliers, one-commit transitions join the nearer level, one commit alone at either
end is a tentative step), then sized and classified from the rounds as `history report` does
(bench.history.series):
- bench.history.steps' default: ruptures' Pelt with the weighted L1 cost (each point's weight
  from its CI) and pen = 2 sigma ln n;
- bench.history.steps, method="asv" (asv's weighted L1 Potts fit with an information criterion, on log
  latency), with asv's AR(1) range (abs(rho) <= 1), ours (abs(rho) <= 0.5) or none, and
  beta = c ln n / n for c = 4 (asv), 2 and 1 (Schwarz's BIC for two parameters per segment);
- ruptures: Pelt (unweighted) with the L1 cost (pen = 2 sigma ln n, sigma from the MAD of the
  first differences) and with the L2 cost (pen = 2 sigma^2 ln n, BIC), on log latency.

A planted step is found when a step is reported at its commit or one beside it; any other
reported step is a false step; an outlier is mistaken when a false step lies at it or beside it.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.history import steps as S
from bench.history.measure import plan_windows
from bench.history.series import build
from bench.history.store import Machine, Row

N = 40
ROUNDS = 5
WINDOW = 4
# The noise, log sd, as measured in results/speed_gate/raw/ (noise_from_gate_runs: 30 gate runs of
# resnet18 64 px, 1 thread, 7 paired rounds of each round's 10th percentile); used when those
# files are missing.
ROUND_SHARED = 0.0072  # what one round of a session does to all its commits (cancels in pairs)
PROCESS = 0.0106  # each process's own scatter
DRIFT = 0.0096  # the machine of a whole session (a gate run's mean base level, less its rounds' noise)
OUTLIER_P = 0.04
PLANTED = (1.05, 1.10, 0.96)
#: `history report --threshold` of the comparison: the planted -4% must be able to count
THRESHOLD = 0.03
#: What counts as a reported step, by layer: its kinds (bench.history.series.KINDS).
LAYERS = {"placed": ("regression", "improvement", "minor", "uncertain"),
          "confirmed": ("regression", "improvement", "minor"),
          "called": ("regression", "improvement")}
MACHINE = Machine("synthetic" * 2, "synthetic", {}, {})


def noise_from_gate_runs(raw: Path = REPO / "results" / "speed_gate" / "raw") -> dict | None:
    """(process, round_shared, drift) log sds from the speed gate's raw rounds: the paired
    differences of the no-change runs give the per-process scatter, the rounds' total spread
    less it the shared part, the scatter of the runs' mean base level less its rounds' noise the
    session drift."""
    import json

    ind, tot, levels, n = [], [], [], 7
    for f in sorted(raw.glob("gate_*.json")):
        case = json.loads(f.read_text())["cases"][0]
        b = np.log([np.percentile(r, 10) for r in case["base_rounds"] if r])
        levels.append(float(np.mean(b)))
        if f.stem.endswith("_none"):
            a = np.log([np.percentile(r, 10) for r in case["candidate_rounds"] if r])
            n = min(len(a), len(b))
            ind.append(float(np.std(a[:n] - b[:n], ddof=1)) / math.sqrt(2))
            tot.append(float(np.std(np.r_[a - a.mean(), b - b.mean()], ddof=1)))
    if len(ind) < 3 or len(levels) < 5:
        return None
    process, total = float(np.median(ind)), float(np.median(tot))
    shared = math.sqrt(max(total ** 2 - process ** 2, 0.0))
    drift = math.sqrt(max(float(np.var(levels, ddof=1)) - total ** 2 / n, 0.0))
    return {"process": process, "round_shared": shared, "drift": drift, "runs": len(levels)}


def make(rng, with_steps: bool):
    """Rows of one series measured as `history run` measures (windows of WINDOW commits sharing
    one commit with the next, ROUNDS rounds each), its planted steps and outliers."""
    y = np.zeros(N)
    where, sizes = [], []
    if with_steps:
        while True:
            where = sorted(rng.choice(np.arange(3, N - 3), size=3, replace=False).tolist())
            if min(b - a for a, b in zip(where, where[1:])) >= 4:
                break
        sizes = rng.permutation(PLANTED).tolist()
        for i, r in zip(where, sizes):
            y[i:] += math.log(r)
    outliers = [i for i in range(N) if rng.random() < OUTLIER_P]
    rows = []
    for k, window in enumerate(plan_windows(list(range(N)), set(range(N)), WINDOW)):
        drift = rng.normal(0, DRIFT)
        busy = {i: math.log(rng.uniform(1.08, 1.20)) for i in window if i in outliers}
        for r in range(1, ROUNDS + 1):
            shared = rng.normal(0, ROUND_SHARED)
            for i in window:
                v = 20.0 * math.exp(y[i] + drift + shared + rng.normal(0, PROCESS) + busy.get(i, 0.0))
                rows.append(Row(MACHINE.fingerprint, f"c{i:03d}", "case", "case", f"w{k}", r, v, "ok"))
    return rows, dict(zip(where, sizes)), outliers


def ours(**kw):
    return lambda v, w=None: S.detect(v, w, method="asv", **kw)


def ruptures_detector(cost: str):
    import ruptures as rpt

    def run(v, w=None):
        y = np.log(v)
        sigma = 1.4826 * float(np.median(np.abs(np.diff(y) - np.median(np.diff(y))))) / math.sqrt(2) or 1e-3
        pen = 2 * sigma * math.log(len(y)) if cost == "l1" else 2 * sigma ** 2 * math.log(len(y))
        bkps = rpt.Pelt(model=cost, min_size=1, jump=1).fit(y.reshape(-1, 1)).predict(pen=pen)
        return S.interpret(v, None, S.segments_of(y, np.ones(len(y)), bkps))

    return run


def analyse(detector, data) -> tuple[list, float]:
    """Each series' steps (as `history report` finds them with this detector), and ms per series."""
    t0 = time.perf_counter()
    found = [build(rows, {MACHINE.fingerprint: MACHINE}, {}, detect=detector, threshold=THRESHOLD)[0].steps
             for rows, _, _ in data]
    return found, (time.perf_counter() - t0) / len(data) * 1e3


def score(found: list, data, layer: str, ms: float) -> dict:
    """Recall per planted size, false steps per series, outliers taken for steps, counting the
    steps of `layer` (LAYERS: placed by the detector, confirmed by the rounds' CI, or called a
    regression or improvement at THRESHOLD)."""
    hits = {r: 0 for r in PLANTED}
    planted = {r: 0 for r in PLANTED}
    false_steps = []
    mistaken = outliers_n = 0
    size_err = []
    for steps_found, (_rows, steps, outliers) in zip(found, data):
        at = {st.index: st for st in steps_found if st.kind in LAYERS[layer]}
        for i, r in steps.items():
            planted[r] += 1
            hit = [at[j] for j in (i, i - 1, i + 1) if j in at]
            if hit:
                hits[r] += 1
                size_err.append(abs(math.log(hit[0].ratio / r)))
        false = [j for j in at if not any(abs(j - i) <= 1 for i in steps)]
        false_steps.append(len(false))
        outliers_n += len(outliers)
        mistaken += sum(any(abs(j - o) <= 1 for j in false) for o in outliers)
    return {"recall": {r: hits[r] / planted[r] if planted[r] else math.nan for r in PLANTED},
            "false": statistics.mean(false_steps), "series_with_false": sum(f > 0 for f in false_steps) / len(data),
            "outliers_mistaken": mistaken / outliers_n if outliers_n else math.nan,
            "size_err": statistics.median(size_err) if size_err else math.nan, "ms": ms}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--series", type=int, default=300, help="series of each kind (default %(default)s)")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--out", default=str(REPO / "results" / "history" / "step_detection.md"))
    ap.add_argument("--verdict", action="append", help="a paragraph appended under the tables (the choice, why)")
    args = ap.parse_args()
    global PROCESS, ROUND_SHARED, DRIFT
    noise = noise_from_gate_runs()
    if noise is not None:
        PROCESS, ROUND_SHARED, DRIFT = noise["process"], noise["round_shared"], noise["drift"]
    source = (f"measured from the {noise['runs']} speed-gate runs in results/speed_gate/raw/" if noise
              else "the constants in the tool (results/speed_gate/raw/ was not found)")
    rng = np.random.default_rng(args.seed)
    stepped = [make(rng, True) for _ in range(args.series)]
    null = [make(rng, False) for _ in range(args.series)]
    b = lambda c: c * math.log(N) / N  # noqa: E731
    detectors = {
        "steps.py, beta = 4 ln n / n, abs(rho) <= 1 (asv's choice)": ours(beta=b(4), rho_max=1.0),
        "steps.py, beta = 4 ln n / n, abs(rho) <= 0.5": ours(beta=b(4), rho_max=0.5),
        "steps.py, beta = 2 ln n / n, abs(rho) <= 0.5": ours(beta=b(2), rho_max=0.5),
        "steps.py, beta = 2 ln n / n, no AR(1)": ours(beta=b(2), rho_max=0.0),
        "steps.py, beta = 1.5 ln n / n, abs(rho) <= 0.5": ours(beta=b(1.5), rho_max=0.5),
        "steps.py, beta = 1.5 ln n / n, no AR(1)": ours(beta=b(1.5), rho_max=0.0),
        "steps.py, beta = 1 ln n / n (BIC), abs(rho) <= 0.5": ours(beta=b(1), rho_max=0.5),
        "steps.py, asv-style defaults": ours(),
        "**bench.history.steps default: ruptures Pelt, weighted L1, pen 2 sigma ln n**": lambda v, w=None: S.detect(v, w),
    }
    try:
        import ruptures

        detectors[f"ruptures {ruptures.__version__} Pelt L1, pen 2 sigma ln n"] = ruptures_detector("l1")
        detectors[f"ruptures {ruptures.__version__} Pelt L2, pen 2 sigma^2 ln n (BIC)"] = ruptures_detector("l2")
    except ImportError:
        print("ruptures is not installed: compared without it", file=sys.stderr)
    header = ["| detector | found +5% | found +10% | found -4% | false steps / series (with steps) | "
              "false steps / series (null) | null series with a false step | outliers taken for steps | "
              "size error (median) | ms / series |", "|---|---|---|---|---|---|---|---|---|---|"]
    tables = {layer: list(header) for layer in LAYERS}
    for name, det in detectors.items():
        (fa, ma), (fb, mb) = analyse(det, stepped), analyse(det, null)
        for final in LAYERS:
            a, b = score(fa, stepped, final, ma), score(fb, null, final, mb)
            r = a["recall"]
            tables[final].append(
                f"| {name} | {r[1.05]:.0%} | {r[1.10]:.0%} | {r[0.96]:.0%} | {a['false']:.2f} | {b['false']:.2f} | "
                f"{b['series_with_false']:.0%} | {a['outliers_mistaken']:.0%} | {a['size_err']:.2%} | "
                f"{(a['ms'] + b['ms']) / 2:.1f} |")
            print(tables[final][-1], file=sys.stderr)
    lines = ["# Step detection: which detector", "",
             f"Made by `tools/step_detection_compare.py --series {args.series} --seed {args.seed}`: "
             f"{args.series} series with three planted steps (+5%, +10%, -4%) and {args.series} without, {N} commits "
             f"each, measured as `history run` measures (windows of {WINDOW} commits sharing one with the next, "
             f"{ROUNDS} rounds; per round a shared machine effect of {ROUND_SHARED:.2%} and a per-process scatter "
             f"of {PROCESS:.2%}, a session drift of {DRIFT:.2%} ({source}); {OUTLIER_P:.0%} of commits on a busy "
             "machine, +8..20%). See the tool's docstring.", "",
             "## 1. Steps the detector places (any kind)", "", *tables["placed"], "",
             "## 2. Steps the measured rounds confirm (CI excludes no change)", "",
             "Each step the detector places is sized from the rounds: paired where the two commits shared a "
             "window, else unpaired; an `uncertain` step (CI holds 1) is shown as such, never as a regression.", "",
             *tables["confirmed"], "",
             f"## 3. Steps called a regression or improvement (confirmed, and at least {THRESHOLD:.0%})", "",
             *tables["called"], "", *(args.verdict or []), ""]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
