"""Measurement passes: what is measured on a case once it is open (its model prepared, its
first call checked, warm) and its timed samples are taken.

Each pass measures one thing on the case's live step and returns its row's columns, in the
order of :data:`PASSES`, each in its own out-of-memory phase (bench.core.oom):

- :class:`TimingPass`: the statistics of the timed samples (bench.core.timing) and what the
  trackers read around them (peak memory, energy, clocks). The samples themselves are taken
  by the runner, in one go or in blocks interleaved with the model's other modes
  (bench.execute.case_runner); this pass reads them, first, before anything resets a counter.
- :class:`MemoryPass`: peaks over a few steps with the counters reset (bench.core.memory).
- :class:`StagePass`: the time of each stage inside the forward (bench.core.stages).
- :class:`TracePass`: a torch.profiler trace of a few steps (bench.core.trace).

Add a pass = a :class:`Pass` subclass and one :func:`register_pass` line (its columns in
bench.results.columns); the runner, the rounds and the rows need nothing else. A pass runs in
round 1 only unless bench.execute.rounds.round_settings keeps its setting for later rounds.
"""

from __future__ import annotations

import time
from typing import Any

from bench.core import devices
from bench.core.case import Case
from bench.errors import one_line
from bench.execute.base import RunSettings


class Pass:
    """One measurement on a live case (``live``: case, out, trackers, model, prepared, sampler)."""

    name: str = ""

    def wanted(self, settings: RunSettings, case: Case) -> bool:
        return True

    def measure(self, live: Any, settings: RunSettings) -> dict[str, Any]:
        raise NotImplementedError


class TimingPass(Pass):
    name = "timing"

    def measure(self, live, settings):
        case, out = live.case, {}
        for t in live.trackers:  # before the memory pass, which resets the peak counters
            out.update(t.stop(case))
        m = live.sampler.measurement()
        out.update(m.to_dict())
        out["first_call_s"] = m.first_call_s
        out["compile_s"] = m.first_call_s if case.compile != "none" else None
        return out


class MemoryPass(Pass):
    name = "memory pass"

    def wanted(self, settings, case):
        return settings.memory_pass_steps > 0

    def measure(self, live, settings):
        from bench.core import memory

        return memory.measure_peaks(live.prepared.step, live.case.device, settings.memory_pass_steps)


class StagePass(Pass):
    name = "stage pass"

    def wanted(self, settings, case):
        return settings.stage_pass_steps > 0 and case.workload == "infer"

    def measure(self, live, settings):
        from bench.core import stages

        if live.case.backend != "pytorch":
            return {"stage_note": f"not attributed: backend {live.case.backend} runs no torch modules"}
        if live.case.compile != "none":
            return {"stage_note": "not attributed: torch.compile fuses across stages, runs no module hooks and drops "
                                  "record_function scopes (results/stages-cpu/compile_scopes.txt)"}
        t0 = time.perf_counter()
        out = stages.time_stages(live.prepared.step, live.prepared.model, live.case.device, settings.stage_pass_steps)
        out["stage_pass_s"] = time.perf_counter() - t0
        return out


class TracePass(Pass):
    name = "trace"

    def wanted(self, settings, case):
        return bool(settings.trace_dir)

    def measure(self, live, settings):
        """The profiler trace (bench.core.trace); a failure is noted, never fatal."""
        from bench.core import trace

        try:
            return trace.trace_steps(live.prepared.step, live.case.device, live.case.label(), settings.trace_dir)
        except Exception as exc:
            if devices.is_oom(exc):
                raise
            return {"trace_note": f"trace failed: {one_line(exc)}"}


#: The passes, in the order they run.
PASSES: list[Pass] = []


def register_pass(p: Pass, *, before: str | None = None) -> Pass:
    """Add a pass (at the end, or before the pass named `before`); refuses a taken name."""
    if any(q.name == p.name for q in PASSES):
        raise ValueError(f"a pass named {p.name!r} is already registered")
    at = next((i for i, q in enumerate(PASSES) if q.name == before), len(PASSES)) if before else len(PASSES)
    PASSES.insert(at, p)
    return p


def unregister_pass(name: str) -> None:
    PASSES[:] = [p for p in PASSES if p.name != name]


for _p in (TimingPass(), MemoryPass(), StagePass(), TracePass()):
    register_pass(_p)
