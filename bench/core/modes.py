"""Modes as data, and how a case's mode is applied to a model and its input.

A case's mode is three names, one per axis: a :class:`Layout`, a :class:`Precision` and a
:class:`CompileMode`. Each is a frozen record that says what the mode does, how close its
output must stay to eager fp32, and which device capabilities it needs (bench.core.devices):
a device without one gets a ``skipped`` row with the device's reason, never a substitute.

Add a mode = one ``register(...)`` call with a new record (here, or in a plugin module named in
``RESNET_BENCH_PLUGINS``); the CLI's choices, the presets' validation, the skip rule and the
output check all read these tables.

- layout ``channels_last``: model and input converted with that memory format.
- precision ``fp32``: true fp32; devices with TF32 switch it off for matmuls *and* convs.
  ``tf32``: the same tensors with TF32 on. ``bf16``/``fp16``: ``torch.autocast`` around the
  forward and the loss; fp16 training uses a GradScaler.
- compile: ``torch.compile(model, mode=...)``; for inference with inductor freezing, which on
  CPU enables oneDNN weight prepacking (without it compile is slower than eager on CPU).
  Compiled and run in the same grad mode (PyTorch #114119). ``reduce-overhead`` (CUDA graphs)
  marks each step's beginning so outputs are not overwritten under us.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Union

from bench.core import devices
from bench.core.case import Case


@dataclass(frozen=True)
class Layout:
    name: str
    memory_format: str  # attribute of torch: "contiguous_format", "channels_last"
    doc: str = ""
    requires: tuple[str, ...] = ()


@dataclass(frozen=True)
class Precision:
    name: str
    autocast: str | None  # torch dtype name for torch.autocast ("bfloat16"), None = no autocast
    tf32: bool  # TF32 tensor-core math allowed (on devices that have the switch)
    tolerance: float  # max |out - eager fp32| / max |eager fp32| for output_ok
    grad_scaler: bool = False  # training scales the loss (fp16)
    doc: str = ""
    requires: tuple[str, ...] = ()


@dataclass(frozen=True)
class CompileMode:
    name: str
    torch_mode: str | None  # torch.compile(mode=...); None = eager
    doc: str = ""
    freeze_inference: bool = True  # inductor freezing when compiling for inference
    cudagraphs: bool = False  # mark each step's beginning (CUDA graphs reuse output memory)
    requires: tuple[str, ...] = ()


Mode = Union[Layout, Precision, CompileMode]
_AXES: dict[type, dict[str, Any]] = {Layout: {}, Precision: {}, CompileMode: {}}
AXIS_NAMES = {"layout": Layout, "precision": Precision, "compile": CompileMode}


def register(mode: Mode) -> Mode:
    """Add a layout, precision or compile mode; refuses a name its axis already has."""
    table = _AXES.get(type(mode))
    if table is None:
        raise TypeError(f"register expects a Layout, Precision or CompileMode, got {type(mode).__name__}")
    if mode.name in table:
        raise ValueError(f"{type(mode).__name__} {mode.name!r} is already registered")
    table[mode.name] = mode
    return mode


def unregister(axis: str, name: str) -> None:
    """Remove a registered mode (tests, plugins)."""
    del _AXES[AXIS_NAMES[axis]][name]


def names(axis: str) -> tuple[str, ...]:
    """Registered names of an axis: "layout", "precision" or "compile", in registration order."""
    return tuple(_AXES[AXIS_NAMES[axis]])


def layout(name: str) -> Layout:
    return _AXES[Layout][name]


def precision(name: str) -> Precision:
    return _AXES[Precision][name]


def compile_mode(name: str) -> CompileMode:
    return _AXES[CompileMode][name]


register(Layout("contiguous", "contiguous_format", "NCHW, PyTorch's default"))
register(Layout("channels_last", "channels_last", "NHWC: model and input converted"))
register(Precision("fp32", None, tf32=False, tolerance=1e-3, doc="true fp32 (TF32 off)"))
register(Precision("tf32", None, tf32=True, tolerance=1e-2, requires=("tf32",),
                   doc="fp32 tensors, TF32 tensor-core matmuls and convs"))
register(Precision("bf16", "bfloat16", tf32=False, tolerance=5e-2, requires=("bf16_autocast",),
                   doc="torch.autocast to bfloat16"))
register(Precision("fp16", "float16", tf32=False, tolerance=1e-2, grad_scaler=True, requires=("fp16_autocast",),
                   doc="torch.autocast to float16; training with a GradScaler"))
register(Precision("int8", None, tf32=False, tolerance=1.0,
                   doc="static int8 quantization, each backend its own way (bench.core.backends); checked by the "
                       "cosine similarity and top-1/top-5 agreement of its logits (bench.core.backends.int8)"))
register(CompileMode("none", None, "eager"))
register(CompileMode("default", "default", "torch.compile, inductor", requires=("compile",)))
register(CompileMode("max-autotune", "max-autotune", "torch.compile with autotuning", requires=("compile",)))
register(CompileMode("reduce-overhead", "reduce-overhead", "torch.compile with CUDA graphs", cudagraphs=True,
                     requires=("cuda_graphs", "compile")))


def parts(case: Case) -> tuple[Layout, Precision, CompileMode]:
    """The three mode records of a case (KeyError for a name no axis has)."""
    return layout(case.layout), precision(case.precision), compile_mode(case.compile)


def skip_reason(case: Case) -> str | None:
    """Why the case's device or backend cannot run its mode, or None. Never silently substituted."""
    from bench.core import backends

    try:
        why = backends.get(case.backend).skip_reason(case)
    except ValueError as e:
        return str(e)
    if why or case.backend != "pytorch":
        return why
    dev = devices.backend(case.device)
    caps = dev.capabilities(case.device)
    for part in parts(case):
        for need in part.requires:
            if need not in caps:
                return dev.missing_reason(need, case.device)
    return None


def tolerance(case: Case) -> float:
    """Relative output tolerance of the case's precision against eager fp32."""
    return precision(case.precision).tolerance


@contextlib.contextmanager
def precision_context(case: Case):
    """The device's math switches for the case's precision (TF32 on or off), restored after."""
    with devices.backend(case.device).precision_switches(tf32=precision(case.precision).tf32):
        yield


def autocast(case: Case):
    """``torch.autocast`` for an AMP precision, else a null context."""
    p = precision(case.precision)
    if p.autocast is None:
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device_type=devices.backend(case.device).kind, dtype=getattr(torch, p.autocast))


def make_inputs(case: Case, num_classes: int, seed: int = 0):
    """A fixed random batch (and labels), drawn directly on the case's device with a generator
    of that device (no host tensor, no copy: an over-large batch fails at once, in phase
    ``input``), then put in the case's layout (channels_last: one copy on the device). The same
    seed, shape and device give the same values whatever the layout, so every mode of a case
    sees the same logical input."""
    import torch

    g = torch.Generator(device=case.device).manual_seed(seed)
    x = torch.randn(case.batch_size, 3, case.image_size, case.image_size, generator=g, device=case.device)
    y = torch.randint(0, num_classes, (case.batch_size,), generator=g, device=case.device)
    x = x.contiguous(memory_format=getattr(torch, layout(case.layout).memory_format))
    return x, y


@dataclass
class Prepared:
    """A ready-to-time step: `step()` runs one batch and returns the output (infer: logits,
    train: loss) so the first call can be checked against the eager fp32 reference."""

    step: Callable[[], Any]
    model: Any  # nn.Module


def prepare(model, case: Case, x, y, phase=None) -> Prepared:
    """Apply the case's layout and compile mode to `model` (already on the device; modified in
    place for layout) and build its step. Call inside `precision_context(case)`. With a
    bench.core.oom.Phase, a training step marks forward, backward and optimizer on it."""
    import torch
    from torch import nn

    lay, prec, comp = parts(case)
    model = model.to(memory_format=getattr(torch, lay.memory_format))
    infer = case.workload == "infer"
    model.train(not infer)
    runner: Any = model
    if comp.torch_mode is not None:
        import torch._inductor.config as inductor_config

        # Freezing folds weights into constants: inference only (weights must not change).
        inductor_config.freezing = infer and comp.freeze_inference
        runner = torch.compile(model, mode=comp.torch_mode)
    cudagraphs = comp.cudagraphs
    amp = autocast(case)

    if infer:
        def step():
            if cudagraphs:
                torch.compiler.cudagraph_mark_step_begin()
            with torch.no_grad(), amp:
                return runner(x)

        return Prepared(step=step, model=model)

    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    scaler = torch.amp.GradScaler(devices.backend(case.device).kind, enabled=prec.grad_scaler)
    loss_fn = nn.CrossEntropyLoss()

    mark = phase.set if phase is not None else (lambda name: None)

    def train_step():
        if cudagraphs:
            torch.compiler.cudagraph_mark_step_begin()
        mark("forward")
        opt.zero_grad(set_to_none=True)
        with amp:
            loss = loss_fn(runner(x), y)
        mark("backward")
        scaler.scale(loss).backward()
        mark("optimizer")
        scaler.step(opt)
        scaler.update()
        return loss.detach()

    return Prepared(step=train_step, model=model)


def max_diff(out, ref) -> tuple[float, float]:
    """(max absolute difference, that divided by max |ref|) between an output and the reference."""
    out = out.detach().float().cpu()
    ref = ref.detach().float().cpu()
    abs_diff = (out - ref).abs().max().item() if out.numel() else 0.0
    scale = max(ref.abs().max().item(), 1e-12)
    return abs_diff, abs_diff / scale
