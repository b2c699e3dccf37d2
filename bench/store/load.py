"""Read results: a run directory, run.json, rows.jsonl, results.json, results.csv, or
pytest-benchmark JSON. Anything else is a UserError, never a crash; nothing read is evaluated,
every file is read bounded (bench.results.files.read_bytes: no FIFO, no endless device).

A run directory is read from its log: ``rows.jsonl`` holds every record (one case, one round)
and is the truth; ``run.json`` (or, for runs written before it existed, ``results.json``)
says what the run is. ``results.json`` is read for its records only when the log is gone.

**One integrity check** (:func:`check_records`) runs on every load. A record is set aside,
never silently taken in, when

- it holds a number JSON cannot hold (``NaN``, ``Infinity``): a file edited or written by
  something else;
- its case and round were already read (a duplicated line);
- it is not one of the run's planned cases, or was measured in another environment than the
  run's (another torch, device, CPU, threads or commit): a row from another run.

The records kept are the :class:`ResultSet`'s; the ones set aside and why are its
``rejected`` (the run's resume moves them to ``rows.rejected.jsonl``, keeping the original
lines); one note line says how many.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from bench.core.case import FIELD_DEFAULTS, Case
from bench.errors import UserError
from bench.results import columns
from bench.results.files import FORMAT, META_FILE, ROWS_FILE, RUN_FORMAT, json_safe, read_text
from bench.results.rounds import aggregate, record_key

_INT_FIELDS = ("batch_size", "image_size", "ddp")
#: Environment keys a record must share with its run (the others may differ per row: host...).
_RECORD_ENV_KEYS = ("torch", "torchvision", "cuda", "cudnn", "device_name", "cpu_model", "cpu_isa", "threads",
                    "git_commit")
_CLUSTER_ENV_KEYS = ("torch", "torchvision", "cuda", "cudnn", "threads", "git_commit")


@dataclass
class ResultSet:
    """What a results file holds: its records (one per case and round, in file order), the
    run's environment, settings, command and fingerprint, where it came from, notes for the
    reader, and the records the integrity check set aside (``(line or record, why)``)."""

    records: list[dict]
    env: dict
    settings: dict
    command: str
    fingerprint: str | None
    source: str  # "resnet-bench" or "pytest-benchmark"
    notes: list[str] = field(default_factory=list)
    rejected: list[tuple[object, str]] = field(default_factory=list)
    meta_file: Path | None = None  # where the environment and settings were read from

    @cached_property
    def rows(self) -> list[dict]:
        """One row per case, pooled over its rounds (bench.results.rounds.aggregate)."""
        return aggregate(self.records)

    def frame(self):
        from bench.results.views import to_frame

        return to_frame(self.rows)


def load_results(path: str | Path) -> ResultSet:
    """Read results written by resnet-bench (a run directory, run.json, rows.jsonl,
    results.json or results.csv) or a pytest-benchmark JSON file, records checked
    (:func:`check_records`)."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"results file not found: {p}")
    if p.is_dir():
        rs = _load_dir(p)
    elif p.name == META_FILE:
        rs = _load_dir(p.parent)
    elif p.suffix == ".jsonl":
        rs = _load_jsonl(p)
    elif p.suffix == ".csv":
        rs = _load_csv(p)
    else:
        rs = _load_json(p, read_text(p))
    check_records(rs)
    return rs


# ------------------------------------------------------------------ formats
def _load_dir(p: Path) -> ResultSet:
    log, meta_json, summary = p / ROWS_FILE, p / META_FILE, p / "results.json"
    if log.is_file():
        return _load_jsonl(log)
    if summary.is_file():
        rs = _load_json(summary, read_text(summary))
        if meta_json.is_file() or rs.records:
            rs.notes.append(f"{log} is missing: read the records kept in {summary}")
        return rs
    if meta_json.is_file():
        env, settings, command, fp = _meta(meta_json, _parse(meta_json, read_text(meta_json)))
        return ResultSet([], env, settings, command, fp, "resnet-bench", meta_file=meta_json)
    raise UserError(f"{p} holds no resnet-bench results (no {ROWS_FILE}, {META_FILE} or results.json)")


class _NonFinite(ValueError):
    pass


def _no_constants(name: str):
    raise _NonFinite(name)


def _parse(p: Path, text: str, where: str = "", strict: bool = False):
    try:
        return json.loads(text, parse_constant=_no_constants if strict else None)
    except json.JSONDecodeError as e:
        raise UserError(f"{p}{where} is not valid JSON ({e.msg} at line {e.lineno}); is the file complete?") from None
    except RecursionError:
        raise UserError(f"{p}{where}: JSON nested too deeply to be results") from None


def _meta(p: Path, doc) -> tuple[dict, dict, str, str | None]:
    if not isinstance(doc, dict) or doc.get("format") not in (FORMAT, RUN_FORMAT):
        raise UserError(f"{p} is not a resnet-bench run file")
    env, settings, command = doc.get("environment") or {}, doc.get("settings") or {}, doc.get("command") or ""
    for name, value, kind in (("environment", env, dict), ("settings", settings, dict), ("command", command, str)):
        if not isinstance(value, kind):
            raise UserError(f"{p}: '{name}' must be {'an object' if kind is dict else 'a string'}, "
                            f"got {type(value).__name__}")
    fp = doc.get("fingerprint")
    return env, settings, command, fp if isinstance(fp, str) else None


def _load_json(p: Path, text: str) -> ResultSet:
    doc = _parse(p, text)
    if isinstance(doc, dict) and doc.get("format") in (FORMAT, RUN_FORMAT):
        # version 2 keeps the records apart from the pooled rows; version 1's rows are its records
        records = doc.get("records") if "records" in doc else doc.get("rows", [])
        if not isinstance(records, list):
            raise UserError(f"{p}: 'rows' must be a list of objects")
        _validate_rows(p, records)
        env, settings, command, fp = _meta(p, doc)
        return ResultSet(records, env, settings, command, fp, "resnet-bench", meta_file=p)
    if isinstance(doc, dict) and "benchmarks" in doc and "machine_info" in doc:
        from bench.results.pytest_bench import rows_from_pytest_benchmark

        rows, env = rows_from_pytest_benchmark(doc, p)
        return ResultSet(rows, env, {}, "", None, "pytest-benchmark")
    raise UserError(f"{p} is not a resnet-bench results file nor pytest-benchmark JSON")


def _load_jsonl(p: Path) -> ResultSet:
    text = read_text(p)
    records: list[dict] = []
    notes, rejected = [], []
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line, parse_constant=_no_constants)
        except _NonFinite as e:
            rejected.append((line, f"line {i + 1} holds {e} (JSON has no such number)"))
            continue
        except (json.JSONDecodeError, RecursionError):
            if i == len(lines) - 1:  # no newline after it: a write that did not finish
                notes.append(f"{p}: the last line is incomplete (cut by a crash in mid-write) and was ignored")
                break
            raise UserError(f"{p}: line {i + 1} is not valid JSON") from None
        records.append(rec)
    _validate_rows(p, records)
    env: dict = {}
    settings: dict = {}
    command, fingerprint, meta_file = "", None, None
    for meta in (p.with_name(META_FILE), p.with_name("results.json")):
        if meta.is_file():
            try:
                env, settings, command, fingerprint = _meta(meta, _parse(meta, read_text(meta)))
                meta_file = meta
                break
            except UserError as e:
                notes.append(f"{e}; {p} read without its environment")
    rs = ResultSet(records, env, settings, command, fingerprint, "resnet-bench", notes, meta_file=meta_file)
    rs.rejected.extend(rejected)
    return rs


def _load_csv(p: Path) -> ResultSet:
    import io

    import pandas as pd

    from bench.escape import csv_unescape

    text = read_text(p)
    try:
        df = pd.read_csv(io.StringIO(text))
    except Exception as e:  # pandas raises many types for a bad CSV
        raise UserError(f"cannot parse {p} as CSV: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    missing = [c for c in columns.REQUIRED_CASE_COLUMNS + ["status"] if c not in df.columns]
    if missing:
        raise UserError(f"{p} lacks column(s) {', '.join(missing)}; not resnet-bench results?")
    rows = [json_safe({k: csv_unescape(v) if isinstance(v, str) else v for k, v in r.items()})
            for r in df.astype(object).where(df.notna(), None).to_dict("records")]
    for r in rows:  # a table of pooled rows: each row stands for its case (its rounds are not kept)
        for k in ("round_ids", "round_latency_ms"):
            r.pop(k, None)
    _validate_rows(p, rows)
    return ResultSet(rows, {}, {}, "", None, "resnet-bench")


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
        rnd = r.get("round")
        if rnd is not None and not (isinstance(rnd, int) and not isinstance(rnd, bool) and rnd >= 1):
            raise UserError(f"{p}: row {i + 1}: round must be a whole number >= 1, got {rnd!r:.60}")
        for k in ("samples_ms", "round_latency_ms", "round_ids"):
            if k in r and r[k] is not None and not (isinstance(r[k], list) and all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) for x in r[k])):
                raise UserError(f"{p}: row {i + 1}: {k} must be a list of numbers")


def _absent(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


# ------------------------------------------------------------------ the integrity check
def check_records(rs: ResultSet) -> None:
    """Set aside (into ``rs.rejected``) every record that is a duplicate of an earlier one,
    not a planned case of the run, or measured in another environment than the run's; one note
    says how many and why. Records with non-finite numbers were set aside while parsing."""
    planned: set[str] | None = None
    cases = rs.settings.get("planned_cases") if isinstance(rs.settings, dict) else None
    if isinstance(cases, list) and cases:
        try:
            planned = {Case.from_dict(c).key() for c in cases}
        except (KeyError, TypeError, ValueError, AttributeError):
            planned = None
    keys = _CLUSTER_ENV_KEYS if rs.settings.get("env_scope") == "cluster" else _RECORD_ENV_KEYS
    env = rs.env or {}
    seen: dict[str, int] = {}
    kept = []
    for i, rec in enumerate(rs.records):
        why = None
        try:
            key = record_key(rec)
        except (KeyError, TypeError, ValueError):
            key = None
        if key is not None and key in seen:
            why = f"record {i + 1} repeats the case and round of record {seen[key] + 1}"
        elif key is not None and planned is not None and key.rsplit("#", 1)[0] not in planned:
            why = f"record {i + 1} ({rec.get('model')}) is not a case of this run"
        else:
            own = [k for k in keys if not (k == "threads" and rec.get("ddp"))]  # ranks: --threads or 1 each
            diff = [f"{k}: {env.get(k)} -> {rec.get(k)}" for k in own
                    if env.get(k) is not None and rec.get(k) is not None and str(rec.get(k)) != str(env.get(k))]
            if diff and rs.source == "resnet-bench":
                why = f"record {i + 1} was measured elsewhere ({'; '.join(diff[:2])})"
        if why:
            rs.rejected.append((rec, why))
            continue
        if key is not None:
            seen[key] = i
        kept.append(rec)
    rs.records = kept
    rs.__dict__.pop("rows", None)
    if rs.rejected:
        first = rs.rejected[0][1]
        rs.notes.append(f"{len(rs.rejected)} record(s) set aside, not taken into the results (e.g. {first})")
