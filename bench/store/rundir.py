"""Write one run's directory as the run happens: every file is valid after every row.

``rows.jsonl`` is the append log (one line per case, fsync'ed as each case finishes) and the
truth about which cases are done; ``results.json``, ``results.csv`` and ``results.md`` are
rewritten atomically after each row (formats: bench.results.files).

Guarantees (README "Guarantees"):

- One writer per directory: :class:`ResultsWriter` holds an exclusive ``flock`` on
  ``DIR/.lock`` for its lifetime (the kernel drops it when the process dies, so it cannot go
  stale); a second run or resume of the same directory is refused.
- A torn last line of ``rows.jsonl`` (a crash in mid-write) is set aside into
  ``rows.jsonl.torn`` and the log cut back to its last complete line before anything is
  appended, so the rows already kept never become unreadable.
- One row per case: a case is done when ``rows.jsonl`` holds a row for its key (the requested
  batch size, bench.core.case.Case.from_row); rows that are retried are first moved to
  ``retried.jsonl``, so no key is ever written twice.
- A new run never writes into a directory that already holds results unless asked to.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from bench.core.case import Case
from bench.errors import UserError
from bench.report.markdown import results_markdown
from bench.results import columns
from bench.results.files import (FORMAT, FORMAT_VERSION, RESULT_FILES, ROWS_FILE, atomic_write, file_mode,
                                 json_safe)
from bench.results.views import to_frame
from bench.store.load import load_results

LOCK_FILE = ".lock"
TORN_FILE = ROWS_FILE + ".torn"
RETRIED_FILE = "retried.jsonl"
#: Statuses --retry-failed measures again (a crash, a hang or an error may be transient).
RETRYABLE = ("crashed", "timeout", "error")


def check_path(out: str | Path) -> None:
    """UserError for a path that cannot name a results directory (empty, not UTF-8)."""
    if not str(out).strip():
        raise UserError("--out must name a directory, got an empty string")
    try:
        str(out).encode("utf-8")
    except UnicodeEncodeError:
        raise UserError(f"--out {str(out).encode('utf-8', 'backslashreplace').decode()} is not valid UTF-8; "
                        "choose a name made of valid text") from None


def check_writable_dir(out: Path, *, must_be_new: bool) -> None:
    """UserError unless `out` can be created/written; with must_be_new, unless it holds no results."""
    check_path(out)
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


def _lock(out: Path):
    """An exclusive flock on DIR/.lock, held by the returned file object; UserError if taken."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock, documented
        return None
    f = open(out / LOCK_FILE, "a+")
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        raise UserError(f"{out} is in use by another resnet-bench run ({holder}); wait for it to finish, "
                        "or write to another --out") from None
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()}\n")
    f.flush()
    return f


def repair_log(out: Path) -> str | None:
    """Cut a torn last line off DIR/rows.jsonl (kept in rows.jsonl.torn); returns a notice, or
    None when the log ends with a complete line. A last line that is complete JSON but lost
    only its newline gets the newline back."""
    log = out / ROWS_FILE
    if not log.is_file():
        return None
    data = log.read_bytes()
    if not data or data.endswith(b"\n"):
        return None
    cut = data.rfind(b"\n") + 1
    tail = data[cut:]
    try:
        json.loads(tail)
        with open(log, "ab") as f:
            f.write(b"\n")
            f.flush()
            os.fsync(f.fileno())
        return None
    except (ValueError, UnicodeDecodeError):
        pass
    with open(out / TORN_FILE, "ab") as f:
        f.write(tail + b"\n")
        f.flush()
        os.fsync(f.fileno())
    with open(log, "r+b") as f:
        f.truncate(cut)
        f.flush()
        os.fsync(f.fileno())
    return (f"{log}: its last line was cut off by a crash in mid-write ({len(tail)} bytes); set aside in "
            f"{out / TORN_FILE}, that case will be measured again")


def _remove_stale_temp_files(out: Path) -> None:
    """Temporary files of an atomic write that a kill interrupted (ours: .results.*.tmp)."""
    for pattern in (".results.*.tmp", f".{ROWS_FILE}.*.tmp"):
        for p in out.glob(pattern):
            p.unlink(missing_ok=True)


class ResultsWriter:
    """Streams rows of one run into its directory. `env` is the environment measured now:
    every appended row is stamped with it, whatever the directory recorded before."""

    def __init__(self, out: Path, env: dict, settings: dict, command: str, *, fingerprint: str,
                 rows: list[dict] | None = None, run_env: dict | None = None, lock=None):
        self.out = Path(out)
        self.env = env
        self.run_env = run_env if run_env is not None else env  # results.json's "environment"
        self.settings = settings
        self.command = command
        self.fingerprint = fingerprint
        self.rows: list[dict] = list(rows or [])
        self._lock = lock

    @classmethod
    def create(cls, out: Path, env: dict, settings: dict, command: str, *, fingerprint: str,
               overwrite: bool = False) -> ResultsWriter:
        out = Path(out)
        check_writable_dir(out, must_be_new=not overwrite)
        lock = _lock(out)
        check_writable_dir(out, must_be_new=not overwrite)  # again, now that no other writer can start
        if overwrite:
            for f in RESULT_FILES:
                (out / f).unlink(missing_ok=True)
        w = cls(out, env, settings, command, fingerprint=fingerprint, lock=lock)
        w._write_tables()
        return w

    @classmethod
    def resume(cls, out: Path, env: dict, command: str, *, fingerprint: Callable[[dict, dict], str],
               notice: Callable[[str], None] = lambda msg: None,
               keys: Callable[[dict], Iterable[str]] | None = None) -> ResultsWriter:
        """Continue the run in `out`. `fingerprint(env, settings)` computes a fingerprint: the
        stored one must be that of the stored environment and settings (else the file was
        edited) and must equal the one of `env` (else this is another configuration).
        `keys(settings)` names the environment keys a refusal lists as differing (default:
        every key but the time, the host and the platform)."""
        out = Path(out)
        check_path(out)
        if not out.is_dir():
            prev = load_results(out)  # a file, or nothing: the loader says what is wrong
            raise UserError(f"--resume takes the run's directory, not a file: {out}")
        lock = _lock(out)
        message = repair_log(out)
        if message:
            notice(message)
        _remove_stale_temp_files(out)
        log = out / ROWS_FILE  # the append log is the truth; results.json may lag one row
        prev = load_results(log if log.is_file() else out)
        meta = load_results(out / "results.json") if (out / "results.json").is_file() else prev
        stored_settings = meta.settings
        try:
            recorded = fingerprint(meta.env, stored_settings)
        except (TypeError, ValueError, KeyError) as e:
            raise UserError(f"cannot resume {out}: unreadable run settings ({e})") from None
        if meta.fingerprint != recorded:
            raise UserError(f"cannot resume {out}: its results.json was edited (the recorded fingerprint is not "
                            "that of its recorded environment and settings); start a new run")
        if recorded != fingerprint(env, stored_settings):
            names = list(keys(stored_settings)) if keys is not None else [
                k for k in env if k not in ("time_utc", "hostname", "host", "platform", "cuda_visible_devices")]
            diff = [f"{k}: {meta.env.get(k)} -> {env.get(k)}" for k in names if meta.env.get(k) != env.get(k)]
            why = "; ".join(diff[:3]) or "timing settings differ"
            raise UserError(f"cannot resume {out}: it was measured with another configuration or "
                            f"environment ({why}); start a new run")
        check_writable_dir(out, must_be_new=False)
        return cls(out, env, stored_settings, meta.command or command, fingerprint=recorded, rows=prev.rows,
                   run_env=meta.env, lock=lock)

    def close(self) -> None:
        """Release the directory's lock (also released when the process ends)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update_settings(self, **values) -> None:
        """Record more of the run's settings (e.g. the cases planned after a max-batch search) and
        rewrite the tables; the fingerprint is unchanged (it covers what a row means)."""
        self.settings = {**self.settings, **values}
        self._write_tables()

    def done_keys(self) -> set[str]:
        return {Case.from_row(r).key() for r in self.rows}

    def set_aside(self, statuses: Iterable[str]) -> int:
        """Move the rows with these statuses to retried.jsonl (appended, fsync'ed), then rewrite
        rows.jsonl without them (atomically): their cases are pending again. Returns how many."""
        statuses = set(statuses)
        moved = [r for r in self.rows if r.get("status") in statuses]
        if not moved:
            return 0
        with open(self.out / RETRIED_FILE, "a") as f:
            f.write("".join(json.dumps(r) + "\n" for r in moved))
            f.flush()
            os.fsync(f.fileno())
        self.rows = [r for r in self.rows if r.get("status") not in statuses]
        atomic_write(self.out / ROWS_FILE, "".join(json.dumps(r) + "\n" for r in self.rows))
        self._write_tables()
        return len(moved)

    def append(self, row: dict) -> None:
        """Append one row (fsync'ed) and rewrite the tables. A row stamped by the process that
        measured it (it has a ``host``) keeps its environment columns; any other row gets those
        of `env`: the environment measured now, never the file's."""
        row = dict(row)
        if not row.get("host"):
            for k in columns.env():
                row[k] = self.env.get(k)
        row.setdefault("time_utc", dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
        row = json_safe(row)
        log = self.out / ROWS_FILE
        new = not log.exists()
        with open(log, "a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())
        if new:
            os.chmod(log, file_mode())
        self.rows.append(row)
        self._write_tables()

    def frame(self):
        return to_frame(self.rows)

    def _write_tables(self) -> None:
        df = self.frame()
        doc = {
            "format": FORMAT, "version": FORMAT_VERSION, "fingerprint": self.fingerprint,
            "environment": self.run_env, "settings": self.settings, "command": self.command, "rows": self.rows,
        }
        atomic_write(self.out / "results.json", json.dumps(json_safe(doc), indent=1) + "\n")
        atomic_write(self.out / "results.csv", df.to_csv(index=False))
        atomic_write(self.out / "results.md", results_markdown(df, self.run_env, self.command))
