"""What `validate` writes and shows: per-check tables, the verdict lines, and the files under
``--out``: ``harness.csv``, ``torchvision.csv`` (one per check run), ``validation.md``
(environment, command, load, tables) and ``validation.json`` (the same plus every round's raw
samples)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

from bench.report import tables
from bench.report.markdown import validation_markdown
from bench.results.files import atomic_write, json_safe
from bench.validate.rounds import CHECKS, CSV_COLUMNS, TOLERANCE

TITLES = {
    "harness": "Harness vs torch.utils.benchmark.Timer (same step, same threads): median latency ratio ours/Timer, "
               "bar: within ±{tol:.0%}",
    "torchvision": "resnet_impl vs torchvision ({model}, same weights, interleaved): latency ratio ours/torchvision, "
                   "bar: 1.00 ± {tol:.2f}",
}


def failed(rows: list[dict]) -> list[dict]:
    """Rows that make the command exit 1: a failed verdict, or a mode that could not be measured."""
    return [r for r in rows if r.get("status") == "error" or r.get("verdict") == "fail"]


def row_label(r: dict) -> str:
    return r.get("path") or f"{r['layout']}/{r['precision']}/{r['compile']}"


def fail_reason(r: dict) -> str:
    if r.get("status") == "error":
        return f"not measured: {r.get('error')}"
    why = {"outside": "the CI lies outside the band too",
           "straddles": "but the CI straddles the band: noise cannot be ruled out, rerun with more --rounds"}
    return f"ratio {r['ratio']:.3f} outside 1 +/- {r.get('tolerance', TOLERANCE):g}; {why.get(r['ci'], '')}"


def failure_lines(doc: dict) -> list[str]:
    return [f"{check} {row_label(r)}: {fail_reason(r)}"
            for check in CHECKS for r in failed(doc["checks"].get(check) or [])]


def check_tables(doc: dict) -> dict[str, tables.Table]:
    s = doc["settings"]
    return {check: tables.validation(check, rows, TITLES[check].format(tol=s["tolerance"], model=s["model"]))
            for check, rows in doc["checks"].items()}


def csv_text(rows: list[dict], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: ("" if r.get(c) is None else r.get(c)) for c in columns})
    return buf.getvalue()


def write_outputs(out: Path, doc: dict) -> list[Path]:
    """Write validation.json/.md and one CSV per check run; a CSV of a check not run this time
    is removed so the directory describes one run. Other files (README.md) are left alone."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for check in CHECKS:
        p = out / f"{check}.csv"
        if check in doc["checks"]:
            atomic_write(p, csv_text(doc["checks"][check], CSV_COLUMNS[check]))
            written.append(p)
        else:
            p.unlink(missing_ok=True)
    atomic_write(out / "validation.json", json.dumps(json_safe(doc), indent=1) + "\n")
    atomic_write(out / "validation.md", validation_markdown(doc, check_tables(doc), failure_lines(doc)))
    return written + [out / "validation.json", out / "validation.md"]
