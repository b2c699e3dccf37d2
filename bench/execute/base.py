"""The executor seam: how a list of cases becomes rows, and where they run.

An executor takes the cases, the :class:`RunSettings` and an :class:`Events` sink, measures
every case (one :class:`bench.execute.case_runner.CaseRunner` row each) and hands each row to
``events.row`` as soon as it exists. It never writes files: the caller (the run directory) is
the only writer. A case that fails becomes a row with its status, never an exception.

Add an executor = a module with an :class:`Executor` subclass and one ``register_executor``
line in bench/execute/__init__.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.core.case import Case
from bench.core.timing import TimingConfig


@dataclass(frozen=True)
class RunSettings:
    """How cases are measured; part of a run's fingerprint (with the environment)."""

    timing: TimingConfig = field(default_factory=TimingConfig)
    threads: int | None = None  # torch.set_num_threads in the measuring process; None = torch's default
    threads_rule: str | None = None  # how `threads` was chosen (recorded in every row's environment)
    isolate: bool = True  # a fresh process per model group (False: the inline executor)
    case_timeout_s: float | None = None
    oom_backoff: bool = False
    check_outputs: bool = True  # compare each mode's first output with eager fp32
    # measure a model's cases side by side in its process, samples in rotating blocks
    # (CaseRunner.run_interleaved), on a device whose memory allows it (Device.interleaves)
    interleave: bool = False
    profile: bool = True  # count params/MACs/activations (fvcore) for each model and image size
    seed: int = 0
    overrides: dict = field(default_factory=dict)  # spec field -> value, for every model (--set)
    weights: str | None = None  # local checkpoint loaded strictly into every model (--weights)
    executor: str | None = None  # bench.execute name; None: "local" when isolate, else "inline"
    memory_check: bool = True  # refuse (an oom row) a case whose memory lower bound exceeds free memory
    memory_pass_steps: int = 3  # steps of the memory pass after the samples (bench.core.memory); 0 = none
    stage_pass_steps: int = 0  # steps of the stage pass after the samples (bench.core.stages); 0 = none
    trace_dir: str | None = None  # --trace: a torch.profiler trace of each case written here (bench.core.trace)
    # --find-max-batch: each case is a search target instead (bench.core.batch_search); keys max_batch,
    # max_probes, mem_cap_mb, resolution. Only the search step of a run sets it, never a saved run.
    search: dict | None = None
    # which environment keys the run's fingerprint holds (bench.core.env): "host" (one machine:
    # software and hardware) or "cluster" (a Ray run: software only; hardware recorded per row)
    env_scope: str = "host"

    @property
    def executor_name(self) -> str:
        return self.executor or ("local" if self.isolate else "inline")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_payload(self) -> dict:
        """Only the fields that differ from their defaults (the timing config whole): what a
        worker process needs. A worker of an older revision (the speed gate's base) then never
        sees a field it does not know."""
        default = RunSettings()
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if getattr(self, f.name) != getattr(default, f.name)}
        out["timing"] = dataclasses.asdict(self.timing)
        return out

    @classmethod
    def from_dict(cls, d: dict) -> RunSettings:
        """From :meth:`to_dict` or :meth:`to_payload`; a key this revision does not know (a newer
        tree's setting) is a TypeError naming it."""
        d = dict(d)
        d["timing"] = TimingConfig(**d.get("timing", {}))
        return cls(**d)

    def fingerprint_part(self) -> dict:
        """The settings that change what a row means (not isolation or time limits)."""
        return {"timing": dataclasses.asdict(self.timing), "threads": self.threads,
                "check_outputs": self.check_outputs, "seed": self.seed,
                "overrides": self.overrides, "weights": self.weights}


@dataclass
class Events:
    """Where an executor reports: ``row(row)`` for every finished case (required) and
    ``start(case)`` when a case begins (optional, for progress)."""

    row: Callable[[dict], None]
    start: Callable[[Case], None] | None = None

    def started(self, case: Case) -> None:
        if self.start is not None:
            self.start(case)


class Executor:
    """Runs cases somewhere and reports their rows through :class:`Events`.

    Before ``run``, the caller asks the executor which device ``--device`` means where it
    runs (:meth:`resolve_device`), for the environment of the run's fingerprint
    (:meth:`environment`), and tells it which environment every row must be measured in
    (:meth:`expect`). The defaults describe this machine; an executor that runs cases on other
    machines overrides them. :meth:`close` releases what the executor holds."""

    name: str = ""
    #: The env scope (bench.core.env) of a run begun on this executor.
    env_scope: str = "host"

    def run(self, cases: Sequence[Case], settings: RunSettings, events: Events) -> None:
        raise NotImplementedError

    def resolve_device(self, device: str) -> str:
        """``auto``/``cpu``/``cuda`` -> the device cases will run on; UserError if unavailable."""
        from bench.core import devices

        return devices.resolve_device(device)

    def environment(self, device: str, threads: int | None) -> dict[str, Any]:
        """The environment cases of `device` are measured in (bench.core.env.collect)."""
        from bench.core import env

        return env.collect(device, threads)

    def expect(self, env: dict[str, Any], keys: Sequence[str]) -> None:
        """Rows must be measured where these `keys` of the environment equal `env`'s. Processes
        on this machine share its environment, so the default checks nothing."""

    def close(self) -> None:
        """Release what the executor holds (connections, clusters it started)."""

    def describe(self) -> dict[str, Any]:
        """What the run records about where it ran."""
        return {"executor": self.name}
