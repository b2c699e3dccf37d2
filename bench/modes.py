"""How a case's mode is applied: layout, precision, compile; and the step that is timed.

This is the one place that knows what a mode means. Adding a mode = a value in
`bench.cases` plus its handling here.

- layout `channels_last`: model and input converted with `memory_format=torch.channels_last`.
- precision `fp32`: true fp32; on CUDA TF32 is switched off for matmuls *and* cuDNN convs
  (cuDNN allows TF32 by default, which would make an "fp32" row silently TF32). `tf32`: the
  same tensors with TF32 on (CUDA only). `bf16`/`fp16`: `torch.autocast` around the forward
  (and the loss); fp16 training uses a GradScaler.
- compile: `torch.compile(model, mode=...)`; for inference with inductor freezing
  (`torch._inductor.config.freezing`), which on CPU is what enables oneDNN weight prepacking
  (REFERENCE.md: 75 ms vs 146 ms for resnet50). Compiled and run in the same grad mode
  (PyTorch #114119). `reduce-overhead` (CUDA graphs) marks each step's beginning so outputs
  are not overwritten under us.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from bench.cases import Case

# Output check against eager fp32 on the same weights and input: the max absolute difference,
# relative to the reference output's max magnitude, must stay below this per precision.
REL_TOLERANCE = {"fp32": 1e-3, "tf32": 1e-2, "bf16": 5e-2, "fp16": 1e-2}


def skip_reason(case: Case) -> str | None:
    """Why the device cannot run this combination, or None. Never silently substituted."""
    cuda = case.device.startswith("cuda")
    if not cuda:
        if case.precision == "fp16":
            return "fp16 autocast needs CUDA (CPU autocast supports bf16 only)"
        if case.precision == "tf32":
            return "TF32 is a CUDA tensor-core mode; there is no TF32 on CPU"
        if case.compile == "reduce-overhead":
            return "compile mode reduce-overhead uses CUDA graphs; it needs CUDA"
    else:
        if case.precision == "bf16" and not torch.cuda.is_bf16_supported():
            return "this GPU does not support bf16"
        if case.precision == "tf32" and torch.cuda.get_device_capability(case.device)[0] < 8:
            return "TF32 needs an Ampere or newer GPU (compute capability >= 8.0)"
    if case.compile != "none" and not _compile_supported():
        return "torch.compile is not supported in this Python/torch build"
    return None


def _compile_supported() -> bool:
    try:
        import torch._dynamo  # noqa: F401

        return True
    except Exception:  # pragma: no cover - depends on the installation
        return False


@contextlib.contextmanager
def precision_context(case: Case):
    """TF32 switches for the duration of the case (restored after), plus autocast for AMP."""
    cuda = case.device.startswith("cuda")
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        if cuda:
            tf32 = case.precision == "tf32"
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
            torch.backends.cudnn.benchmark = True
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def autocast(case: Case):
    if case.precision in ("bf16", "fp16"):
        dtype = torch.bfloat16 if case.precision == "bf16" else torch.float16
        return torch.autocast(device_type=case.device.split(":")[0], dtype=dtype)
    return contextlib.nullcontext()


def make_inputs(case: Case, num_classes: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed random batch (and labels) on the case's device, in the case's layout."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(case.batch_size, 3, case.image_size, case.image_size, generator=g)
    y = torch.randint(0, num_classes, (case.batch_size,), generator=g)
    x = x.to(case.device)
    if case.layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y.to(case.device)


@dataclass
class Prepared:
    """A ready-to-time step: `step()` runs one batch and returns the output (infer: logits,
    train: loss) so the first call can be checked against the eager fp32 reference."""

    step: Callable[[], Any]
    model: nn.Module


def prepare(model: nn.Module, case: Case, x: torch.Tensor, y: torch.Tensor) -> Prepared:
    """Apply the case's layout and compile mode to `model` (already on the device; modified in
    place for layout) and build its step. Call inside `precision_context(case)`."""
    if case.layout == "channels_last":
        model = model.to(memory_format=torch.channels_last)
    infer = case.workload == "infer"
    model.train(not infer)
    runner: nn.Module | Callable = model
    if case.compile != "none":
        import torch._inductor.config as inductor_config

        # Freezing folds weights into constants: inference only (weights must not change).
        inductor_config.freezing = infer
        runner = torch.compile(model, mode=case.compile)
    cudagraphs = case.compile == "reduce-overhead"
    amp = autocast(case)

    if infer:
        def step():
            if cudagraphs:
                torch.compiler.cudagraph_mark_step_begin()
            with torch.no_grad(), amp:
                return runner(x)

        return Prepared(step=step, model=model)

    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    scaler = torch.amp.GradScaler(case.device.split(":")[0], enabled=case.precision == "fp16")
    loss_fn = nn.CrossEntropyLoss()

    def train_step():
        if cudagraphs:
            torch.compiler.cudagraph_mark_step_begin()
        opt.zero_grad(set_to_none=True)
        with amp:
            loss = loss_fn(runner(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        return loss.detach()

    return Prepared(step=train_step, model=model)


def max_diff(out: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    """(max absolute difference, that divided by max |ref|) between an output and the reference."""
    out = out.detach().float().cpu()
    ref = ref.detach().float().cpu()
    abs_diff = (out - ref).abs().max().item() if out.numel() else 0.0
    scale = max(ref.abs().max().item(), 1e-12)
    return abs_diff, abs_diff / scale
