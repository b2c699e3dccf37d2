"""Records -> rows: a case measured in several rounds becomes one row, and any two cases'
rounds become a paired ratio.

A **record** is one case measured once, in one round (one fresh process; rows.jsonl holds one
line per record). A record without a ``round`` is round 1: results written before rounds
existed are runs of one round, and read exactly as before.

:func:`aggregate` pools a case's records into its **row**:

- ``latency_ms_p50``: each round's median per-call latency, averaged over the rounds on the log
  scale (the geometric mean; one round: its median). ``latency_ms_ci_low/high``: Student's t
  over the rounds on the log scale (bench.core.ratios.geometric_mean_ci), so the interval holds
  the variance *between* processes; one round: that round's distribution-free CI of its median;
- the percentiles, mean, min and IQR of the pooled samples of every round; ``latency_rel_iqr``
  and ``noisy``: the median over rounds of each round's IQR / median (the spread *within* a
  process; the spread between processes is the CI's);
- ``rounds``, ``round_ids`` and ``round_latency_ms`` (each ok round's median, for pairing);
- everything measured once (counts, the output check, the memory pass, the trace, compile
  time): from the first round, the only one that measures them.

:func:`pair` joins two rows on the rounds both measured and returns the
bench.core.ratios.Ratio of their round medians: mode against eager, variant against a baseline,
head against base all go through it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from typing import Any

from bench.core import ratios, stats
from bench.core.case import Case
from bench.results import columns

ROUND = "round"
#: A round's IQR / median above this flags the case noisy (torch.utils.benchmark's rule).
NOISY_REL_IQR = 0.10
#: Columns a later round records again but the row takes from its first round (measured once).
_ONCE = ("warmup_iters", "warmup_s", "first_call_s", "compile_s", "stop_reason")


def round_of(record: Mapping[str, Any]) -> int:
    """The record's round (1 when it has none: a run from before rounds)."""
    r = record.get(ROUND)
    return int(r) if isinstance(r, (int, float)) and not isinstance(r, bool) and r == r and r >= 1 else 1


def case_key(record: Mapping[str, Any]) -> str:
    return Case.from_row(record).key()


def record_key(record: Mapping[str, Any]) -> str:
    """A record's identity: its case and its round (one record per case and round)."""
    return f"{case_key(record)}#{round_of(record)}"


def _value(record: Mapping[str, Any]) -> float | None:
    """The round's latency (its median per-call latency, ms), or None when it measured none."""
    v = record.get("latency_ms_p50")
    ok = record.get("status") in columns.OK_STATUSES
    return float(v) if ok and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0 \
        else None


def by_case(records: Iterable[Mapping[str, Any]]) -> dict[str, list[dict]]:
    """Records grouped by case (first-seen order), each group in round order."""
    out: dict[str, list[dict]] = {}
    for r in records:
        out.setdefault(case_key(r), []).append(dict(r))
    for recs in out.values():
        recs.sort(key=round_of)
    return out


def aggregate(records: Iterable[Mapping[str, Any]]) -> list[dict]:
    """One row per case (first-seen order) from its records (see the module doc)."""
    return [pool(recs) for recs in by_case(records).values()]


def pool(recs: list[dict]) -> dict:
    """One case's records (round order) -> its row."""
    first = recs[0]
    ok = [r for r in recs if _value(r) is not None]
    row = dict(first)
    row.pop(ROUND, None)
    failed = [r for r in recs if r.get("status") not in columns.OK_STATUSES]
    row["rounds_failed"] = len(failed) if ok else 0
    if failed and ok:
        f = failed[0]
        row["rounds_note"] = f"round {round_of(f)}: {f.get('status')}: {f.get('error') or ''}".strip()
    if not ok:
        row["rounds"] = 0
        return row
    base = ok[0]
    for k, v in base.items():  # the first measured round's own columns, where the first record had none
        if row.get(k) is None and k != ROUND:
            row[k] = v
    row["status"], row["error"] = base.get("status"), base.get("error", "")
    medians = [_value(r) for r in ok]
    row["rounds"] = len(ok)
    row["round_ids"] = [round_of(r) for r in ok]
    row["round_latency_ms"] = medians
    pooled = [float(s) for r in ok for s in (r.get("samples_ms") or [])]
    if len(ok) > 1:
        centre, lo, hi = ratios.geometric_mean_ci(medians)
        row.update(latency_ms_p50=centre, latency_ms_ci_low=lo, latency_ms_ci_high=hi)
        row["latency_rel_ci"] = (hi - lo) / 2 / centre
        if pooled:
            s = stats.summarize(pooled)
            for k in ("latency_ms_p90", "latency_ms_p99", "latency_ms_mean", "latency_ms_min", "latency_iqr_ms"):
                row[k] = s[k]
        row["n_samples"] = len(pooled) or sum(int(r.get("n_samples") or 0) for r in ok)
        spreads = [r.get("latency_rel_iqr") for r in ok if isinstance(r.get("latency_rel_iqr"), (int, float))]
        if spreads:
            row["latency_rel_iqr"] = statistics.median(spreads)
            row["noisy"] = row["latency_rel_iqr"] > NOISY_REL_IQR
        steady = [r.get("steady") for r in ok if isinstance(r.get("steady"), bool)]
        if steady:
            row["steady"] = sum(steady) * 2 >= len(steady)  # most rounds settled
        loads = [r.get("load_avg_1m") for r in ok if isinstance(r.get("load_avg_1m"), (int, float))]
        if loads:
            row["load_avg_1m"] = max(loads)
        row["time_utc"] = ok[-1].get("time_utc", row.get("time_utc"))
    for k in _ONCE:
        if base.get(k) is not None:
            row[k] = base[k]
    if pooled:
        row["samples_ms"] = pooled
    for k in ("throughput_ips", "achieved_tflops", "throughput_ips_per_w"):
        row.pop(k, None)
    return columns.derive(row)


def rounds_of(row: Mapping[str, Any]) -> dict[int, float]:
    """A row's ok rounds: round -> median latency (ms). A row without rounds (a CSV, a table of
    medians) counts as round 1 with its ``latency_ms_p50``."""
    ids, vals = row.get("round_ids"), row.get("round_latency_ms")
    if isinstance(ids, list) and isinstance(vals, list) and len(ids) == len(vals) and ids:
        return {int(i): float(v) for i, v in zip(ids, vals)
                if isinstance(v, (int, float)) and math.isfinite(v) and v > 0}
    v = _value(row)
    return {1: v} if v is not None else {}


def aligned(num: Mapping[str, Any], den: Mapping[str, Any]) -> tuple[list[float], list[float]] | None:
    """Two rows' round latencies over the rounds both measured, in round order; None when they
    share no ok round."""
    a, b = rounds_of(num), rounds_of(den)
    common = sorted(set(a) & set(b))
    if not common:
        return None
    return [a[i] for i in common], [b[i] for i in common]


def pair(num: Mapping[str, Any], den: Mapping[str, Any]) -> ratios.Ratio | None:
    """The paired ratio num / den of two rows' latencies over the rounds both measured
    (bench.core.ratios.ratio_over_rounds, this pair's own variance); None when they share no
    ok round. Views of many ratios pool their variance instead (:func:`pair_many`)."""
    values = aligned(num, den)
    return None if values is None else ratios.ratio_over_rounds(*values)


def pair_many(pairs: Mapping[Any, tuple[Mapping[str, Any], Mapping[str, Any]]],
              groups: Mapping[Any, Any]) -> dict[Any, ratios.Ratio | None]:
    """Many ratios num / den (key -> (num row, den row)) of one run. The keys in `groups` (key ->
    group) pool their variance with the others of their group (bench.core.ratios.pooled_ratios:
    one machine, one method, comparable cases); the rest use their own. A row paired with
    itself is exactly 1. None where the two rows share no ok round."""
    out: dict[Any, ratios.Ratio | None] = {}
    by_group: dict[Any, dict[Any, tuple[list[float], list[float]]]] = {}
    for k, (num, den) in pairs.items():
        values = aligned(num, den)
        if values is None:
            out[k] = None
        elif num is den or case_key(num) == case_key(den):
            out[k] = ratios.Ratio(1.0, 1.0, 1.0, len(values[0]), 0.0)
        elif k in groups:
            by_group.setdefault(groups[k], {})[k] = values
        else:
            out[k] = ratios.ratio_over_rounds(*values)
    for members in by_group.values():
        out.update(ratios.pooled_ratios(members))
    return out
