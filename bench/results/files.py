"""The run directory's file names and formats, and the file primitives every writer and reader
uses. Free of pandas, so measuring processes stay light.

A run's results live in one directory:

- ``run.json``: {"format", "version", "fingerprint", "environment", "settings", "command"}: what
  the run is, written when it starts (atomically; rewritten only when its settings grow, e.g.
  the cases a max-batch search planned, or when a session of it ends);
- ``rows.jsonl``: one JSON record per case *per round* (the case measured once in one
  process), appended and fsync'ed as each finishes: the crash-safe log, raw latency samples
  included, and the only truth about what was measured (bench.store.load reads it);
- ``results.json``, ``results.csv``, ``results.md``: the answer, one row per case pooled over
  its rounds, written when the run (or an interrupted session of it) ends; ``results.json``
  also keeps every record, so it alone can restore a lost log.

The primitives never follow a symbolic link and never replace a file that is not a regular
file (:func:`refuse_special`): a link planted where the run writes (``.lock``, ``rows.jsonl``,
``results.csv`` pointing at ``~/notes.txt``) is refused with one line, never written through.
:func:`read_bytes` refuses what is not a regular file (a FIFO, ``/dev/zero``) and bounds what
it reads.
"""

from __future__ import annotations

import errno
import math
import os
import stat
import sys
import tempfile
from pathlib import Path

from bench.errors import UserError

FORMAT = "resnet-bench/results"
RUN_FORMAT = "resnet-bench/run"
FORMAT_VERSION = 2
META_FILE = "run.json"
ROWS_FILE = "rows.jsonl"
SUMMARY_FILES = ("results.json", "results.csv", "results.md")
#: Files that make a directory a run's: a new run refuses a directory holding any of them.
RESULT_FILES = (META_FILE, ROWS_FILE, *SUMMARY_FILES)
#: Largest results file read (bytes): a bigger one is refused, never read into memory whole.
MAX_READ_BYTES = 1 << 30


def json_safe(value):
    """JSON-safe copy: NaN/inf -> None (JSON has none), numpy/pandas scalars -> Python,
    tuples -> lists, keys -> str."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            return json_safe(value.item())
        except (ValueError, TypeError):
            pass
    pd = sys.modules.get("pandas")
    if pd is not None and (value is pd.NA or value is pd.NaT):
        return None
    return value


def file_mode() -> int:
    """The mode a new file gets from this process's umask (0o644 under the usual 022)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


# ------------------------------------------------------------------ never through a link
def refuse_special(path: str | Path) -> None:
    """UserError when `path` exists as something other than a regular file: a symbolic link
    (even to a regular file: writing would go to, or replace, what it points at), a
    directory, a FIFO, a device. Nothing there: fine."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        raise os_error(e, path) from None
    if stat.S_ISLNK(st.st_mode):
        raise UserError(f"{path} is a symbolic link; resnet-bench does not write through links: remove it, or "
                        "choose another path")
    if not stat.S_ISREG(st.st_mode):
        raise UserError(f"{path} exists and is not a regular file; resnet-bench will not write there")


def _open_fd(path: str | Path, flags: int) -> int:
    """os.open with O_NOFOLLOW (and O_CLOEXEC); the result must be a regular file."""
    try:
        fd = os.open(path, flags | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0), file_mode())
    except OSError as e:
        if e.errno == errno.ELOOP:
            refuse_special(path)  # names the link
        raise os_error(e, path) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UserError(f"{path} exists and is not a regular file; resnet-bench will not write there")
    return fd


def open_append(path: str | Path):
    """A binary file object appending to `path` (created if absent), never through a link."""
    return os.fdopen(_open_fd(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT), "ab")


def open_update(path: str | Path, create: bool = False):
    """A binary read-write file object on `path`, never through a link (a lock file, a log
    cut back after a crash)."""
    return os.fdopen(_open_fd(path, os.O_RDWR | (os.O_CREAT if create else 0)), "r+b")


def append_fsync(path: str | Path, data: bytes) -> None:
    """Append `data` to `path` and fsync it: when this returns, the bytes are on disk."""
    with open_append(path) as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write(path: str | Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` through a temporary file in the same directory, fsync'ed,
    then renamed over `path`: a reader sees the old file or the new one, never a torn one. The
    file gets the mode a plain new file would get (the temporary file's is 0600). An existing
    `path` that is not a regular file (a link planted there) is refused, not replaced."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """:func:`atomic_write` for bytes (a PNG, an SVG)."""
    path = Path(path)
    refuse_special(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise os_error(e, path.parent) from None
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # rename never follows a link at the destination
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# ------------------------------------------------------------------ reading, bounded
def read_head(path: str | Path, n: int = 4096) -> bytes:
    """The first `n` bytes of the regular file at `path` (never follows a link, never blocks on
    a FIFO); b"" when it is anything else or cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
                     | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return b""
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return b""
        try:
            return f.read(n)
        except OSError:
            return b""


def read_bytes(path: str | Path, limit: int = MAX_READ_BYTES) -> bytes:
    """The bytes of the regular file at `path`: UserError for a FIFO, a device or a directory
    (never blocks, never reads an endless stream) and for a file over `limit` bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise os_error(e, path) from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UserError(f"{path} is not a regular file; give a results file or a run directory")
        if st.st_size > limit:
            raise UserError(f"{path} is {st.st_size / 2**20:,.0f} MiB, over the {limit / 2**20:,.0f} MiB a results "
                            "file may have; not read")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise UserError(f"{path} is over the {limit / 2**20:,.0f} MiB a results file may have; not read")
    return data


def read_text(path: str | Path, limit: int = MAX_READ_BYTES) -> str:
    """:func:`read_bytes` decoded as UTF-8 (UserError when it is not)."""
    data = read_bytes(path, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start}); not a results file") from None


# ------------------------------------------------------------------ one line per OS error
def os_error(e: OSError, path: str | Path | None = None) -> UserError:
    """An OSError as the one-line UserError that names the path (exit 2): permission denied,
    a read-only file system, a full disk, a missing directory."""
    where = e.filename if e.filename is not None else path
    what = e.strerror or str(e)
    hint = {errno.ENOSPC: "; free some space", errno.EROFS: "; choose a writable place",
            errno.EACCES: "", errno.EDQUOT: "; free some space"}.get(e.errno or 0, "")
    return UserError(f"{where}: {what}{hint}" if where is not None else f"{what}{hint}")
