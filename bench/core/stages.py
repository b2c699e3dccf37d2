"""Time per stage: where a forward pass spends its time (stem, layer1..layer4, head).

The stage pass runs a few steps of a case's prepared step **after** its timed samples, apart
from them (as the memory pass does), with a mark at the start and the end of every stage: a
forward pre-hook on the stage's first module and a forward hook on its last
(bench.core.profile's stage map: the same modules whose params and MACs are counted per
stage). The device picks the clock once (bench.core.devices ``marker``): the host's
``perf_counter_ns`` on a CPU, CUDA events recorded where the host reaches the mark on a GPU
(read after one synchronize per step). Each stage's time is its median over the steps; the
whole step is marked around the call, and ``stage_residue_ms`` = whole - sum of stages (the
work between stages: Python, the flatten before fc, the hooks' own cost), with its fraction.

Only an eager torch module can be attributed: ``torch.compile`` fuses across stages and runs
none of the hooks, and another runtime (bench.core.backends) has no torch modules at all;
such a case gets ``stage_note`` saying so instead of numbers.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from bench.core import devices
from bench.core.profile import STAGES, stage_map

#: Columns of the stage pass (ms; per step of the case's batch).
COLUMNS = tuple(f"stage_ms_{s}" for s in STAGES) + ("stage_total_ms", "stage_residue_ms", "stage_residue_frac",
                                                    "stage_steps", "stage_note", "stage_pass_s")
#: The stage pass runs at least this many steps, whatever its time budget.
MIN_STEPS = 3


def stage_bounds(model: Any) -> dict[str, tuple[Any, Any]] | None:
    """stage -> (first module, last module) in forward order, for the stages the model has;
    None when its stages cannot be told apart."""
    paths = stage_map(model)  # module path -> stage, in registration (forward) order
    bounds: dict[str, list[str]] = {}
    for path, stage in paths.items():
        bounds.setdefault(stage, []).append(path)
    if list(bounds) != [s for s in STAGES if s in bounds] or not {"stem", "head"} <= set(bounds) or len(bounds) < 3:
        return None  # not a stem/layers/head network, or stages out of forward order: marks would not bracket them
    try:
        return {s: (model.get_submodule(ps[0]), model.get_submodule(ps[-1])) for s, ps in bounds.items()}
    except AttributeError:
        return None


def time_stages(step: Callable[[], Any], model: Any, device: str, steps: int, max_s: float = 1.0) -> dict[str, Any]:
    """Run `step` `steps` times (fewer, but at least ``MIN_STEPS``, once `max_s` seconds are
    spent) with a mark around every stage of `model` (the module `step` runs); the median time
    per stage, of the whole step and the residue (see the module doc)."""
    dev = devices.backend(device)
    bounds = stage_bounds(model) if model is not None else None
    if bounds is None:
        return {"stage_note": "this model's stages cannot be told apart (no stem/layer/head modules)"}
    mark, elapsed_ms = dev.marker(device)
    marks: dict[str, list] = {}
    handles = []

    def at(stage: str, end: bool):
        def hook(*_):
            marks.setdefault(stage, [None, None])[end] = mark()
        return hook

    for stage, (first, last) in bounds.items():
        handles.append(first.register_forward_pre_hook(at(stage, False)))
        handles.append(last.register_forward_hook(at(stage, True)))
    per_stage: dict[str, list[float]] = {s: [] for s in bounds}
    whole: list[float] = []
    start = time.perf_counter()
    try:
        for i in range(steps):
            if i >= MIN_STEPS and time.perf_counter() - start > max_s:
                break
            marks.clear()
            dev.synchronize(device)
            t0 = mark()
            step()
            t1 = mark()
            dev.synchronize(device)
            if any(None in ab for ab in marks.values()) or set(marks) != set(bounds):
                return {"stage_note": "the stage hooks did not run (a compiled or traced module runs none of them)"}
            whole.append(elapsed_ms(t0, t1))
            for s, (a, b) in marks.items():
                per_stage[s].append(elapsed_ms(a, b))
    finally:
        for h in handles:
            h.remove()
    out: dict[str, Any] = {f"stage_ms_{s}": statistics.median(v) for s, v in per_stage.items()}
    total = statistics.median(whole)
    residue = total - sum(out.values())
    out.update(stage_total_ms=total, stage_residue_ms=residue, stage_residue_frac=residue / total if total else None,
               stage_steps=len(whole), stage_note="")
    return out
