"""Write one run's directory as the run happens: ``run.json`` when it starts, then one line of
``rows.jsonl`` per record (a case measured in one round), appended and fsync'ed. Appending is
O(1): nothing else is rewritten while the run measures. The answer files (results.json, .csv,
.md) are the report's (bench.report.summary), written when a session of the run ends.

Guarantees (README "Guarantees"):

- One writer per directory: :class:`ResultsWriter` holds an exclusive ``flock`` on
  ``DIR/.lock`` for its lifetime (the kernel drops it when the process dies, so it cannot go
  stale); a second run or resume of the same directory is refused.
- Nothing is written through a symbolic link, and no file that is not ours is replaced
  (bench.results.files: ``O_NOFOLLOW``, regular files only): a link planted as ``.lock``,
  ``rows.jsonl`` or ``run.json`` is refused before anything is written.
- A torn last line of ``rows.jsonl`` (a crash in mid-write) is set aside into
  ``rows.jsonl.torn`` and the log cut back to its last complete line before anything is
  appended, so the records already kept never become unreadable.
- One record per case and round: a case's round is done when ``rows.jsonl`` holds its record;
  records that are retried are first moved to ``retried.jsonl``, records the integrity check
  refuses (bench.store.load.check_records: duplicates, other runs' rows, non-finite numbers)
  to ``rows.rejected.jsonl``, both keeping the original lines.
- A log that is gone while ``results.json`` still holds the records is restored from it first.
- A new run never writes into a directory that already holds results unless asked to, and
  then only over a directory that is a run's.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from bench.errors import UserError
from bench.results import columns
from bench.results.files import (FORMAT_VERSION, META_FILE, RESULT_FILES, ROWS_FILE, RUN_FORMAT, SUMMARY_FILES,
                                 append_fsync, atomic_write, json_safe, open_update, read_bytes,
                                 refuse_special)
from bench.results.rounds import record_key
from bench.store.load import ResultSet, load_results

LOCK_FILE = ".lock"
TORN_FILE = ROWS_FILE + ".torn"
RETRIED_FILE = "retried.jsonl"
REJECTED_FILE = "rows.rejected.jsonl"
#: Statuses --retry-failed measures again (a crash, a hang or an error may be transient).
RETRYABLE = ("crashed", "timeout", "error")


def check_path(out: str | Path, flag: str = "--out") -> None:
    """UserError for a path that cannot name a results directory (empty, not UTF-8)."""
    if not str(out).strip():
        raise UserError(f"{flag} must name a directory, got an empty string")
    try:
        str(out).encode("utf-8")
    except UnicodeEncodeError:
        raise UserError(f"{flag} {str(out).encode('utf-8', 'backslashreplace').decode()} is not valid UTF-8; "
                        "choose a name made of valid text") from None


def is_run_dir(out: Path) -> bool:
    """A directory resnet-bench wrote: its run.json (or, before run.json existed, its
    results.json) is a run file of ours."""
    for name in (META_FILE, "results.json"):
        p = out / name
        if p.is_file() and not p.is_symlink():
            try:
                head = read_bytes(p, 1 << 30)[:4096].decode("utf-8", "replace")
            except UserError:
                return False
            if '"format": "resnet-bench/' in head:
                return True
    return False


def check_writable_dir(out: Path, *, must_be_new: bool) -> bool:
    """UserError unless `out` can be created/written; with must_be_new, unless it holds no
    results. Returns whether the directory was created here (so a failed start can remove it)."""
    check_path(out)
    if out.is_symlink() and not out.exists():
        raise UserError(f"output path {out} is a dangling symbolic link")
    if out.exists() and not out.is_dir():
        raise UserError(f"output path {out} exists and is not a directory")
    if must_be_new and out.is_dir() and any(os.path.lexists(out / f) for f in RESULT_FILES):
        raise UserError(f"{out} already holds results; choose another --out, add --overwrite, or --resume {out}")
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-", delete=True)
        probe.close()
    except OSError as e:
        if created:
            _remove_empty(out)
        raise UserError(f"cannot write to output directory {out}: {e.strerror or e}") from None
    return created


def _remove_empty(out: Path) -> None:
    try:
        out.rmdir()
    except OSError:
        pass


def _lock(out: Path):
    """An exclusive flock on DIR/.lock (never through a link), held by the returned file
    object; UserError if another process holds it."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock, documented
        return None
    f = open_update(out / LOCK_FILE, create=True)
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        holder = f.read(200).decode("utf-8", "replace").strip() or "another process"
        f.close()
        raise UserError(f"{out} is in use by another resnet-bench run ({holder}); wait for it to finish, "
                        "or write to another --out") from None
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()}\n".encode())
    f.flush()
    return f


def repair_log(out: Path) -> str | None:
    """Cut a torn last line off DIR/rows.jsonl (kept in rows.jsonl.torn); returns a notice, or
    None when the log ends with a complete line. A last line that is complete JSON but lost
    only its newline gets the newline back. Refuses (before touching anything) a log that is a
    link or not a regular file."""
    log = out / ROWS_FILE
    refuse_special(log)
    refuse_special(out / TORN_FILE)
    if not log.is_file():
        return None
    with open_update(log) as f:
        data = f.read()
        if not data or data.endswith(b"\n"):
            return None
        cut = data.rfind(b"\n") + 1
        tail = data[cut:]
        try:
            json.loads(tail)
            f.write(b"\n")
            f.flush()
            os.fsync(f.fileno())
            return None
        except (ValueError, UnicodeDecodeError, RecursionError):
            pass
        append_fsync(out / TORN_FILE, tail + b"\n")
        f.truncate(cut)
        f.flush()
        os.fsync(f.fileno())
    return (f"{log}: its last line was cut off by a crash in mid-write ({len(tail)} bytes); set aside in "
            f"{out / TORN_FILE}, that round of its case will be measured again")


def _remove_stale_temp_files(out: Path) -> None:
    """Temporary files of an atomic write that a kill interrupted (ours: .results.*.tmp, ...)."""
    for name in (*SUMMARY_FILES, META_FILE, ROWS_FILE):
        for p in out.glob(f".{name}.*.tmp"):
            if p.is_file() and not p.is_symlink():
                p.unlink(missing_ok=True)


def _lines(records: Iterable[dict]) -> str:
    return "".join(json.dumps(json_safe(r)) + "\n" for r in records)


class ResultsWriter:
    """Streams the records of one run into its directory. `env` is the environment measured
    now: every appended record is stamped with it, whatever the directory recorded before."""

    def __init__(self, out: Path, env: dict, settings: dict, command: str, *, fingerprint: str,
                 records: list[dict] | None = None, run_env: dict | None = None, lock=None):
        self.out = Path(out)
        self.env = env
        self.run_env = run_env if run_env is not None else env  # run.json's "environment"
        self.settings = settings
        self.command = command
        self.fingerprint = fingerprint
        self.records: list[dict] = list(records or [])
        self._lock = lock

    # -- opening ----------------------------------------------------------------------
    @classmethod
    def create(cls, out: Path, env: dict, settings: dict, command: str, *, fingerprint: str,
               overwrite: bool = False) -> ResultsWriter:
        out = Path(out)
        if overwrite and out.is_dir() and any(os.path.lexists(out / f) for f in RESULT_FILES) and not is_run_dir(out):
            raise UserError(f"{out} holds files resnet-bench did not write (no run.json of a run); --overwrite "
                            "replaces only a run's results: choose another --out")
        created = check_writable_dir(out, must_be_new=not overwrite)
        try:
            lock = _lock(out)
            check_writable_dir(out, must_be_new=not overwrite)  # again, now that no other writer can start
            for f in (*RESULT_FILES, TORN_FILE):
                refuse_special(out / f)
            if overwrite:
                for f in RESULT_FILES:
                    (out / f).unlink(missing_ok=True)
            w = cls(out, env, settings, command, fingerprint=fingerprint, lock=lock)
            w.write_meta()
        except BaseException:
            if created:
                for f in (LOCK_FILE, META_FILE):
                    p = out / f
                    if p.is_file() and not p.is_symlink():
                        p.unlink(missing_ok=True)
                _remove_empty(out)
            raise
        return w

    @classmethod
    def resume(cls, out: Path, env: dict, command: str, *, fingerprint: Callable[[dict, dict], str],
               notice: Callable[[str], None] = lambda msg: None,
               keys: Callable[[dict], Iterable[str]] | None = None) -> ResultsWriter:
        """Continue the run in `out`. `fingerprint(env, settings)` computes a fingerprint: the
        stored one must be that of the stored environment and settings (else the file was
        edited) and must equal the one of `env` (else this is another configuration).
        `keys(settings)` names the environment keys a refusal lists as differing (default:
        every key but the time, the host and the platform). Before anything is appended: the
        lock, a torn last line set aside, a lost log restored from results.json, and records
        the integrity check refuses moved to rows.rejected.jsonl."""
        out = Path(out)
        check_path(out, "--resume")
        if not out.is_dir():
            load_results(out)  # a file, or nothing: the loader says what is wrong
            raise UserError(f"--resume takes the run's directory, not a file: {out}")
        if not os.access(out, os.W_OK | os.X_OK):
            raise UserError(f"cannot resume {out}: the directory is not writable (permission denied)")
        for f in (LOCK_FILE, *RESULT_FILES, TORN_FILE, REJECTED_FILE, RETRIED_FILE):
            refuse_special(out / f)
        lock = _lock(out)
        try:
            return cls._resume(out, env, command, fingerprint, notice, keys, lock)
        except BaseException:
            lock.close()
            raise

    @classmethod
    def _resume(cls, out, env, command, fingerprint, notice, keys, lock) -> ResultsWriter:
        message = repair_log(out)
        if message:
            notice(message)
        _remove_stale_temp_files(out)
        prev = load_results(out)
        if not (out / ROWS_FILE).is_file() and prev.records:
            append_fsync(out / ROWS_FILE,
                         _lines(prev.records + [r for r, _ in prev.rejected if isinstance(r, dict)]).encode())
            notice(f"{out / ROWS_FILE} was missing: restored its {len(prev.records)} record(s) from results.json")
        if prev.meta_file is None:
            raise UserError(f"cannot resume {out}: it records no environment and settings ({META_FILE} or "
                            "results.json); start a new run")
        try:
            recorded = fingerprint(prev.env, prev.settings)
        except (TypeError, ValueError, KeyError) as e:
            raise UserError(f"cannot resume {out}: unreadable run settings ({e})") from None
        if prev.fingerprint != recorded:
            raise UserError(f"cannot resume {out}: its {prev.meta_file.name} was edited (the recorded fingerprint is "
                            "not that of its recorded environment and settings); start a new run")
        if recorded != fingerprint(env, prev.settings):
            names = list(keys(prev.settings)) if keys is not None else [
                k for k in env if k not in ("time_utc", "hostname", "host", "platform", "cuda_visible_devices")]
            diff = [f"{k}: {prev.env.get(k)} -> {env.get(k)}" for k in names if prev.env.get(k) != env.get(k)]
            why = "; ".join(diff[:3]) or "timing settings differ"
            raise UserError(f"cannot resume {out}: it was measured with another configuration or "
                            f"environment ({why}); start a new run")
        w = cls(out, env, prev.settings, prev.command or command, fingerprint=recorded, records=prev.records,
                run_env=prev.env, lock=lock)
        if prev.rejected:
            w._set_aside_rejected(prev)
            notice(f"{len(prev.rejected)} record(s) of {out / ROWS_FILE} set aside in {out / REJECTED_FILE} "
                   f"(e.g. {prev.rejected[0][1]}); their rounds will be measured again")
        if prev.meta_file.name != META_FILE:
            w.write_meta()  # a run from before run.json: give it one
        return w

    def _set_aside_rejected(self, prev: ResultSet) -> None:
        lines = []
        for item, why in prev.rejected:
            text = item if isinstance(item, str) else json.dumps(json_safe(item))
            lines.append(json.dumps({"why": why, "line": text}) + "\n")
        append_fsync(self.out / REJECTED_FILE, "".join(lines).encode())
        atomic_write(self.out / ROWS_FILE, _lines(self.records))

    def close(self) -> None:
        """Release the directory's lock (also released when the process ends)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writing ----------------------------------------------------------------------
    def meta(self) -> dict:
        """run.json's document."""
        return {"format": RUN_FORMAT, "version": FORMAT_VERSION, "fingerprint": self.fingerprint,
                "environment": self.run_env, "settings": self.settings, "command": self.command}

    def write_meta(self) -> None:
        atomic_write(self.out / META_FILE, json.dumps(json_safe(self.meta()), indent=1) + "\n")

    def update_settings(self, **values) -> None:
        """Record more of the run's settings (the cases planned after a max-batch search, how
        the rounds ended) in run.json; the fingerprint is unchanged (it covers what a row means)."""
        self.settings = {**self.settings, **values}
        self.write_meta()

    def done(self) -> set[str]:
        """The records kept: ``case key#round`` (bench.results.rounds.record_key)."""
        return {record_key(r) for r in self.records}

    def set_aside(self, statuses: Iterable[str]) -> int:
        """Move the records with these statuses to retried.jsonl (appended, fsync'ed), then
        rewrite rows.jsonl without them (atomically): their rounds are pending again. Returns
        how many."""
        statuses = set(statuses)
        moved = [r for r in self.records if r.get("status") in statuses]
        if not moved:
            return 0
        append_fsync(self.out / RETRIED_FILE, _lines(moved).encode())
        self.records = [r for r in self.records if r.get("status") not in statuses]
        atomic_write(self.out / ROWS_FILE, _lines(self.records))
        return len(moved)

    def append(self, record: dict) -> dict:
        """Append one record (fsync'ed); O(1). A record stamped by the process that measured it
        (it has a ``host``) keeps its environment columns; any other gets those of `env`: the
        environment measured now, never the file's. Returns the record as written."""
        import datetime as dt

        record = dict(record)
        if not record.get("host"):
            for k in columns.env():
                record[k] = self.env.get(k)
        record.setdefault("time_utc", dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
        record = json_safe(record)
        append_fsync(self.out / ROWS_FILE, (json.dumps(record) + "\n").encode())  # OSError: the caller's
        self.records.append(record)
        return record
