"""The run directory's file names and formats, and the two primitives every writer uses:
:func:`json_safe` (what JSON can hold) and :func:`atomic_write` (a file is either the old or
the new version, never half of one). Free of pandas, so measuring processes stay light.

A run's results live in one directory:

- ``rows.jsonl``: one JSON row per finished case, appended and fsync'ed as each case finishes
  (the crash-safe log; raw latency samples included);
- ``results.json``: {"format", "version", "fingerprint", "environment", "settings", "command",
  "rows"} (samples included);
- ``results.csv`` and ``results.md``: the tidy table (no raw samples), rewritten atomically
  after every row, so an interrupted run leaves valid files.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
from pathlib import Path

FORMAT = "resnet-bench/results"
FORMAT_VERSION = 1
ROWS_FILE = "rows.jsonl"
RESULT_FILES = (ROWS_FILE, "results.json", "results.csv", "results.md")


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


def atomic_write(path: str | Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` through a temporary file in the same directory, fsync'ed,
    then renamed over `path`: a reader sees the old file or the new one, never a torn one. The
    file gets the mode a plain new file would get (the temporary file's is 0600)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """:func:`atomic_write` for bytes (a PNG, an SVG)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
