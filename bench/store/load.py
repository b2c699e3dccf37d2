"""Read results: a run directory, results.json, rows.jsonl, results.csv, or pytest-benchmark
JSON. Anything else is a UserError, never a crash. Nothing read is evaluated."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bench.errors import UserError
from bench.results import columns
from bench.results.files import FORMAT, ROWS_FILE, json_safe


@dataclass
class ResultSet:
    rows: list[dict]
    env: dict
    settings: dict
    command: str
    fingerprint: str | None
    source: str  # "resnet-bench" or "pytest-benchmark"

    def frame(self):
        from bench.results.views import to_frame

        return to_frame(self.rows)


def load_results(path: str | Path) -> ResultSet:
    """Read results written by resnet-bench (a run directory, results.json, rows.jsonl or
    results.csv) or a pytest-benchmark JSON file."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"results file not found: {p}")
    if p.is_dir():
        for name in ("results.json", ROWS_FILE):
            if (p / name).is_file():
                try:
                    return load_results(p / name)
                except UserError:
                    if name == ROWS_FILE:
                        raise
        raise UserError(f"{p} holds no resnet-bench results (no results.json or {ROWS_FILE})")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read results file {p}: {e}") from None
    if p.suffix == ".jsonl":
        return _load_jsonl(p, text)
    if p.suffix == ".csv":
        return _load_csv(p)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{p} is not valid JSON ({e.msg} at line {e.lineno}); is the file complete?") from None
    if isinstance(doc, dict) and doc.get("format") == FORMAT:
        rows = doc.get("rows")
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise UserError(f"{p}: 'rows' must be a list of objects")
        _validate_rows(p, rows)
        return ResultSet(rows, doc.get("environment") or {}, doc.get("settings") or {},
                         doc.get("command") or "", doc.get("fingerprint"), "resnet-bench")
    if isinstance(doc, dict) and "benchmarks" in doc and "machine_info" in doc:
        from bench.results.pytest_bench import rows_from_pytest_benchmark

        rows, env = rows_from_pytest_benchmark(doc, p)
        return ResultSet(rows, env, {}, "", None, "pytest-benchmark")
    raise UserError(f"{p} is not a resnet-bench results file nor pytest-benchmark JSON")


def _validate_rows(p: Path, rows: list[dict]) -> None:
    for i, r in enumerate(rows):
        missing = [c for c in columns.CASE_COLUMNS + ["status"] if c not in r]
        if missing:
            raise UserError(f"{p}: row {i + 1} lacks column(s) {', '.join(missing)}; not resnet-bench results?")


def _load_jsonl(p: Path, text: str) -> ResultSet:
    rows = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:  # a last line cut by a kill mid-write: drop it
                break
            raise UserError(f"{p}: line {i + 1} is not valid JSON") from None
    _validate_rows(p, rows)
    env = {}
    meta = p.with_name("results.json")
    fingerprint = None
    settings: dict = {}
    command = ""
    if meta.is_file():
        try:
            doc = json.loads(meta.read_text())
            env, settings = doc.get("environment") or {}, doc.get("settings") or {}
            command, fingerprint = doc.get("command") or "", doc.get("fingerprint")
        except json.JSONDecodeError:
            pass
    return ResultSet(rows, env, settings, command, fingerprint, "resnet-bench")


def _load_csv(p: Path) -> ResultSet:
    import pandas as pd

    try:
        df = pd.read_csv(p)
    except Exception as e:  # pandas raises many types for a bad CSV
        raise UserError(f"cannot parse {p} as CSV: {str(e).splitlines()[0]}") from None
    missing = [c for c in columns.CASE_COLUMNS + ["status"] if c not in df.columns]
    if missing:
        raise UserError(f"{p} lacks column(s) {', '.join(missing)}; not resnet-bench results?")
    rows = [json_safe(r) for r in df.astype(object).where(df.notna(), None).to_dict("records")]
    return ResultSet(rows, {}, {}, "", None, "resnet-bench")
