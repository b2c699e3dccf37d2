"""Series and their steps: the stored records of one case on one machine fingerprint, as one
value per commit in commit order, and every step in it with its size and CI.

Series from different machine fingerprints are never mixed: each is its own line.

- A commit's **value** is the geometric mean of its rounds' values (each round: the speed gate's
  10th percentile of the round's samples, bench.history.store.round_value), its CI Student's t
  over those rounds (bench.core.ratios.geometric_mean_ci), its weight for the fit 1 / the CI's
  relative half-width (the median weight when it has one round).
- Commit order: by generation (ancestor count) when every commit's is known, else by when the
  database first saw the commit.
- **Steps** come from bench.history.steps.detect. A step's size and 95% CI: the **paired**
  ratio (bench.core.ratios.ratio_over_rounds) of the step's first commit and the commit before
  it over the rounds both were measured in side by side (`history run` measures neighbours in
  the same rounds), when there are two or more such rounds; else the **unpaired**
  Hodges-Lehmann ratio (bench.core.stats.compare_unpaired) of the rounds of up to WINDOW
  commits on each side, within the fitted levels.
- A step's **kind**: ``regression`` (slower, CI above 1, ratio >= 1 + threshold),
  ``improvement`` (faster, CI below 1, ratio <= 1 - threshold), ``minor`` (CI excludes 1 but
  the change is smaller than the threshold) or ``uncertain`` (the CI holds 1: a level the fit
  found that the measured rounds do not confirm). Only the first two are called regressions or
  improvements. A series of two commits has no fit: its one possible step is reported only when
  the measured rounds confirm it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from bench.history import steps as S
from bench.history.store import Machine, Row

DEFAULT_THRESHOLD = 0.05
#: Commits on each side of a step whose rounds an unpaired comparison uses.
WINDOW = 8
#: Below this many commits the values' own differences cannot tell noise from a step: the
#: detector's noise scale comes from the rounds instead (round_scatter).
SHORT = 8
KINDS = ("regression", "improvement", "minor", "uncertain")


@dataclass
class Point:
    commit: str
    value: float  # ms, geometric mean of its rounds' values
    ci_low: float | None
    ci_high: float | None
    rounds: dict[tuple[str, int], float]  # (session, round) -> that round's value

    @property
    def weight(self) -> float | None:
        if self.ci_low is None or self.ci_high is None or self.ci_high <= self.ci_low:
            return None
        return 2 * self.value / (self.ci_high - self.ci_low)


@dataclass
class StepReport:
    commit: str  # the first commit at the new level
    previous: str  # the last commit at the old level
    index: int
    ratio: float  # after / before (> 1: slower)
    ci_low: float | None
    ci_high: float | None
    method: str  # "paired" | "unpaired" | "none"
    n: int  # rounds (paired) or round values per side (unpaired, the smaller side)
    fitted_ratio: float
    kind: str
    tentative: bool

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Series:
    machine: Machine
    case_key: str
    case_label: str
    points: list[Point]
    steps: list[StepReport] = field(default_factory=list)
    outliers: list[tuple[str, float]] = field(default_factory=list)  # (commit, value / level around)

    def as_dict(self) -> dict:
        return {"machine": self.machine.fingerprint, "machine_label": self.machine.label, "case": self.case_key,
                "case_label": self.case_label,
                "points": [{"commit": p.commit, "value_ms": p.value, "ci_low": p.ci_low, "ci_high": p.ci_high,
                            "rounds": len(p.rounds)} for p in self.points],
                "steps": [s.as_dict() for s in self.steps],
                "outliers": [{"commit": c, "ratio": r} for c, r in self.outliers]}


def point(commit: str, rounds: dict[tuple[str, int], float]) -> Point:
    from bench.core.ratios import geometric_mean_ci

    centre, lo, hi = geometric_mean_ci(list(rounds.values()))
    return Point(commit, centre, lo, hi, rounds)


def order_commits(seen: Sequence[str], known: dict[str, dict]) -> list[str]:
    """Commits in history order: by generation when every one has it, else as first seen."""
    gens = [known.get(c, {}).get("generation") for c in seen]
    if seen and all(g is not None for g in gens):
        first = {c: i for i, c in enumerate(seen)}
        return sorted(seen, key=lambda c: (known[c]["generation"], known[c].get("commit_time") or 0, first[c]))
    return list(seen)


def build(rows: Sequence[Row], machines: dict[str, Machine], commits: dict[str, dict], *,
          threshold: float = DEFAULT_THRESHOLD, commit_order: Sequence[str] | None = None,
          detect: Callable[..., S.Detection] = S.detect) -> list[Series]:
    """Every (machine, case) series of `rows`, with its steps. `commit_order`: restrict to and
    order by these commits (a history range). `detect(values, weights)`: the step detector
    (tools/step_detection_compare.py passes others)."""
    groups: dict[tuple[str, str], dict[str, dict[tuple[str, int], float]]] = {}
    labels: dict[str, str] = {}
    seen: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        if r.value_ms is None or not (r.value_ms > 0 and math.isfinite(r.value_ms)):
            continue
        key = (r.machine, r.case_key)
        per_commit = groups.setdefault(key, {})
        if r.commit not in per_commit:
            seen.setdefault(key, []).append(r.commit)
        per_commit.setdefault(r.commit, {})[(r.session, r.round)] = r.value_ms
        labels[r.case_key] = r.case_label
    out = []
    for (machine, case_key), per_commit in groups.items():
        if commit_order is not None:
            order = [c for c in commit_order if c in per_commit]
        else:
            order = order_commits(seen[(machine, case_key)], commits)
        if not order:
            continue
        pts = [point(c, per_commit[c]) for c in order]
        s = Series(machines.get(machine) or Machine(machine, machine[:8], {}, {}), case_key, labels[case_key], pts)
        find_steps(s, threshold, detect)
        out.append(s)
    out.sort(key=lambda s: (s.case_label, s.machine.label))
    return out


def find_steps(series: Series, threshold: float = DEFAULT_THRESHOLD,
               detect: Callable[..., S.Detection] = S.detect) -> None:
    """Fill `series.steps` and `series.outliers` (see the module doc)."""
    pts = series.points
    if len(pts) < 2:
        return
    if len(pts) < SHORT and detect is S.detect:
        det = detect([p.value for p in pts], [p.weight for p in pts], sigma=round_scatter(pts))
    else:
        det = detect([p.value for p in pts], [p.weight for p in pts])
    series.outliers = [(pts[o.index].commit, o.ratio) for o in det.outliers]
    outlying = {o.index for o in det.outliers}
    found = det.steps
    if len(pts) == 2:  # no fit tells two points apart: the measured rounds alone decide (below)
        a, b = S.segments_of(np.log([pts[0].value, pts[1].value]), np.ones(2), [1, 2])
        found = [S.Step(1, math.exp(b.level - a.level), a, b, tentative=True)]
    for st in found:
        lo_bound, hi_bound = st.before.start, st.after.end
        j = refine(pts, st.index, lo_bound, hi_bound, outlying)
        ratio, lo, hi, method, n = size_of(pts, j, lo_bound, hi_bound, outlying, st.ratio)
        kind = kind_of(ratio, lo, hi, threshold)
        if len(pts) == 2 and kind == "uncertain":
            continue
        series.steps.append(StepReport(pts[j].commit, pts[j - 1].commit, j, ratio, lo, hi, method, n,
                                       st.ratio, kind, st.tentative))


def round_scatter(pts: Sequence[Point]) -> float | None:
    """The noise of one point's value (log units) from its rounds: the pooled standard deviation
    of each commit's log round values about their mean, over sqrt(rounds per point)."""
    ss, df, n = 0.0, 0, []
    for p in pts:
        logs = [math.log(v) for v in p.rounds.values() if v > 0]
        if len(logs) >= 2:
            mean = sum(logs) / len(logs)
            ss += sum((x - mean) ** 2 for x in logs)
            df += len(logs) - 1
            n.append(len(logs))
    if df == 0:
        return None
    return math.sqrt(ss / df) / math.sqrt(sum(n) / len(n))


def _pair_t(pts: Sequence[Point], j: int) -> float | None:
    """|t| of the paired log ratio of pts[j] against pts[j - 1] over their shared rounds."""
    a, b = pts[j - 1].rounds, pts[j].rounds
    shared = [k for k in a if k in b]
    if len(shared) < 2:
        return None
    d = [math.log(b[k] / a[k]) for k in shared]
    mean = sum(d) / len(d)
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (len(d) - 1))
    return abs(mean) / (sd / math.sqrt(len(d))) if sd > 0 else math.inf * (mean != 0)


def refine(pts: Sequence[Point], j: int, lo_bound: int, hi_bound: int, outlying: set[int]) -> int:
    """The step's first commit, moved by at most one to the neighbouring pair whose paired rounds
    show the change most clearly (the fit places it from per-commit values, which a session's
    drift moves; the paired rounds of neighbours cancel that drift)."""
    best, best_t = j, _pair_t(pts, j)
    if best_t is None:
        return j
    for c in (j - 1, j + 1):
        if not (lo_bound < c < hi_bound) or c in outlying or c - 1 in outlying:
            continue
        t = _pair_t(pts, c)
        if t is not None and t > best_t:
            best, best_t = c, t
    return best


def size_of(pts: Sequence[Point], j: int, lo_bound: int, hi_bound: int, outlying: set[int], fitted: float):
    """(ratio, ci_low, ci_high, method, n) of the step whose first commit is pts[j], its levels
    spanning lo_bound..hi_bound: paired over every (session, round) that measured commits on both
    sides (each side: the geometric mean of its commits in that round), else unpaired."""
    from bench.core import ratios, stats

    before = [i for i in range(max(lo_bound, j - WINDOW), j) if i not in outlying]
    after = [i for i in range(j, min(hi_bound, j + WINDOW)) if i not in outlying]
    if not before or not after:
        before, after = [j - 1], [j]
    keys = set().union(*(pts[i].rounds for i in before)) & set().union(*(pts[i].rounds for i in after))
    if len(keys) >= 2:
        def side(idx: list[int], k) -> float:
            vals = [math.log(pts[i].rounds[k]) for i in idx if k in pts[i].rounds]
            return math.exp(sum(vals) / len(vals))

        ordered = sorted(keys)
        r = ratios.ratio_over_rounds([side(after, k) for k in ordered], [side(before, k) for k in ordered])
        return r.ratio, r.ci_low, r.ci_high, "paired", r.n
    base = [v for i in before for v in pts[i].rounds.values()]
    cand = [v for i in after for v in pts[i].rounds.values()]
    if len(base) < 2 or len(cand) < 2:
        return fitted, None, None, "none", min(len(base), len(cand))
    c = stats.compare_unpaired([[v] for v in base], [[v] for v in cand])
    return c.ratio, c.ci_low, c.ci_high, "unpaired", min(len(base), len(cand))


def kind_of(ratio: float, lo: float | None, hi: float | None, threshold: float) -> str:
    if lo is None or hi is None or lo <= 1.0 <= hi:
        return "uncertain"
    if lo > 1.0:
        return "regression" if ratio >= 1.0 + threshold else "minor"
    return "improvement" if ratio <= 1.0 - threshold else "minor"
