"""Compare runs case by case: the latency of each case in every run against the first run.

Cases are joined by :meth:`bench.core.case.Case.key` (model, workload, requested batch, image
size, layout, precision, compile mode, device), so a GPU against another GPU, torch X against
torch Y, or this commit against last week's run line up case by case; a CPU run and a CUDA run
share no case.

Per shared case and run: ``ratio`` = this run's latency / the first run's (> 1 = slower than
the first run) with a 95% CI (bench.core.stats.compare_unpaired: Hodges-Lehmann shift of log
latency, CI by the inverted Mann-Whitney test). Two runs were measured at different times, so
nothing pairs them round by round; what the interval can hold depends on the unit:

- both runs measured the case in 3 or more rounds: the unit is the **round** (one process),
  its median; the interval then holds the variance between processes (``unit="rounds"``);
- otherwise the raw samples of the one process each run had (``unit="samples"``). Samples of
  one process share its placement, memory layout and neighbours, so this CI speaks for these
  two processes, not for every run of the same code: a 2% difference between two days' runs
  on a shared machine can be real for the runs and still be noise between days.

For a head-against-base answer that cancels the machine's drift, measure both in one session
(the speed gate: paired rounds). Without raw samples or rounds on a side (a results.csv) the
ratio is the ratio of the two medians, without a CI (``method="medians"``). Cases present in one run only are listed, never dropped; the
environments' differences (device, GPU/CPU, torch, CUDA, cuDNN, threads, ...) are listed too.
Computing only: rendering is bench.report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.core import stats
from bench.core.case import Case
from bench.errors import UserError
from bench.results import columns
from bench.results.rounds import rounds_of

#: Environment fields compared between runs, and how a person calls them.
ENV_FIELDS = {"device": "device", "device_name": "GPU / CPU name", "torch": "torch", "cuda": "CUDA",
              "cudnn": "cuDNN", "threads": "threads", "cpu_model": "CPU", "cpu_isa": "CPU ISA",
              "cpu_count": "CPUs", "torchvision": "torchvision", "git_commit": "commit"}


@dataclass
class Run:
    """One run to compare: its name (as the user gave it), its rows (with ``samples_ms`` where
    the file keeps them) and its environment (empty for a CSV: taken from the rows then)."""

    name: str
    rows: list[dict]
    env: dict = field(default_factory=dict)

    def environment(self) -> dict[str, Any]:
        """ENV_FIELDS from the run's environment, else the rows' one value (or "a / b" if mixed)."""
        out = {}
        for k in ENV_FIELDS:
            v = self.env.get(k)
            if v is None:
                seen = list(dict.fromkeys(str(r[k]) for r in self.rows if r.get(k) is not None and r.get(k) == r.get(k)))
                v = " / ".join(seen) if seen else None
            out[k] = v
        return out

    def by_key(self) -> dict[str, dict]:
        """Case key -> row (the last one, if a case has two)."""
        out = {}
        for r in self.rows:
            try:
                out[Case.from_row(r).key()] = r
            except (KeyError, TypeError, ValueError):
                continue
        return out

    def has_samples(self) -> bool:
        return any(isinstance(r.get("samples_ms"), list) and r["samples_ms"] for r in self.rows)


@dataclass
class RunComparison:
    runs: list[str]  # names, the first is the base
    environments: list[dict]
    env_differences: list[dict]  # {"field", "label", "values": [per run]}
    cases: list[dict]  # one per (shared case, later run): see compare_runs
    only_in: list[dict]  # {"case", "label", the case's fields, "runs": [names that have it]}
    notes: list[str]  # what a reader must know (missing samples)

    def as_dict(self) -> dict[str, Any]:
        return {"format": "resnet-bench/compare", "version": 1, "runs": self.runs,
                "environments": self.environments, "env_differences": self.env_differences,
                "cases": self.cases, "only_in": self.only_in, "notes": self.notes}


def _samples(row: Mapping) -> list[float] | None:
    s = row.get("samples_ms")
    if isinstance(s, list):
        vals = [float(x) for x in s if isinstance(x, (int, float)) and math.isfinite(x) and x > 0]
        return vals or None
    return None


def _p50(row: Mapping) -> float | None:
    v = row.get("latency_ms_p50")
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0 else None


def change(ratio: float | None, lo: float | None, hi: float | None) -> str:
    """"slower" / "faster" when the CI lies wholly above / below 1, "no significant change"
    when it holds 1, "-" without a CI."""
    if ratio is None or lo is None or hi is None:
        return "-"
    if lo > 1:
        return "slower"
    if hi < 1:
        return "faster"
    return "no significant change"


def compare_pair(base: Mapping, cand: Mapping, cpu_counts: tuple[int | None, int | None] = (None, None)) -> dict:
    """One case in two runs -> ratio cand / base with its CI (see the module doc), the medians,
    the method, and the reliability flags of both rows (bench.results.views.flags)."""
    from bench.results.views import flags

    out: dict[str, Any] = {"base_ms": _p50(base), "ms": _p50(cand), "ratio": None, "ci_low": None, "ci_high": None,
                           "method": None, "unit": None, "n_base": None, "n": None, "p_slower": None,
                           "base_flags": ", ".join(flags(base, cpu_counts[0])),
                           "flags": ", ".join(flags(cand, cpu_counts[1])), "status": "ok"}
    bad = [f"{side} {r.get('status')}" for side, r in (("base", base), ("run", cand))
           if r.get("status") not in columns.OK_STATUSES or _p50(r) is None]
    if bad:
        out["status"] = "not comparable: " + ", ".join(bad)
        out["change"] = "-"
        return out
    ra, rb = rounds_of(base), rounds_of(cand)
    a, b = _samples(base), _samples(cand)
    if len(ra) >= stats.MIN_UNITS and len(rb) >= stats.MIN_UNITS:
        c = stats.compare_unpaired([[v] for v in ra.values()], [[v] for v in rb.values()])
    elif a and b:
        c = stats.compare_unpaired([a], [b])
    else:
        c = None
    if c is not None:
        out.update(ratio=c.ratio, ci_low=c.ci_low, ci_high=c.ci_high, method=c.method, unit=c.unit, n_base=c.n_base,
                   n=c.n_cand, p_slower=c.p_slower)
    else:
        out.update(ratio=out["ms"] / out["base_ms"], method="medians")
    out["change"] = change(out["ratio"], out["ci_low"], out["ci_high"])
    out["explained"] = stage_explanation(base, cand)
    return out


def stage_explanation(base: Mapping, cand: Mapping) -> str:
    """The difference of two rows' stage-pass steps, stage by stage (the three largest):
    "+1.20 ms, of which layer3 +0.90 ms, stem +0.20 ms"; "" without stage times on both."""
    from bench.core.profile import STAGES

    def num(v) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    if not (num(base.get("stage_total_ms")) and num(cand.get("stage_total_ms"))):
        return ""
    d = {s: cand[f"stage_ms_{s}"] - base[f"stage_ms_{s}"] for s in STAGES
         if num(cand.get(f"stage_ms_{s}")) and num(base.get(f"stage_ms_{s}"))}
    big = sorted(d.items(), key=lambda kv: -abs(kv[1]))[:3]
    return (f"{cand['stage_total_ms'] - base['stage_total_ms']:+.2f} ms, of which "
            + ", ".join(f"{s} {v:+.2f} ms" for s, v in big))


def compare_runs(runs: Sequence[Run]) -> RunComparison:
    """Every case of the first run that a later run also has, compared (:func:`compare_pair`);
    cases missing from some run listed in ``only_in``. UserError when fewer than two runs are
    given or no case is shared."""
    if len(runs) < 2:
        raise UserError("compare needs at least two runs")
    names = _unique([r.name for r in runs])
    keyed = [r.by_key() for r in runs]
    envs = [r.environment() for r in runs]
    cpu = [e.get("cpu_count") if isinstance(e.get("cpu_count"), int) else None for e in envs]
    base = keyed[0]
    cases, only = [], []
    shared = 0
    for key in dict.fromkeys(k for kd in keyed for k in kd):
        have = [names[i] for i, kd in enumerate(keyed) if key in kd]
        row = next(kd[key] for kd in keyed if key in kd)
        label = Case.from_row(row).label()
        if len(have) < len(runs):
            only.append({"case": key, "label": label, **Case.from_row(row).as_dict(), "runs": have})
        if key not in base or len(have) < 2:
            continue
        shared += 1
        for i in range(1, len(runs)):
            if key in keyed[i]:
                entry = {"case": key, "label": label, **Case.from_row(row).as_dict(), "base_run": names[0],
                         "run": names[i]}
                entry.update(compare_pair(base[key], keyed[i][key], (cpu[0], cpu[i])))
                cases.append(entry)
    if not shared:
        examples = "; ".join(f"{n}: {next(iter(kd), 'no cases').replace('|', ' ')}" for n, kd in zip(names, keyed))
        raise UserError(f"these runs have no case in common (a case is model, workload, batch, size, mode and "
                        f"device); e.g. {examples}")
    notes = [f"{n} keeps no raw samples (a CSV keeps none): its ratios are ratios of medians, without CIs"
             for n, r in zip(names, runs) if not r.has_samples()]
    # a field differs when two runs record different values (one that records none is unknown, not different)
    diffs = [{"field": k, "label": label, "values": [e.get(k) for e in envs]}
             for k, label in ENV_FIELDS.items() if len({str(e[k]) for e in envs if e.get(k) is not None}) > 1]
    return RunComparison(names, envs, diffs, cases, only, notes)


def _unique(names: Sequence[str]) -> list[str]:
    """Names made distinct ("a", "a" -> "a", "a#2"): a run may be compared with itself."""
    out: list[str] = []
    for n in names:
        m, i = n, 1
        while m in out:
            i += 1
            m = f"{n}#{i}"
        out.append(m)
    return out
