"""Static cost of a model: parameters, MACs, FLOPs and activations, per stage.

Counting conventions (always name the unit):

- ``macs``: multiply-accumulates of conv and linear/matmul layers only, counted by fvcore's
  ``FlopCountAnalysis`` (fvcore counts one fused multiply-add as one "flop", i.e. one MAC),
  restricted to its conv, linear, addmm, matmul/mm, bmm and einsum handles.
- ``flops = 2 * macs``.  Cross-checked against ``torch.utils.flop_counter.FlopCounterMode``,
  which counts 2 FLOPs per MAC and only conv/matmul-like ops: we expect
  ``flop_counter_flops == 2 * macs`` exactly; a disagreement is recorded with an explanation
  (``counters_agree``, ``counter_note``), never hidden and never raised.
- ``macs_all``: fvcore's own total, which adds batch-norm (eval: 1-2 per element) and
  adaptive average pooling to conv+linear; ReLU is free, and residual ``add_`` and max-pool
  are skipped ("unsupported", listed in ``unsupported_ops``).
- torchvision's ``_ops`` metadata, labelled "GFLOPS", is really conv+linear **GMACs**:
  compare it with ``macs / 1e9`` (resnet50 at 224 px: 4.089), not with ``flops``.

All counts are per batch of ``batch_size`` images of ``image_size`` x ``image_size`` pixels,
for the eager fp32 model on CPU in eval mode under ``torch.no_grad``.  torch.compile and AMP
do not change the arithmetic, so compiled cases take their numbers from the eager module.
"""

from __future__ import annotations

import contextlib
import copy
import numbers
import warnings
from dataclasses import dataclass
from typing import Any, Iterator

__all__ = ["STAGES", "Profile", "profile_model", "profile_name", "stage_map"]

# Stages of a ResNet, in forward order.  stem = everything before layer1 (conv1, possibly a
# deep-stem nn.Sequential, bn1, relu, maxpool); head = avgpool + fc.
STAGES = ("stem", "layer1", "layer2", "layer3", "layer4", "head")

# Top-level child names (torchvision and timm spellings) whose stage is known.  Any other child
# belongs to the stage of the child registered just before it (the first one: stem).
_KNOWN_CHILDREN = {
    "conv1": "stem", "bn1": "stem", "relu": "stem", "act1": "stem", "maxpool": "stem",
    "layer1": "layer1", "layer2": "layer2", "layer3": "layer3", "layer4": "layer4",
    "avgpool": "head", "global_pool": "head", "fc": "head",
}
# Parameters owned by the root module itself, and computation in its forward outside any child.
_ROOT_STAGE = "head"

# fvcore operator handles (names without "aten::") that are multiply-accumulates of conv and
# linear/matmul layers: the same ops FlopCounterMode counts.
_MAC_OPS = ("conv", "linear", "addmm", "matmul", "mm", "bmm", "einsum")

_MIN_IMAGE_SIZE = 32  # a module without a spec: torchvision ResNets downsample by 32


def _fvcore():
    """fvcore's analyses, imported on first use (it pulls in TorchScript helpers); fvcore
    decorates a few helpers with torch.jit.script at import time, which newer torch reports as
    deprecated; the analysis itself still works."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit", category=FutureWarning)
        warnings.filterwarnings("ignore", message=r".*torch\.jit", category=DeprecationWarning)
        from fvcore.nn import ActivationCountAnalysis, FlopCountAnalysis
    return FlopCountAnalysis, ActivationCountAnalysis


@dataclass(frozen=True)
class Profile:
    """Static cost of one model at one input size.  Counts are per batch of `batch_size`."""

    name: str  # model name ("" when profiling an anonymous nn.Module)
    image_size: int  # input height = width, pixels
    batch_size: int  # images per batch; every count below is per batch
    params: int  # number of parameters (each shared tensor once); independent of batch
    params_by_stage: dict[str, int]  # STAGES -> parameters; sums to `params`
    macs: int  # conv + linear multiply-accumulates (fvcore)
    flops: int  # 2 * macs: floating-point operations of conv + linear
    macs_by_stage: dict[str, int]  # STAGES -> conv + linear MACs; sums to `macs`
    macs_all: int  # fvcore total: conv + linear + batch-norm + adaptive avg-pool, in MACs
    activations: int  # output elements of conv/linear/matmul ops (fvcore ActivationCountAnalysis)
    activations_by_stage: dict[str, int]  # STAGES -> those output elements; sums to `activations`
    flop_counter_flops: int  # FlopCounterMode total (2 per MAC, conv/matmul only)
    counters_agree: bool  # flop_counter_flops == 2 * macs
    counter_note: str  # why the two counters disagree; "" when they agree
    unsupported_ops: dict[str, int]  # operator -> calls fvcore skipped (e.g. aten::add_)

    def __post_init__(self) -> None:
        _check_sum("params_by_stage", self.params_by_stage, self.params)
        _check_sum("macs_by_stage", self.macs_by_stage, self.macs)
        _check_sum("activations_by_stage", self.activations_by_stage, self.activations)
        if self.flops != 2 * self.macs:
            raise AssertionError(f"flops ({self.flops}) != 2 * macs ({self.macs})")

    def as_row(self) -> dict[str, Any]:
        """Flat columns for a results table: totals, then `params_<stage>` and `macs_<stage>`."""
        row: dict[str, Any] = {
            "params": self.params,
            "macs": self.macs,
            "flops": self.flops,
            "macs_all": self.macs_all,
            "activations": self.activations,
            "flop_counter_flops": self.flop_counter_flops,
            "counters_agree": self.counters_agree,
        }
        row.update({f"params_{s}": self.params_by_stage[s] for s in STAGES})
        row.update({f"macs_{s}": self.macs_by_stage[s] for s in STAGES})
        row.update({f"activations_{s}": self.activations_by_stage[s] for s in STAGES})
        return row


def profile_model(
    model: "nn.Module", image_size: int, *, batch_size: int = 1, name: str = ""
) -> Profile:
    """Count parameters, MACs, FLOPs and activations of `model` on a (batch_size, C, H, H) input.

    Works on any nn.Module taking one image batch; C is the first Conv2d's in_channels (3 when
    there is none).  The model is profiled as an eager fp32 copy on CPU in eval mode under
    ``torch.no_grad`` (outside inference_mode), so the caller's module is left untouched; a
    torch.compile'd module is profiled through its original eager module.

    `activations` follows fvcore's convention: the number of output elements of conv, linear,
    matmul/bmm and einsum ops (batch-norm, activation functions, pooling and adds not counted).

    Stages: top-level children are assigned by name (conv1, bn1, relu, maxpool -> stem;
    layer1..layer4; avgpool, fc -> head); any other child goes to the stage of the child
    registered before it, and the root's own parameters and ops go to head.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    FlopCountAnalysis, ActivationCountAnalysis = _fvcore()
    spec = getattr(getattr(model, "_orig_mod", model), "spec", None)
    minimum = getattr(spec, "total_stride", _MIN_IMAGE_SIZE)
    image_size = _check_int("image_size", image_size, minimum, "pixels per side")
    batch_size = _check_int("batch_size", batch_size, 1, "images per batch")
    model = _eager_cpu_fp32_eval_copy(model)
    x = torch.zeros(batch_size, _input_channels(model), image_size, image_size)
    child_stage = _child_stages(model)

    params_by_stage = dict.fromkeys(STAGES, 0)
    for pname, p in model.named_parameters():
        params_by_stage[_stage_of(pname, child_stage)] += p.numel()
    params = sum(p.numel() for p in model.parameters())

    with _quiet_tracing(), torch.inference_mode(False), torch.no_grad():
        flops_analysis = _quiet(FlopCountAnalysis(model, (x,)))
        by_op = flops_analysis.by_operator()
        macs = int(sum(by_op[op] for op in _MAC_OPS))
        macs_all = int(flops_analysis.total())
        unsupported = {op: int(n) for op, n in sorted(flops_analysis.unsupported_ops().items())}
        by_module = flops_analysis.by_module_and_operator()
        acts = _quiet(ActivationCountAnalysis(model, (x,)))
        activations = int(acts.total())
        acts_by_module = acts.by_module()

        with FlopCounterMode(display=False) as counter:
            model(x)
        fc_flops = int(counter.get_total_flops())
        fc_by_op = {str(op): int(n) for op, n in counter.get_flop_counts()["Global"].items()}

    macs_by_stage = dict.fromkeys(STAGES, 0)
    for child, stage in child_stage.items():
        macs_by_stage[stage] += int(sum(by_module.get(child, {}).get(op, 0) for op in _MAC_OPS))
    root_only = macs - sum(macs_by_stage.values())
    if root_only < 0:
        raise AssertionError(f"top-level children have more MACs than the model ({-root_only})")
    macs_by_stage[_ROOT_STAGE] += root_only
    activations_by_stage = dict.fromkeys(STAGES, 0)
    for child, stage in child_stage.items():
        activations_by_stage[stage] += int(acts_by_module.get(child, 0))
    activations_by_stage[_ROOT_STAGE] += activations - sum(activations_by_stage.values())

    agree = fc_flops == 2 * macs
    note = "" if agree else _disagreement_note(macs, by_op, fc_flops, fc_by_op, unsupported)
    return Profile(
        name=name,
        image_size=image_size,
        batch_size=batch_size,
        params=params,
        params_by_stage=params_by_stage,
        macs=macs,
        flops=2 * macs,
        macs_by_stage=macs_by_stage,
        macs_all=macs_all,
        activations=activations,
        activations_by_stage=activations_by_stage,
        flop_counter_flops=fc_flops,
        counters_agree=agree,
        counter_note=note,
        unsupported_ops=unsupported,
    )


def profile_name(
    name: str, image_size: int = 224, *, batch_size: int = 1, **overrides: Any
) -> Profile:
    """Profile the registered model `name`, built by ``resnet_impl.create_model(name, **overrides)``.

    Counts are per batch of `batch_size` images of `image_size` pixels (see `profile_model`).
    """
    import resnet_impl  # lazy: bench.profile works on any nn.Module without it

    model = resnet_impl.create_model(name, **overrides)
    return profile_model(model, image_size, batch_size=batch_size, name=name)


# --- helpers ---------------------------------------------------------------------------------


def _check_int(what: str, value: Any, minimum: int, unit: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{what} must be an int >= {minimum} ({unit}), got {value!r}")
    return int(value)


def _check_sum(what: str, by_stage: dict[str, int], total: int) -> None:
    if tuple(by_stage) != STAGES or sum(by_stage.values()) != total:
        raise AssertionError(f"{what} {by_stage} must have keys {STAGES} and sum to {total}")


def _eager_cpu_fp32_eval_copy(model: "nn.Module") -> "nn.Module":
    """A copy we may move, cast and switch to eval; unwraps torch.compile's OptimizedModule."""
    import torch

    model = getattr(model, "_orig_mod", model)
    return copy.deepcopy(model).to(device="cpu", dtype=torch.float32).eval()


def _input_channels(model: "nn.Module") -> int:
    from torch import nn

    first_conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return first_conv.in_channels if first_conv is not None else 3


def _stage_of(param: str, stages: dict[str, str]) -> str:
    """The stage of a parameter: that of the longest module path in `stages` that holds it."""
    best = max((m for m in stages if param.startswith(m + ".")), key=len, default=None)
    return stages[best] if best is not None else _ROOT_STAGE


def stage_map(model: "nn.Module") -> dict[str, str]:
    """Module path -> stage, in forward order: the modules whose params and MACs are counted
    per stage here, and which bench.core.stages times per stage."""
    return _child_stages(model)


def _child_stages(model: "nn.Module") -> dict[str, str]:
    """Top-level child name -> stage, in registration (forward) order."""
    declared = getattr(model, "profile_stages", None)  # module path -> stage (pre-activation models)
    if isinstance(declared, dict):
        return dict(declared)
    stages: dict[str, str] = {}
    previous = STAGES[0]
    for child, _ in model.named_children():
        previous = stages[child] = _KNOWN_CHILDREN.get(child, previous)
    return stages


def _quiet(analysis: Any) -> Any:
    """fvcore logs a warning per unsupported op and uncalled module; we keep them in Profile."""
    return analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)


@contextlib.contextmanager
def _quiet_tracing() -> Iterator[None]:
    """Silence TorchScript tracer warnings and torch.jit deprecation notices, nothing else."""
    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        for category in (FutureWarning, DeprecationWarning, UserWarning):
            warnings.filterwarnings("ignore", message=r".*torch\.jit", category=category)
        yield


def _disagreement_note(
    macs: int,
    fv_by_op: dict[str, int],
    fc_flops: int,
    fc_by_op: dict[str, int],
    unsupported: dict[str, int],
) -> str:
    fv_ops = {op: int(n) for op, n in fv_by_op.items() if op in _MAC_OPS and n}
    note = (
        f"FlopCounterMode counted {fc_flops} FLOPs but fvcore counted {macs} conv+linear MACs "
        f"(2 * macs = {2 * macs}; difference {fc_flops - 2 * macs} FLOPs). "
        f"FlopCounterMode FLOPs by op: {fc_by_op or 'none'}; "
        f"fvcore MACs by op: {fv_ops or 'none'}; ops fvcore skipped: {unsupported or 'none'}."
    )
    if fc_flops == 0 and macs > 0:
        note += " FlopCounterMode saw nothing (it reported 0 under inference_mode in old torch)."
    else:
        note += " Usually an operator that one counter handles and the other does not."
    return note
