"""Rows -> tables. The only module that uses pandas.

A run's results live in one directory:
- `rows.jsonl`: one JSON row per finished case, appended and fsync'ed as each case finishes
  (the crash-safe log; raw latency samples included);
- `results.json`: {"format", "environment", "settings", "command", "rows"} (samples included);
- `results.csv` and `results.md`: the tidy table (no raw samples), rewritten atomically
  (temp file + rename) after every row, so an interrupted run leaves valid files.

Column names carry their units. `macs`/`flops` are per image, conv + linear only (fvcore,
cross-checked with torch.utils.flop_counter); `flops` = 2 x `macs`; `macs_all` is fvcore's
total including batch norm and pooling.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from bench.errors import UserError
from bench.worker import json_safe  # noqa: F401  (re-exported: one JSON-cleaning function)

FORMAT = "resnet-bench/results"
FORMAT_VERSION = 1

CASE_COLUMNS = ["model", "device", "workload", "batch_size", "image_size", "layout", "precision", "compile"]
COLUMNS = CASE_COLUMNS + [
    "status", "error", "batch_size_requested",
    "device_name",
    "params", "macs", "flops", "macs_all", "activations",
    "latency_ms_p50", "latency_ms_p90", "latency_ms_p99", "latency_ms_mean", "latency_ms_min",
    "latency_iqr_ms", "latency_rel_iqr", "latency_ms_ci_low", "latency_ms_ci_high", "noisy",
    "throughput_ips", "achieved_tflops", "peak_mem_mb", "compile_s", "first_call_s",
    "max_abs_diff", "max_rel_diff", "output_ok",
    "n_samples", "warmup_iters", "warmup_s", "steady", "stop_reason", "load_avg_1m",
    "block", "depth", "version", "stride_at", "stem", "shortcut", "groups", "width_per_group",
    "flop_counter_flops", "counters_agree",
    "torch", "torchvision", "cuda", "cudnn", "cpu_model", "cpu_isa", "threads", "git_commit", "time_utc",
]
ENV_COLUMNS = ["device_name", "torch", "torchvision", "cuda", "cudnn", "cpu_model", "cpu_isa", "threads", "git_commit"]
RAW_COLUMNS = ["samples_ms"]  # kept in JSON/JSONL only
MD_COLUMNS = [
    "model", "workload", "batch_size", "image_size", "layout", "precision", "compile", "status",
    "latency_ms_p50", "latency_ms_p90", "latency_rel_iqr", "throughput_ips", "speedup_vs_eager",
    "compile_s", "macs", "params", "peak_mem_mb", "max_rel_diff",
]
OK_STATUSES = ("ok", "ok-reduced")


def to_frame(rows: Iterable[dict]) -> pd.DataFrame:
    """Rows -> DataFrame with every standard column (missing ones NA) in a fixed order, then
    any extra columns; raw samples dropped. The header never depends on the first row."""
    df = pd.DataFrame([{k: v for k, v in r.items() if k not in RAW_COLUMNS} for r in rows])
    for col in COLUMNS:
        if col not in df.columns:
            df[col] = pd.NA
    extra = [c for c in df.columns if c not in COLUMNS]
    return df[COLUMNS + extra]


# ---------------------------------------------------------------- derived views
def _mode_key(df: pd.DataFrame) -> list[str]:
    return ["model", "device", "workload", "batch_size", "image_size"]


def with_speedup(df: pd.DataFrame) -> pd.DataFrame:
    """Adds `speedup_vs_eager`: eager fp32 contiguous latency of the same model/workload/batch/
    size divided by this row's latency (>1 = faster than eager fp32)."""
    df = df.copy()
    ok = df["status"].isin(OK_STATUSES)
    ref = df[ok & (df["layout"] == "contiguous") & (df["precision"] == "fp32") & (df["compile"] == "none")]
    ref = ref.groupby(_mode_key(df))["latency_ms_p50"].first().rename("_ref_ms")
    df = df.join(ref, on=_mode_key(df))
    df["speedup_vs_eager"] = (df["_ref_ms"] / pd.to_numeric(df["latency_ms_p50"], errors="coerce")).where(ok)
    return df.drop(columns="_ref_ms")


def best_modes(df: pd.DataFrame) -> pd.DataFrame:
    """Per model/workload/batch/size: the fastest ok mode and its speedup over eager fp32."""
    df = with_speedup(df)
    ok = df[df["status"].isin(OK_STATUSES) & df["latency_ms_p50"].notna()].copy()
    if ok.empty:
        return ok
    ok["latency_ms_p50"] = pd.to_numeric(ok["latency_ms_p50"])
    idx = ok.groupby(_mode_key(df))["latency_ms_p50"].idxmin()
    best = ok.loc[idx, _mode_key(df) + ["layout", "precision", "compile", "latency_ms_p50",
                                          "throughput_ips", "speedup_vs_eager"]]
    return best.reset_index(drop=True)


def ratio_to_baseline(df: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Each variant's latency divided by the baseline variant's, per identical case settings
    (>1 = slower than the baseline)."""
    if baseline not in set(df["model"]):
        raise UserError(f"baseline model {baseline!r} is not in these results; models: {', '.join(sorted(set(df['model'])))}")
    keys = ["device", "workload", "batch_size", "image_size", "layout", "precision", "compile"]
    ok = df[df["status"].isin(OK_STATUSES)].copy()
    ok["latency_ms_p50"] = pd.to_numeric(ok["latency_ms_p50"])
    base = ok[ok["model"] == baseline].groupby(keys)["latency_ms_p50"].first().rename("_base_ms")
    ok = ok.join(base, on=keys)
    ok[f"latency_ratio_to_{baseline}"] = ok["latency_ms_p50"] / ok["_base_ms"]
    return ok.drop(columns="_base_ms")[["model"] + keys + ["latency_ms_p50", f"latency_ratio_to_{baseline}"]]


def to_markdown(df: pd.DataFrame, env: dict | None = None, command: str | None = None) -> str:
    """The human table: a header with the environment and the command, then the main columns."""
    view = with_speedup(df)
    cols = [c for c in MD_COLUMNS if c in view.columns]
    lines = []
    if env:
        lines.append(
            f"Device: {env.get('device_name')} ({env.get('device')}), torch {env.get('torch')}, "
            f"CPU ISA {env.get('cpu_isa') or '-'}, CUDA {env.get('cuda') or '-'}, cuDNN {env.get('cudnn') or '-'}, "
            f"threads {env.get('threads')}, "
            f"commit {env.get('git_commit')}, {env.get('time_utc')}"
        )
        lines.append("")
    if command:
        lines += [f"Command: `{command}`", ""]
    lines.append(view[cols].to_markdown(index=False, floatfmt=".4g"))
    best = best_modes(df)
    if not best.empty:
        lines += ["", "Best mode per variant (speedup over eager fp32 contiguous):", "",
                  best.to_markdown(index=False, floatfmt=".4g")]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- writing
def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


RESULT_FILES = ("rows.jsonl", "results.json", "results.csv", "results.md")


def check_writable_dir(out: Path, *, must_be_new: bool) -> None:
    """UserError unless `out` can be created/written; with must_be_new, unless it holds no results."""
    if out.exists() and not out.is_dir():
        raise UserError(f"output path {out} exists and is not a directory")
    if must_be_new and out.is_dir() and any((out / f).exists() for f in RESULT_FILES):
        raise UserError(f"{out} already holds results; choose another --out, add --overwrite, or --resume {out}")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-", delete=True)
        probe.close()
    except OSError as e:
        raise UserError(f"cannot write to output directory {out}: {e.strerror or e}") from None


class ResultsWriter:
    """Streams rows of one run into its directory; every file is valid after every row."""

    def __init__(self, out: Path, env: dict, settings: dict, command: str, *, fingerprint: str,
                 rows: list[dict] | None = None):
        self.out = Path(out)
        self.env = env
        self.settings = settings
        self.command = command
        self.fingerprint = fingerprint
        self.rows: list[dict] = list(rows or [])

    @classmethod
    def create(cls, out: Path, env: dict, settings: dict, command: str, *, fingerprint: str,
               overwrite: bool = False) -> "ResultsWriter":
        out = Path(out)
        check_writable_dir(out, must_be_new=not overwrite)
        if overwrite:
            for f in RESULT_FILES:
                (out / f).unlink(missing_ok=True)
        w = cls(out, env, settings, command, fingerprint=fingerprint)
        w._write_tables()
        return w

    @classmethod
    def resume(cls, out: Path, env: dict, settings: dict, command: str, *, fingerprint: str) -> "ResultsWriter":
        log = Path(out) / "rows.jsonl"  # the append log is the truth; results.json may lag one row
        prev = load_results(log if log.is_file() else out)
        if prev.fingerprint != fingerprint:
            diff = [f"{k}: {prev.env.get(k)} -> {env.get(k)}" for k in env if prev.env.get(k) != env.get(k)
                    and k not in ("time_utc", "hostname", "platform")]
            why = "; ".join(diff[:3]) or "timing settings differ"
            raise UserError(f"cannot resume {out}: it was measured with another configuration or environment ({why}); start a new run")
        check_writable_dir(Path(out), must_be_new=False)
        return cls(Path(out), prev.env, prev.settings, prev.command, fingerprint=fingerprint, rows=prev.rows)

    def done_keys(self) -> set[str]:
        from bench.cases import Case

        return {Case.from_dict(r).key() for r in self.rows}

    def append(self, row: dict) -> None:
        row = dict(row)
        for k in ENV_COLUMNS:
            row.setdefault(k, self.env.get(k))
        import datetime as dt

        row.setdefault("time_utc", dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
        row = json_safe(row)
        with open(self.out / "rows.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.rows.append(row)
        self._write_tables()

    def frame(self) -> pd.DataFrame:
        return to_frame(self.rows)

    def _write_tables(self) -> None:
        df = self.frame()
        doc = {
            "format": FORMAT, "version": FORMAT_VERSION, "fingerprint": self.fingerprint,
            "environment": self.env, "settings": self.settings, "command": self.command, "rows": self.rows,
        }
        _atomic_write(self.out / "results.json", json.dumps(json_safe(doc), indent=1) + "\n")
        _atomic_write(self.out / "results.csv", df.to_csv(index=False))
        _atomic_write(self.out / "results.md", to_markdown(df, self.env, self.command))


# ---------------------------------------------------------------- reading
@dataclass
class ResultSet:
    rows: list[dict]
    env: dict
    settings: dict
    command: str
    fingerprint: str | None
    source: str  # "resnet-bench" or "pytest-benchmark"

    def frame(self) -> pd.DataFrame:
        return to_frame(self.rows)


def load_results(path: str | Path) -> ResultSet:
    """Read results written by resnet-bench (a run directory, results.json, rows.jsonl or
    results.csv) or a pytest-benchmark JSON file. Anything else is a UserError, never a crash."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"results file not found: {p}")
    if p.is_dir():
        for name in ("results.json", "rows.jsonl"):
            if (p / name).is_file():
                try:
                    return load_results(p / name)
                except UserError:
                    if name == "rows.jsonl":
                        raise
        raise UserError(f"{p} holds no resnet-bench results (no results.json or rows.jsonl)")
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
        from bench.pytest_bench import rows_from_pytest_benchmark

        rows, env = rows_from_pytest_benchmark(doc, p)
        return ResultSet(rows, env, {}, "", None, "pytest-benchmark")
    raise UserError(f"{p} is not a resnet-bench results file nor pytest-benchmark JSON")


def _validate_rows(p: Path, rows: list[dict]) -> None:
    for i, r in enumerate(rows):
        missing = [c for c in CASE_COLUMNS + ["status"] if c not in r]
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
    try:
        df = pd.read_csv(p)
    except Exception as e:  # pandas raises many types for a bad CSV
        raise UserError(f"cannot parse {p} as CSV: {str(e).splitlines()[0]}") from None
    missing = [c for c in CASE_COLUMNS + ["status"] if c not in df.columns]
    if missing:
        raise UserError(f"{p} lacks column(s) {', '.join(missing)}; not resnet-bench results?")
    rows = [json_safe(r) for r in df.astype(object).where(df.notna(), None).to_dict("records")]
    return ResultSet(rows, {}, {}, "", None, "resnet-bench")
