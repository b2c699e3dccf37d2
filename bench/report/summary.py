"""The answer files of a run directory, written when a session of the run ends (finished,
interrupted or terminated) from its records: ``results.json`` (the run file, the rows pooled
over rounds, and every record, so it alone can restore a lost log), ``results.csv`` (the pooled
rows, spreadsheet-safe: bench.escape.csv_frame) and ``results.md`` (bench.report.markdown).
Each is written atomically and never through a link (bench.results.files). rows.jsonl stays
the truth: `report` reads it, so a session killed before this ran loses nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.escape import csv_frame
from bench.report.markdown import results_markdown
from bench.results import columns
from bench.results.files import FORMAT, FORMAT_VERSION, atomic_write, json_safe

#: Raw columns a pooled row keeps out of results.json (every record there has them).
_RECORD_ONLY = ("samples_ms",)


def csv_text(analysis) -> str:
    """The pooled rows as results.csv: every stored column, then the derived ones
    (flags, speedups and their intervals), text cells made safe for spreadsheets."""
    frame = analysis.frame
    if frame.empty:
        return ""
    raw = set(columns.raw())
    keep = [c for c in frame.columns if c not in raw]
    return csv_frame(frame[keep]).to_csv(index=False)


def write(out: Path, meta: Mapping[str, Any], analysis, records: list[dict]) -> list[Path]:
    """results.json, results.csv and results.md of the run in `out` (meta: run.json's document)."""
    out = Path(out)
    doc = {**{k: meta.get(k) for k in ("fingerprint", "environment", "settings", "command")},
           "format": FORMAT, "version": FORMAT_VERSION,
           "rows": [{k: v for k, v in r.items() if k not in _RECORD_ONLY} for r in analysis.full_records()],
           "records": records}
    paths = [out / "results.json", out / "results.csv", out / "results.md"]
    atomic_write(paths[0], json.dumps(json_safe(doc), indent=1) + "\n")
    atomic_write(paths[1], csv_text(analysis))
    atomic_write(paths[2], results_markdown(analysis))
    return paths
