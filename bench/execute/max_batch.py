"""``run --find-max-batch``: search each mode's largest batch, then measure the batch ladder.

1. **Search**: one target per model, workload, image size and mode (a case at the start batch)
   runs through the executor like any case, with ``RunSettings.search`` set: the measuring
   process probes batches (bench.core.batch_search, CaseRunner.probe) and returns one row with
   the largest batch that ran, the smallest that did not, why the search stopped, and every
   probe. A crash or a timeout of the search is that target's row, as for a case.
2. **Plan**: each target's ladder (powers of two below its max, and the max;
   bench.core.batch_search.ladder) becomes the run's planned cases.
3. **Stamp**: every measured row gets its target's search columns (``max_batch_searched``,
   ``max_batch_fail``, ``max_batch_stop``, ``max_batch_probes``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from bench.core.batch_search import ladder
from bench.core.case import Case, Sweep
from bench.execute.base import Events, Executor, RunSettings

SEARCH_COLUMNS = ("max_batch_searched", "max_batch_fail", "max_batch_stop", "max_batch_probes")
DEFAULTS = {"max_batch": 4096, "max_probes": 24, "resolution": 0.05, "mem_cap_mb": None}


def target_key(row: Mapping[str, Any]) -> str:
    """A search target's identity: the case without its batch size."""
    return "|".join(str(row[k]) for k in ("model", "workload", "image_size", "layout", "precision", "compile",
                                          "device"))


def targets(sweep: Sweep, start: int = 1) -> list[Case]:
    """One case per model, workload, image size and mode, at the start batch."""
    return dataclasses.replace(sweep, batch_sizes=(start,)).cases()


def search(executor: Executor, cases: list[Case], settings: RunSettings, options: Mapping[str, Any],
           events: Events) -> dict[str, dict]:
    """Run the search of every target through `executor`; {target_key: search row}."""
    opts = {**DEFAULTS, **{k: v for k, v in options.items() if v is not None}}
    results: dict[str, dict] = {}

    def on_row(row: dict) -> None:
        results[target_key(row)] = row
        events.row(row)

    executor.run(cases, dataclasses.replace(settings, search=opts), Events(row=on_row, start=events.start))
    return results


def plan(cases: Iterable[Case], results: Mapping[str, dict]) -> list[Case]:
    """The cases to measure: each target's batch ladder up to its max ((1,) when nothing fitted
    or the search failed, so the row says so)."""
    out = []
    for c in cases:
        row = results.get(target_key(c.as_dict()), {})
        found = row.get("max_batch_searched") if row.get("status") == "ok" else None
        out += [c.with_batch_size(b) for b in ladder(found)]
    return out


def stamp(row: dict, results: Mapping[str, dict]) -> dict:
    """`row` with its target's search columns (a failed search: its status and error as the stop)."""
    found = results.get(target_key(row))
    if found is None:
        return row
    row = dict(row)
    for k in SEARCH_COLUMNS:
        row[k] = found.get(k)
    if found.get("status") not in ("ok", "oom"):
        row["max_batch_stop"] = f"search {found.get('status')}: {found.get('error', '')}"[:300]
    return row


def probe_lines(row: Mapping[str, Any], label: Callable[[Mapping[str, Any]], str]) -> list[str]:
    """One log line per probe of a search row, then its result."""
    head = label(row)
    lines = []
    for p in row.get("max_batch_probes") or []:
        if p["fits"]:
            what = f"fits (peak {p['peak_mb']:,.0f} MiB, {p['seconds']:.1f} s)"
        else:
            what = f"does not fit ({p['why']})" if p.get("ran", True) else f"not run ({p['why']})"
        lines.append(f"max-batch probe {head}: batch {p['batch']} {what}")
    if row.get("status") in ("ok", "oom"):
        lines.append(f"max batch {head}: {row.get('max_batch_searched') or 'none'} (first not fitting: "
                     f"{row.get('max_batch_fail') or '-'}; stop: {row.get('max_batch_stop')})")
    else:
        lines.append(f"max batch {head}: search {row.get('status')}: {row.get('error')}")
    return lines
