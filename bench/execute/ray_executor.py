"""The Ray executor: each model's cases as one Ray task, spread over the GPUs and nodes of a
Ray cluster (``resnet-bench run --executor ray [--address local|auto|HOST:PORT]``).

A task runs its group through the local executor's loop (bench.execute.local.run_group) on the
node Ray picked: the same fresh worker processes, so a crash, a hang past ``--case-timeout`` or
an out-of-memory gives the same row as on one machine. The task is a streaming generator: each
row comes back to the driver (this process) as it finishes, and the driver stays the only
writer of the run directory.

- Resources: on CUDA a group takes one GPU (Ray sets ``CUDA_VISIBLE_DEVICES``) and a
  data-parallel case (``ddp`` N) its N GPUs, in one task, so on one node; on CPU a group takes
  ``--threads`` CPUs (default: the driver's torch thread count) and measures with that many
  threads, a data-parallel case N x ``--threads`` (default 1). A case no node can hold is a
  ``skipped`` row, never a task that waits forever.
- No silent retries: ``max_retries=0``, ``retry_exceptions=False``. A task whose process dies
  (a node lost, the OOM killer) gives a ``crashed`` row for the case it was measuring; the
  group's other cases go to a new task, as the local executor starts a new worker.
- ``address="local"`` starts a cluster on this machine that listens on loopback only and is
  shut down with the run; ``auto`` and ``HOST:PORT`` join a running cluster (an unreachable one
  is a UserError at once). A process already connected to Ray (``ray.init`` before) is used as
  it is.
- Environment: a run begun here has the ``cluster`` scope (bench.core.env): its fingerprint
  holds only what every node must share, each row carries the host and hardware that measured
  it, and a node whose software differs measures nothing (its rows are ``error`` rows saying
  what differs).

Ray is optional (``pip install 'resnet-bench[ray]'``) and imported only when used.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Sequence
from typing import Any

from bench.core.case import Case, group_by_model
from bench.errors import UserError, one_line
from bench.execute.base import Events, Executor, RunSettings
from bench.execute.row_start import base_row

INSTALL = "pip install 'resnet-bench[ray]'"
#: Makes Ray's node address the loopback one (Ray reads it when imported and when starting a node).
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def import_ray():
    """The ray module; a UserError saying how to install it when it is missing."""
    try:
        import ray
    except ImportError:
        raise UserError(f"--executor ray needs Ray, which is not installed: {INSTALL}") from None
    return ray


class RayExecutor(Executor):
    name = "ray"
    env_scope = "cluster"

    def __init__(self, address: str = "local", *, gpus_per_group: float | None = None,
                 init_options: dict[str, Any] | None = None):
        """`gpus_per_group`: GPUs each group asks for, whatever its device (default: 1 on CUDA,
        0 on CPU; tests give CPU cases fake GPUs with it). `init_options` go to ``ray.init``
        when this executor starts a local cluster (e.g. ``num_cpus``, ``num_gpus``)."""
        self.address = address
        self.gpus_per_group = gpus_per_group
        self.init_options = dict(init_options or {})
        self._ray = None
        self._started = False
        self._expect: dict[str, Any] = {}

    # -- connection -------------------------------------------------------------------------
    def connect(self):
        """Connect (or start the local cluster) once; returns the ray module."""
        if self._ray is not None:
            return self._ray
        if self.address == "local":
            os.environ[LOOPBACK_ENV] = "0"  # before ray is imported: its node address is then loopback
        ray = import_ray()
        if not ray.is_initialized():
            import logging

            quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
            if self.address == "local":
                try:
                    from ray._private import ray_constants

                    ray_constants.ENABLE_RAY_CLUSTER = False  # in case ray was imported before
                except ImportError:
                    pass
                with _stderr_kept_if_ok():
                    ray.init(address="local", include_dashboard=False, **quiet, **self.init_options)
                self._started = True
                node_ip = ray.util.get_node_ip_address()
                if node_ip not in ("127.0.0.1", "::1", "localhost"):
                    self.close()
                    raise UserError(f"the local Ray cluster would listen on {node_ip}, not loopback only; "
                                    "start one yourself (ray start --head) and pass --address")
            else:
                address = self._reachable(ray, self.address)
                try:
                    with _stderr_kept_if_ok():
                        ray.init(address=address, **quiet)
                except Exception as e:  # ConnectionError, AuthenticationError, RuntimeError (no token)
                    raise UserError(f"--address {self.address}: cannot join the Ray cluster: "
                                    f"{one_line(e, 300)}") from None
        self._ray = ray
        return ray

    @staticmethod
    def _reachable(ray, address: str) -> str:
        """What to hand ``ray.init`` for `address`, checked first to accept connections (Ray
        itself would retry an unreachable one for minutes): ``auto`` as it is (Ray resolves it
        to the cluster started here or RAY_ADDRESS, and joins it by the address that cluster
        recorded, which the resolved host:port need not be on this machine); else host:port."""
        if address.startswith("ray://"):
            return address
        try:
            from ray._private.services import canonicalize_bootstrap_address_or_die

            resolved = canonicalize_bootstrap_address_or_die(address)
        except ConnectionError as e:
            raise UserError(f"--address {address}: {str(e).splitlines()[0]}") from None
        except Exception:  # Ray moved its helper: check what was given
            resolved = address
        host, _, port = resolved.rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
        except (OSError, ValueError) as e:
            at = address + (f" ({resolved})" if resolved != address else "")
            raise UserError(f"--address {address}: no Ray cluster answers at {at} "
                            f"({getattr(e, 'strerror', None) or e}); start one with `ray start --head`, "
                            "or check the address") from None
        return address if address == "auto" else resolved

    def close(self) -> None:
        if self._started and self._ray is not None:
            self._ray.shutdown()
        self._started = False
        self._ray = None

    # -- what the run asks before measuring --------------------------------------------------
    def resolve_device(self, device: str) -> str:
        from bench.core import devices

        if device not in ("auto", *devices.kinds()):
            return devices.resolve_device(device)  # the UserError listing the valid ones
        gpus = self.connect().cluster_resources().get("GPU", 0)
        if device == "auto":
            return "cuda" if gpus >= 1 else "cpu"
        if device == "cuda" and gpus < 1:
            raise UserError("--device cuda: the Ray cluster has no GPU resources; use --device cpu, or add GPU nodes")
        return device

    def environment(self, device: str, threads: int | None) -> dict[str, Any]:
        """This machine's environment when it has the device, else that of a task on a node
        that has it (a worker process used once, so it keeps no GPU context)."""
        from bench.core import devices

        if devices.backend(device).available():
            return super().environment(device, threads)
        ray = self.connect()
        probe = ray.remote(num_gpus=1 if device == "cuda" else 0, max_retries=0, max_calls=1)(_probe_environment)
        try:
            return ray.get(probe.remote(device, threads))
        except Exception as e:
            raise UserError(f"--device {device}: a Ray task on a node with it could not describe it: "
                            f"{one_line(e, 300)}") from None

    def expect(self, env: dict[str, Any], keys: Sequence[str]) -> None:
        self._expect = {k: env.get(k) for k in keys}

    def describe(self) -> dict[str, Any]:
        return {"executor": self.name, "address": self.address}

    # -- the run ----------------------------------------------------------------------------
    def resources(self, cases: Sequence[Case], settings: RunSettings) -> dict[str, float]:
        """What one task asks Ray for: the GPUs and CPUs its measuring processes use."""
        ranks = cases[0].ddp or 1
        gpus = self.gpus_per_group if self.gpus_per_group is not None else (1 if cases[0].device == "cuda" else 0)
        if gpus:
            return {"num_gpus": ranks * gpus, "num_cpus": ranks}
        threads = settings.threads or (1 if cases[0].ddp else self._threads(settings))
        return {"num_gpus": 0, "num_cpus": ranks * threads}

    def _threads(self, settings: RunSettings) -> int:
        return int(settings.threads or self._expect.get("threads") or 1)

    def run(self, cases: Sequence[Case], settings: RunSettings, events: Events) -> None:
        from bench.execute.local import plugin_paths, stamped

        ray = self.connect()
        extra_env = {"OMP_NUM_THREADS": str(self._threads(settings))}
        if os.environ.get("RESNET_BENCH_PLUGINS"):
            extra_env["RESNET_BENCH_PLUGINS"] = os.environ["RESNET_BENCH_PLUGINS"]
        common = (settings.to_dict(), self._expect, extra_env, plugin_paths())
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        task = ray.remote(_group_task)
        running: dict[Any, _Unit] = {}

        def submit(unit_cases: list[Case]) -> None:
            need = self.resources(unit_cases, settings)
            if not any(r.get("GPU", 0) >= need["num_gpus"] and r.get("CPU", 0) >= need["num_cpus"] for r in nodes):
                for c in unit_cases:
                    events.started(c)
                    events.row(base_row(c, "skipped", f"needs {need['num_gpus']:g} GPU(s) and {need['num_cpus']:g} "
                                                      "CPU(s) on one node; no node of the Ray cluster has them"))
                return
            gen = task.options(num_returns="streaming", max_retries=0, retry_exceptions=False, **need).remote(
                [c.as_dict() for c in unit_cases], *common)
            running[gen] = _Unit(unit_cases)

        for group in group_by_model(cases):
            plain = [c for c in group if not c.ddp]
            for unit in ([plain] if plain else []) + [[c] for c in group if c.ddp]:
                submit(unit)
        try:
            while running:
                ready, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
                for gen in ready:
                    unit = running[gen]
                    try:
                        ev = ray.get(next(gen))
                    except StopIteration:
                        del running[gen]
                        rest = unit.pending()
                        for c in rest:  # a task that ended without a row for a case: said, never silent
                            events.row(base_row(c, "error", "the Ray task ended without measuring this case"))
                        continue
                    except Exception as exc:  # the task's process died: the case it was measuring crashed
                        del running[gen]
                        why = one_line(exc, 300)
                        if unit.current is not None:
                            row = base_row(unit.current, "crashed", f"Ray task died: {why}")
                            events.row(stamped(row, unit.stamp))  # where it was running
                            unit.done.add(unit.current.key())
                        rest = unit.pending()
                        if rest and unit.stamp is not None:
                            submit(rest)  # the others, in a new task (not a retry of the crashed case)
                        else:  # it failed before starting any case (e.g. no resnet-bench on the node)
                            for c in rest:
                                events.row(base_row(c, "error", f"the Ray task failed before measuring: {why}"))
                        continue
                    if ev["event"] == "start":
                        unit.current = unit.by_key[ev["key"]]
                        unit.stamp = ev.get("stamp")
                        events.started(unit.current)
                    else:
                        events.row(ev["row"])
                        unit.done.add(ev["key"])
                        unit.current = None
        finally:
            for gen in running:  # interrupted (Ctrl-C, SIGTERM, a full disk): stop every task now
                try:
                    ray.cancel(gen, force=True)
                except Exception:
                    pass


@contextlib.contextmanager
def _stderr_kept_if_ok():
    """Hold back what is written to file descriptor 2 (Ray's C++ core logs there) while Ray
    connects: replayed when it worked, dropped when it failed (the caller says why in one
    line)."""
    import sys
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        ok = False
        try:
            yield
            ok = True
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if ok:
                held.seek(0)
                sys.stderr.write(held.read().decode(errors="replace"))
                sys.stderr.flush()


class _Unit:
    """One task's cases and how far it got."""

    def __init__(self, cases: list[Case]):
        self.cases = cases
        self.by_key = {c.key(): c for c in cases}
        self.done: set[str] = set()
        self.current: Case | None = None
        self.stamp: dict | None = None  # the task's host and GPUs, from its last start event

    def pending(self) -> list[Case]:
        return [c for c in self.cases if c.key() not in self.done]


def _group_task(case_dicts: list[dict], settings: dict, expect_env: dict, extra_env: dict,
                plugin_roots: list[str]):
    """The Ray task: one group through bench.execute.local.run_group, streamed as events."""
    import platform

    from bench.core.host import cpu_model
    from bench.execute.local import run_group

    cases = [Case.from_dict(d) for d in case_dicts]
    stamp = {"host": platform.node(), "cpu_model": cpu_model(),
             "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
    for kind, value in run_group(cases, RunSettings.from_dict(settings), expect_env=expect_env, stamp=stamp,
                                 extra_env=extra_env, plugin_roots=plugin_roots):
        if kind == "start":
            yield {"event": "start", "key": value.key(), "stamp": stamp}
        else:
            yield {"event": "row", "key": Case.from_row(value).key(), "row": value}


def _probe_environment(device: str, threads: int | None) -> dict:
    from bench.core import env

    return env.collect(device, threads)
