"""Write one run's directory as the run happens: every file is valid after every row.

``rows.jsonl`` is the append log (fsync'ed per row); ``results.json``, ``results.csv`` and
``results.md`` are rewritten atomically after each row (formats: bench.results.files).
A new run never writes into a directory that already holds results unless asked to.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from pathlib import Path

from bench.core.case import Case
from bench.errors import UserError
from bench.report.markdown import results_markdown
from bench.results import columns
from bench.results.files import FORMAT, FORMAT_VERSION, RESULT_FILES, ROWS_FILE, atomic_write, json_safe
from bench.results.views import to_frame
from bench.store.load import load_results


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
    """Streams rows of one run into its directory."""

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
               overwrite: bool = False) -> ResultsWriter:
        out = Path(out)
        check_writable_dir(out, must_be_new=not overwrite)
        if overwrite:
            for f in RESULT_FILES:
                (out / f).unlink(missing_ok=True)
        w = cls(out, env, settings, command, fingerprint=fingerprint)
        w._write_tables()
        return w

    @classmethod
    def resume(cls, out: Path, env: dict, settings: dict, command: str, *, fingerprint: str) -> ResultsWriter:
        log = Path(out) / ROWS_FILE  # the append log is the truth; results.json may lag one row
        prev = load_results(log if log.is_file() else out)
        if prev.fingerprint != fingerprint:
            diff = [f"{k}: {prev.env.get(k)} -> {env.get(k)}" for k in env if prev.env.get(k) != env.get(k)
                    and k not in ("time_utc", "hostname", "platform")]
            why = "; ".join(diff[:3]) or "timing settings differ"
            raise UserError(f"cannot resume {out}: it was measured with another configuration or "
                            f"environment ({why}); start a new run")
        check_writable_dir(Path(out), must_be_new=False)
        return cls(Path(out), prev.env, prev.settings, prev.command, fingerprint=fingerprint, rows=prev.rows)

    def done_keys(self) -> set[str]:
        return {Case.from_dict(r).key() for r in self.rows}

    def append(self, row: dict) -> None:
        row = dict(row)
        for k in columns.env():
            row.setdefault(k, self.env.get(k))
        row.setdefault("time_utc", dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
        row = json_safe(row)
        with open(self.out / ROWS_FILE, "a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.rows.append(row)
        self._write_tables()

    def frame(self):
        return to_frame(self.rows)

    def _write_tables(self) -> None:
        df = self.frame()
        doc = {
            "format": FORMAT, "version": FORMAT_VERSION, "fingerprint": self.fingerprint,
            "environment": self.env, "settings": self.settings, "command": self.command, "rows": self.rows,
        }
        atomic_write(self.out / "results.json", json.dumps(json_safe(doc), indent=1) + "\n")
        atomic_write(self.out / "results.csv", df.to_csv(index=False))
        atomic_write(self.out / "results.md", results_markdown(df, self.env, self.command))
