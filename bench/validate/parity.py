"""Check 2: resnet_impl's variant is as fast as torchvision's.

``create_model(NAME)`` with torchvision's state_dict loaded strictly (same weights: the outputs
are compared and recorded per mode) against ``torchvision.models.get_model(NAME, weights=None)``,
each mode applied by bench.core.modes.prepare exactly as the harness applies it (layout,
autocast, ``torch.compile`` with inductor freezing for inference), both models prepared and
compiled in the same process, then timed in interleaved rounds.
"""

from __future__ import annotations

import copy
import gc
import itertools
import time
from collections.abc import Callable
from typing import Any

from bench.core import devices, modes
from bench.core.case import Case
from bench.errors import one_line
from bench.validate.rounds import Settings, comparison_row, interleave, measure_round, warm_up

# Modes by device: every mode the device can run (on CPU, fp16/tf32 and CUDA graphs would
# only be skipped rows).
DEFAULT_MODES = {
    "cpu": {"layouts": ("contiguous", "channels_last"), "precisions": ("fp32", "bf16"),
            "compile": ("none", "default", "max-autotune")},
    "cuda": {"layouts": ("contiguous", "channels_last"), "precisions": ("fp32", "tf32", "bf16", "fp16"),
             "compile": ("none", "default", "max-autotune", "reduce-overhead")},
}


def torchvision_names() -> set[str]:
    import torchvision

    return set(torchvision.models.list_models(module=torchvision.models))


def build_pair(name: str, seed: int = 0):
    """(ours, torchvision's) in eval mode on CPU with identical weights: torchvision's model
    initialised with `seed`, its state_dict loaded strictly into resnet_impl's."""
    import torch
    import torchvision

    import resnet_impl

    torch.manual_seed(seed)
    ref = torchvision.models.get_model(name, weights=None)
    ours = resnet_impl.create_model(name)
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ours.eval(), ref.eval()


def mode_list(device: str, layouts=None, precisions=None, compiles=None) -> list[tuple[str, str, str]]:
    """(layout, precision, compile) triples: the product of the axes given, else the device's defaults."""
    d = DEFAULT_MODES.get(devices.backend(device).kind, DEFAULT_MODES["cpu"])
    return list(itertools.product(layouts or d["layouts"], precisions or d["precisions"], compiles or d["compile"]))


def case_of(s: Settings, mode: tuple[str, str, str]) -> Case:
    return Case(s.model, "infer", s.batch_size, s.image_size, *mode, s.device)


def skip_reason(s: Settings, mode: tuple[str, str, str]) -> str | None:
    return modes.skip_reason(case_of(s, mode))


def torchvision_check(s: Settings, modes_to_run: list[tuple[str, str, str]],
                      on_round: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """One row per mode: ours vs torchvision, interleaved rounds, same weights and input."""
    import torch

    torch.set_num_threads(s.threads)
    ours_base, ref_base = build_pair(s.model, s.seed)
    rows = []
    for mode in modes_to_run:
        case = case_of(s, mode)
        row: dict[str, Any] = {"model": s.model, "reference": f"torchvision.models.{s.model}",
                               "device": s.device, "batch_size": s.batch_size, "image_size": s.image_size,
                               "layout": case.layout, "precision": case.precision, "compile": case.compile,
                               "threads": s.threads, "status": "ok"}
        reason = modes.skip_reason(case)
        if reason:
            row.update(status="skipped", error=reason)
            rows.append(row)
            continue
        label = f"torchvision {'/'.join(mode)}"
        tag = (lambda msg, label=label: on_round(f"{label}: {msg}")) if on_round else None
        try:
            row.update(_compare_mode(case, ours_base, ref_base, s, tag))
        except Exception as e:
            row.update(status="error", error=one_line(e))
        finally:
            gc.collect()
            devices.backend(s.device).empty_cache()
        rows.append(row)
    return rows


def _compare_mode(case: Case, ours_base, ref_base, s: Settings, on_round) -> dict[str, Any]:
    import torch

    if case.compile != "none":
        torch._dynamo.reset()  # both models compile afresh, in this mode
    dev = devices.backend(s.device)
    x, y = modes.make_inputs(case, ours_base.fc.out_features, seed=s.seed)
    out: dict[str, Any] = {}
    with modes.precision_context(case):
        sides = {}
        for side, base in (("ours", ours_base), ("ref", ref_base)):
            prepared = modes.prepare(copy.deepcopy(base).to(s.device), case, x, y)
            dev.synchronize(s.device)
            t0 = time.perf_counter()
            first = prepared.step()
            dev.synchronize(s.device)
            out[f"{side}_first_call_s"] = time.perf_counter() - t0
            sides[side] = (prepared, first.detach().float().cpu())
        out["max_abs_diff"] = modes.max_diff(sides["ours"][1], sides["ref"][1])[0]
        step_a, step_b = sides["ours"][0].step, sides["ref"][0].step
        for st in (step_a, step_b):
            warm_up(st, s.device, s.warmup_s)
        a, b = interleave(measure_round(step_a, s.device, s.round_time_s),
                          measure_round(step_b, s.device, s.round_time_s), s.rounds, on_round)
    out.update(comparison_row(a, b, s.tolerance))
    del sides, step_a, step_b
    return out
