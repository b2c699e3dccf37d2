"""The one definition of a row fit to rank (:func:`flags`, :func:`reliable`) and of a ratio
fit to trust (:func:`trusted_ratio`): every view that crowns or divides (bench.results.views,
the figures' Pareto front and heat map) asks these.

A row is fit to rank only when its status is ``ok``, its warm-up settled and its output
matches eager fp32. With rounds, a noisy row or one measured on a busy CPU is still ranked:
what the noise did to its ratios is in their intervals (it was re-measured beside the
reference in every round). A row of a single round has no such interval, so there ``noisy``
and ``busy CPU`` keep it from ranking, as before rounds existed. A ratio is trusted when both
rows are reliable and its 95% interval is no wider than ``WIDE_CI`` (+-5%); a ratio of one
round (no interval) only when neither row carries any flag.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import pandas as pd

from bench.core.ratios import Ratio
from bench.results import columns

#: A ratio whose 95% CI is wider than +-5% is shown, never crowned.
WIDE_CI = 0.05
#: Flags that keep a row from ranking only when it has no paired interval (a single round).
SINGLE_ROUND_ONLY = ("noisy", "busy CPU")


def busy(row: Mapping, cpu_count: int | None = None) -> bool:
    """A CPU case measured while more runnable work than cores was competing (load average
    above the core count, which already includes the measuring process itself). `cpu_count`:
    the measuring machine's (the run's environment); this machine's when not given."""
    load, cores = row.get("load_avg_1m"), cpu_count or os.cpu_count() or 1
    return (row.get("device") == "cpu" and isinstance(load, (int, float)) and not isinstance(load, bool)
            and load > cores + 0.5)


def _is(value, want: bool) -> bool:
    """`value` is the flag `want` (a bool or numpy bool; NA, None and text are neither)."""
    return type(value).__name__ in ("bool", "bool_") and bool(value) == want


def flags(row: Mapping, cpu_count: int | None = None) -> list[str]:
    """Why a row's timing cannot be ranked, in a fixed order; [] for a reliable row.

    A status other than ``ok`` (``ok-reduced`` reads "batch reduced": measured at another batch
    than asked), ``noisy`` (IQR / median above 10%), ``unsteady`` (the warm-up never settled),
    ``busy CPU`` (:func:`busy`), ``output differs`` (the mode's output is off eager fp32's)."""
    status = row.get("status")
    out = [] if status == "ok" else ["batch reduced" if status == "ok-reduced" else str(status)]
    if _is(row.get("noisy"), True):
        out.append("noisy")
    if _is(row.get("steady"), False):
        out.append("unsteady")
    if busy(row, cpu_count):
        out.append("busy CPU")
    if _is(row.get("output_ok"), False):
        out.append("output differs")
    return out


def n_rounds(row: Mapping) -> int:
    """Rounds the row pools (1 for rows from before rounds, 0 when none measured)."""
    n = row.get("rounds")
    if isinstance(n, (int, float)) and not isinstance(n, bool) and n == n:
        return int(n)
    return 1 if row.get("status") in columns.OK_STATUSES else 0


def blocking(row: Mapping, cpu_count: int | None = None) -> list[str]:
    """The flags that keep the row from ranking (:func:`flags` less, with two or more rounds,
    ``noisy`` and ``busy CPU``: their effect is in the row's intervals)."""
    fl = flags(row, cpu_count)
    return [f for f in fl if f not in SINGLE_ROUND_ONLY] if n_rounds(row) >= 2 else fl


def reliable(row: Mapping, cpu_count: int | None = None) -> bool:
    return not blocking(row, cpu_count)


def with_flags(df: pd.DataFrame, cpu_count: int | None = None) -> pd.DataFrame:
    """Adds `flags` (:func:`flags` joined by ", "; "" for a row without any), `reliable`
    (:func:`reliable`) and `rounds` (for rows from before rounds: 1 when measured)."""
    df = df.copy()
    records = df.to_dict("records") if len(df) else []
    df["flags"] = [", ".join(flags(r, cpu_count)) for r in records]
    df["reliable"] = pd.Series([reliable(r, cpu_count) for r in records], index=df.index, dtype=bool)
    df["rounds"] = [n_rounds(r) for r in records]
    return df


def trusted_ratio(ratio: Ratio | None, row: Mapping, other: Mapping, cpu_count: int | None = None) -> bool:
    """A ratio of `row` over `other` may be ranked: both rows reliable and the interval no
    wider than WIDE_CI; without an interval (one round), neither row noisy nor busy."""
    if ratio is None or not (reliable(row, cpu_count) and reliable(other, cpu_count)):
        return False
    if ratio.rel_half_width is None:
        return not (flags(row, cpu_count) or flags(other, cpu_count))
    return ratio.rel_half_width <= WIDE_CI


def ratio_note(ratio: Ratio | None, trusted: bool) -> str:
    """Why a ratio is not trusted: its interval is wide, or it has none."""
    if ratio is None or trusted:
        return ""
    if ratio.rel_half_width is not None and ratio.rel_half_width > WIDE_CI:
        return f"CI +-{ratio.rel_half_width:.0%} over {ratio.n} round(s)"
    return ""
