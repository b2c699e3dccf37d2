"""Where a case ran out of memory: the phase marker the case runner moves along, and the
phase an out-of-memory error is put down to (the row's ``oom_phase``).

Phases, in the order a case passes them:

- ``estimate``: the lower bound of bench.core.memory exceeded the free memory; nothing ran;
- ``profile``: counting params and MACs (bench.core.profile, on the host);
- ``input``: creating the input batch and labels on the device (bench.core.modes.make_inputs);
- ``model``: copying the model's weights to the device;
- ``compile``: torch.compile's compiler failed for lack of memory (dynamo/inductor raised it,
  e.g. while autotuning); an OOM while *running* a compiled graph is put down to forward or
  backward like an eager one;
- ``forward``, ``backward``, ``optimizer``: inside a step (a training step marks all three;
  an inference step is all forward);
- ``memory pass``, ``trace``: the extra steps after the timed samples.

The reference output (eager fp32) is a check, not the measurement: an OOM in it leaves the
output unchecked (``output_note``) and the case goes on.
"""

from __future__ import annotations

PHASES = ("estimate", "profile", "input", "model", "build", "compile", "forward", "verify", "backward", "optimizer",
          "timing", "memory pass", "stage pass", "trace")


class Phase:
    """The phase a case is in. ``set(name)`` moves it; a training step calls it three times per
    step (a few attribute writes, tens of nanoseconds, inside the timed samples)."""

    __slots__ = ("now", "first_call")

    def __init__(self) -> None:
        self.now = ""
        self.first_call = False  # the first call of the step (a compiled model compiles in it)

    def set(self, name: str) -> None:
        self.now = name


def compiler_failed(exc: BaseException) -> bool:
    """True when `exc` (or an exception it was raised from) came out of torch.compile's compiler:
    dynamo's exceptions (``BackendCompilerFailed`` wraps what the backend raised) or inductor's
    ``InductorError``."""
    seen = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        for cls in type(e).__mro__:
            mod = cls.__module__ or ""
            if mod.startswith(("torch._dynamo", "torch._inductor")) and cls.__name__ in (
                    "TorchDynamoException", "BackendCompilerFailed", "InductorError"):
                return True
        e = e.__cause__ or e.__context__
    return False


def phase_of(exc: BaseException, phase: Phase) -> str:
    """The ``oom_phase`` of an out-of-memory `exc` raised while `phase` was current."""
    if compiler_failed(exc):
        return "compile"
    return phase.now or "unknown"


def describe(exc_text: str, phase_name: str, phase: Phase) -> str:
    """The row's error for an OOM: what was raised, the phase, and whether it was the first call
    of the step."""
    where = f"out of memory in {phase_name}"
    if phase.first_call and phase_name in ("forward", "backward", "optimizer"):
        where += " (first call)"
    return f"{where}: {exc_text}"
