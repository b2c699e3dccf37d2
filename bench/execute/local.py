"""The local executor (the default): each model's cases in a fresh worker process.

A segfault, a CUDA error, leaked or fragmented memory, or cuDNN's algorithm cache stays with
that model (timm #955). The worker (bench.execute.worker) reports ``env``, ``start`` and
``row`` events as JSON lines; this side turns a dead worker into a ``crashed`` row and a silent
one past ``case_timeout_s`` into a ``timeout`` row, then starts a new worker for the model's
remaining cases. A data-parallel case (``ddp`` ranks) is launched on its own with
torch.distributed.run (bench.execute.ddp).

:func:`run_group` is that whole per-model loop as a generator of ``("start", case)`` and
``("row", row)`` events: the Ray executor runs it inside a task, so a group's rows are the same
whichever executor ran it.

``code_root`` measures with the bench/resnet_impl code found there (a git worktree of another
revision, for the speed gate) instead of this installation's.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.core import env as E
from bench.core.case import Case, group_by_model
from bench.execute import procs
from bench.execute.base import Events, Executor, RunSettings
from bench.execute.row_start import base_row
from bench.results import columns

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
            for kind, value in run_group(group, settings, code_root=self.code_root):
                if kind == "start":
                    events.started(value)
                else:
                    events.row(value)


def run_group(cases: Sequence[Case], settings: RunSettings, *, code_root: str | None = None,
              expect_env: Mapping[str, Any] | None = None, stamp: Mapping[str, Any] | None = None,
              extra_env: Mapping[str, str] | None = None,
              plugin_roots: Sequence[str] | None = None) -> Iterator[tuple[str, Any]]:
    """Measure one model's cases: the plain ones in worker processes (a fresh one after each
    death), then each data-parallel case in its own launch. Yields ``("start", Case)`` when a
    case begins and ``("row", dict)`` once per case, whatever happens to the processes.

    Rows carry the environment of the process that measured them (env columns). A row made
    here for a process that died before reporting its environment gets `stamp` instead.
    With `expect_env`, a process whose environment differs in any of its keys measures
    nothing: its cases become ``error`` rows naming the difference. `extra_env` is set in the
    measuring processes' environment (e.g. OMP_NUM_THREADS); `plugin_roots` are the plugins'
    sys.path entries (default: :func:`plugin_paths` here)."""
    roots = list(plugin_paths() if plugin_roots is None else plugin_roots)
    plain = [c for c in cases if not c.ddp]
    while plain:
        done = yield from _worker_events(plain, settings, code_root, expect_env, stamp, extra_env, roots)
        plain = [c for c in plain if c.key() not in done]
    for case in (c for c in cases if c.ddp):
        from bench.execute import ddp

        yield "start", case
        row, env = ddp.run_case(case, settings, code_root=code_root, extra_env=extra_env, plugin_roots=roots)
        keys = tuple(k for k in (expect_env or {}) if k != "threads")  # ranks: --threads or 1 each
        diff = E.differences(dict(expect_env), env, keys) if (keys and env) else []
        if diff:
            row = base_row(case, "error", _mismatch(env, diff))
        yield "row", stamped(row, env or stamp)


def _mismatch(env: Mapping[str, Any], diff: list[str]) -> str:
    return (f"not measured: the environment on {env.get('host') or 'this node'} differs from the run's "
            f"({'; '.join(diff[:3])}); install the same software there, or start a new run")


def stamped(row: dict, env: Mapping[str, Any] | None) -> dict:
    """The row with the env columns of `env` (when known), so it says where it was measured."""
    if env:
        for k in columns.env():
            if k in env:
                row[k] = env[k]
    return row


def _worker_events(cases: list[Case], settings: RunSettings, code_root: str | None,
                   expect_env: Mapping[str, Any] | None, stamp: Mapping[str, Any] | None,
                   extra_env: Mapping[str, str] | None, plugin_roots: list[str]) -> Iterator[tuple[str, Any]]:
    """Run `cases` in one worker process, yielding its events. Returns the keys that got a row
    (from the worker, or a `crashed`/`timeout` row made here for the case it died on). Stops at
    the first death: the caller starts a fresh worker for the rest."""
    payload = json.dumps({"cases": [c.as_dict() for c in cases], "settings": settings.to_payload(),
                          "plugin_paths": plugin_roots})
    by_key = {c.key(): c for c in cases}
    done: set[str] = set()
    worker_env: dict | None = None
    module = worker_module(code_root or procs.OWN_ROOT) or "bench.execute.worker"
    with tempfile.TemporaryFile(mode="w+b") as errf:
        proc = subprocess.Popen(procs.python_command(module), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=errf, start_new_session=True, env=procs.python_env(code_root, extra_env),
                                cwd=code_root)
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
                    procs.kill_tree(proc)
                    yield "row", stamped(base_row(current, "timeout", f"no result within --case-timeout "
                                                  f"{settings.case_timeout_s:g} s; process killed"),
                                         worker_env or stamp)
                    done.add(current.key())
                    return done
                if ev is None:  # the worker's stdout closed: it exited
                    rc = proc.wait()
                    msg = procs.death_message(rc, procs.read_tail(errf))
                    if current is not None:
                        yield "row", stamped(base_row(current, "crashed", msg), worker_env or stamp)
                        done.add(current.key())
                    elif rc != 0 and len(done) < len(cases):
                        # died before starting any case (import error, bad plugin...): every case errs
                        for c in cases:
                            if c.key() not in done:
                                yield "row", stamped(base_row(c, "crashed", msg), worker_env or stamp)
                                done.add(c.key())
                    return done
                kind = ev.get("event")
                if kind == "env":
                    worker_env = ev.get("env") or {}
                    diff = E.differences(dict(expect_env), worker_env, tuple(expect_env)) if expect_env else []
                    if diff:
                        procs.kill_tree(proc)
                        for c in cases:
                            if c.key() not in done:
                                yield "row", stamped(base_row(c, "error", _mismatch(worker_env, diff)), worker_env)
                                done.add(c.key())
                        return done
                elif kind == "start":
                    current = by_key[ev["key"]]
                    started = time.monotonic()
                    yield "start", current
                elif kind == "row":
                    yield "row", stamped(ev["row"], worker_env or stamp)
                    done.add(ev["key"])
                    current = None
        finally:
            if proc.poll() is None:
                procs.kill_tree(proc)


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
