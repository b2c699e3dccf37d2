"""Read results: a run directory, results.json, rows.jsonl, results.csv, or pytest-benchmark
JSON. Anything else is a UserError, never a crash; nothing read is evaluated. What a reader
should know but is not an error (a torn last line, a case with two rows) is a note."""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.core.case import FIELD_DEFAULTS
from bench.errors import UserError
from bench.results import columns
from bench.results.files import FORMAT, ROWS_FILE, json_safe

_INT_FIELDS = ("batch_size", "image_size", "ddp")


@dataclass
class ResultSet:
    rows: list[dict]
    env: dict
    settings: dict
    command: str
    fingerprint: str | None
    source: str  # "resnet-bench" or "pytest-benchmark"
    notes: list[str] = field(default_factory=list)  # warnings for the reader

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
                    if name == ROWS_FILE or not (p / ROWS_FILE).is_file():
                        raise
        raise UserError(f"{p} holds no resnet-bench results (no results.json or {ROWS_FILE})")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read results file {p}: {e}") from None
    if p.suffix == ".jsonl":
        rs = _load_jsonl(p, text)
    elif p.suffix == ".csv":
        rs = _load_csv(p)
    else:
        rs = _load_json(p, text)
    _note_duplicates(p, rs)
    return rs


def _parse(p: Path, text: str, where: str = ""):
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{p}{where} is not valid JSON ({e.msg} at line {e.lineno}); is the file complete?") from None
    except RecursionError:
        raise UserError(f"{p}{where}: JSON nested too deeply to be results") from None


def _load_json(p: Path, text: str) -> ResultSet:
    doc = _parse(p, text)
    if isinstance(doc, dict) and doc.get("format") == FORMAT:
        rows = doc.get("rows")
        if not isinstance(rows, list):
            raise UserError(f"{p}: 'rows' must be a list of objects")
        _validate_rows(p, rows)
        env, settings, command = _meta(p, doc)
        fp = doc.get("fingerprint")
        return ResultSet(rows, env, settings, command, fp if isinstance(fp, str) else None, "resnet-bench")
    if isinstance(doc, dict) and "benchmarks" in doc and "machine_info" in doc:
        from bench.results.pytest_bench import rows_from_pytest_benchmark

        rows, env = rows_from_pytest_benchmark(doc, p)
        return ResultSet(rows, env, {}, "", None, "pytest-benchmark")
    raise UserError(f"{p} is not a resnet-bench results file nor pytest-benchmark JSON")


def _meta(p: Path, doc: dict) -> tuple[dict, dict, str]:
    env, settings, command = doc.get("environment") or {}, doc.get("settings") or {}, doc.get("command") or ""
    for name, value, kind in (("environment", env, dict), ("settings", settings, dict), ("command", command, str)):
        if not isinstance(value, kind):
            raise UserError(f"{p}: '{name}' must be {'an object' if kind is dict else 'a string'}, "
                            f"got {type(value).__name__}")
    return env, settings, command


def _validate_rows(p: Path, rows: list) -> None:
    """Every row an object with the case columns and a status, of the right types."""
    for i, r in enumerate(rows):
        if not isinstance(r, dict):
            raise UserError(f"{p}: row {i + 1} is not an object (got {type(r).__name__})")
        missing = [c for c in columns.REQUIRED_CASE_COLUMNS + ["status"] if c not in r]
        if missing:
            raise UserError(f"{p}: row {i + 1} lacks column(s) {', '.join(missing)}; not resnet-bench results?")
        for c in columns.CASE_COLUMNS + ["status"]:
            if c not in r or (c in FIELD_DEFAULTS and _absent(r[c])):
                continue  # a field added later (bench.core.case.FIELD_DEFAULTS): its default
            v = r[c]
            if c in _INT_FIELDS or c == "batch_size_requested":
                ok = (isinstance(v, int) and not isinstance(v, bool)) or (
                    isinstance(v, float) and math.isfinite(v) and v.is_integer())
            else:
                ok = isinstance(v, str) and v != ""
            if not ok:
                kind = "a whole number" if c in _INT_FIELDS else "a non-empty string"
                raise UserError(f"{p}: row {i + 1}: {c} must be {kind}, got {v!r:.60}")
        req = r.get("batch_size_requested")
        if req is not None and not (isinstance(req, (int, float)) and not isinstance(req, bool)
                                    and (math.isnan(req) or float(req).is_integer())):
            raise UserError(f"{p}: row {i + 1}: batch_size_requested must be a whole number, got {req!r:.60}")
        for k in ("samples_ms",):
            if k in r and r[k] is not None and not (isinstance(r[k], list) and all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) for x in r[k])):
                raise UserError(f"{p}: row {i + 1}: {k} must be a list of numbers")


def _absent(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _load_jsonl(p: Path, text: str) -> ResultSet:
    rows = []
    notes = []
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        last = i == len(lines) - 1  # no newline after it: a write that did not finish
        try:
            rows.append(json.loads(line))
        except (json.JSONDecodeError, RecursionError):
            if last:
                notes.append(f"{p}: the last line is incomplete (cut by a crash in mid-write) and was ignored")
                break
            raise UserError(f"{p}: line {i + 1} is not valid JSON") from None
    _validate_rows(p, rows)
    env: dict = {}
    settings: dict = {}
    command, fingerprint = "", None
    meta = p.with_name("results.json")
    if meta.is_file():
        try:
            doc = json.loads(meta.read_text(encoding="utf-8"))
            if isinstance(doc, dict):
                env, settings, command = _meta(meta, doc)
                fingerprint = doc.get("fingerprint") if isinstance(doc.get("fingerprint"), str) else None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            notes.append(f"{meta} is unreadable; {p} read without its environment")
    return ResultSet(rows, env, settings, command, fingerprint, "resnet-bench", notes)


def _load_csv(p: Path) -> ResultSet:
    import pandas as pd

    try:
        df = pd.read_csv(p)
    except Exception as e:  # pandas raises many types for a bad CSV
        raise UserError(f"cannot parse {p} as CSV: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    missing = [c for c in columns.REQUIRED_CASE_COLUMNS + ["status"] if c not in df.columns]
    if missing:
        raise UserError(f"{p} lacks column(s) {', '.join(missing)}; not resnet-bench results?")
    rows = [json_safe(r) for r in df.astype(object).where(df.notna(), None).to_dict("records")]
    _validate_rows(p, rows)
    return ResultSet(rows, {}, {}, "", None, "resnet-bench")


def _note_duplicates(p: Path, rs: ResultSet) -> None:
    from bench.core.case import Case

    try:
        counts = Counter(Case.from_row(r).key() for r in rs.rows)
    except (KeyError, TypeError, ValueError):
        return
    dup = [k for k, n in counts.items() if n > 1]
    if dup:
        example = dup[0].replace("|", " ")
        rs.notes.append(f"{p}: {len(dup)} case(s) have more than one row (e.g. {example}); a run holds one row "
                        "per case, so these rows come from different runs or were edited")
