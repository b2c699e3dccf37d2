"""The local executor (the default): each model's cases in a fresh worker process.

A segfault, a CUDA error, leaked or fragmented memory, or cuDNN's algorithm cache stays with
that model (timm #955). The worker (bench.execute.worker) reports ``start`` and ``row`` events
as JSON lines; this side turns a dead worker into a ``crashed`` row and a silent one past
``case_timeout_s`` into a ``timeout`` row, then starts a new worker for the model's remaining
cases.

``code_root`` measures with the bench/resnet_impl code found there (a git worktree of another
revision, for the speed gate) instead of this installation's.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from bench.core.case import Case, group_by_model
from bench.execute.base import Events, Executor, RunSettings
from bench.execute.case_runner import base_row

_OWN_ROOT = Path(__file__).resolve().parents[2]
# Trees from before bench/ had sub-packages keep their worker at bench/worker.py.
WORKER_FILES = (("bench/execute/worker.py", "bench.execute.worker"), ("bench/worker.py", "bench.worker"))


def worker_module(code_root: str | Path) -> str | None:
    """The worker module of the tree at `code_root`, or None if it has none."""
    for path, module in WORKER_FILES:
        if (Path(code_root) / path).is_file():
            return module
    return None


class LocalExecutor(Executor):
    name = "local"

    def __init__(self, code_root: str | Path | None = None):
        self.code_root = str(code_root) if code_root is not None else None

    def run(self, cases: Sequence[Case], settings: RunSettings, events: Events) -> None:
        for group in group_by_model(cases):
            pending = list(group)
            while pending:
                done = self._run_worker(pending, settings, events)
                pending = [c for c in pending if c.key() not in done]

    def _command(self) -> list[str]:
        """``python -P -m <worker>``: -P (safe path) keeps the current directory off sys.path,
        so a json.py or torch.py where the user stands cannot run inside the measuring process."""
        module = worker_module(self.code_root or _OWN_ROOT) or "bench.execute.worker"
        return [sys.executable, "-P", "-m", module]

    def _env(self) -> dict[str, str]:
        """The code root first on PYTHONPATH (the user's PYTHONPATH after it), and safe-path
        mode for whatever the worker starts."""
        env = dict(os.environ)
        root = self.code_root or str(_OWN_ROOT)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["PYTHONSAFEPATH"] = "1"
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def _run_worker(self, cases: list[Case], settings: RunSettings, events: Events) -> set[str]:
        """Run `cases` in one worker process. Returns the keys that got a row (from the worker,
        or a `crashed`/`timeout` row made here for the case it died on). Stops at the first
        death: the caller restarts a fresh worker for the rest."""
        payload = json.dumps({"cases": [c.as_dict() for c in cases], "settings": settings.to_payload(),
                              "plugin_paths": plugin_paths()})
        by_key = {c.key(): c for c in cases}
        done: set[str] = set()
        with tempfile.TemporaryFile(mode="w+b") as errf:
            proc = subprocess.Popen(self._command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errf,
                                    start_new_session=True, env=self._env(), cwd=self.code_root)
            lines: queue.Queue = queue.Queue()
            threading.Thread(target=_read_events, args=(proc.stdout, lines), daemon=True).start()
            try:
                proc.stdin.write(payload.encode())
                proc.stdin.close()
            except BrokenPipeError:
                pass
            current: Case | None = None
            started = time.monotonic()
            try:
                while True:
                    timeout = None
                    if current is not None and settings.case_timeout_s:
                        timeout = max(0.0, settings.case_timeout_s - (time.monotonic() - started))
                    try:
                        ev = lines.get(timeout=timeout)
                    except queue.Empty:
                        _kill(proc)
                        events.row(base_row(current, "timeout", f"no result within --case-timeout "
                                                                f"{settings.case_timeout_s:g} s; process killed"))
                        done.add(current.key())
                        return done
                    if ev is None:  # the worker's stdout closed: it exited
                        rc = proc.wait()
                        if current is not None:
                            events.row(base_row(current, "crashed", _death_message(rc, errf)))
                            done.add(current.key())
                        elif rc != 0 and len(done) < len(cases):
                            # died before starting any case (import error, bad plugin...): every case errs
                            msg = _death_message(rc, errf)
                            for c in cases:
                                if c.key() not in done:
                                    events.row(base_row(c, "crashed", msg))
                                    done.add(c.key())
                        return done
                    if ev.get("event") == "start":
                        current = by_key[ev["key"]]
                        started = time.monotonic()
                        events.started(current)
                    elif ev.get("event") == "row":
                        events.row(ev["row"])
                        done.add(ev["key"])
                        current = None
            finally:
                if proc.poll() is None:
                    _kill(proc)


def plugin_paths() -> list[str]:
    """The sys.path entries the modules named in RESNET_BENCH_PLUGINS were imported from here.
    The worker appends them (after the standard library and site-packages, so nothing in them
    can stand in for a library module) instead of inheriting the current directory."""
    import importlib.util

    from resnet_impl import PLUGINS_ENV

    roots = []
    for name in [m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(",") if m.strip()]:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is None or not spec.origin or not os.path.isfile(spec.origin):
            continue
        depth = len(name.split(".")) - (0 if spec.submodule_search_locations is None else -1)
        roots.append(str(Path(spec.origin).resolve().parents[depth - 1]))
    return list(dict.fromkeys(roots))


def _read_events(stream, out: queue.Queue) -> None:
    for line in stream:
        try:
            out.put(json.loads(line))
        except json.JSONDecodeError:
            continue  # not a protocol line
    out.put(None)


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _death_message(rc: int, errf) -> str:
    if rc < 0:
        try:
            what = f"killed by signal {signal.Signals(-rc).name}"
        except ValueError:
            what = f"killed by signal {-rc}"
    else:
        what = f"exited with code {rc}"
    errf.seek(0)
    tail = errf.read()[-2000:].decode(errors="replace").strip().splitlines()
    last = next((ln for ln in reversed(tail) if ln.strip()), "")
    return f"worker process {what}" + (f"; last stderr line: {last.strip()[:300]}" if last else "")
