"""What is measured: a frozen `Case` per measurement, and the sweep that expands flags into cases.

A case is one (model, batch size, image size, layout, precision, compile mode, workload,
device). The sweep is the product of the axes the user gave, or a preset's explicit list of
modes. Everything here is plain data; nothing imports torch, so the CLI validates input fast.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
from dataclasses import dataclass
from typing import Iterable, Sequence

from bench.errors import UserError

LAYOUTS = ("contiguous", "channels_last")
# fp32: true fp32 (TF32 off on CUDA). tf32: fp32 tensors, TF32 tensor-core matmuls/convs (CUDA).
# bf16 / fp16: torch.autocast mixed precision (fp16 also uses a GradScaler when training).
PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
# none: eager. The others are torch.compile modes (inference compiles with inductor freezing).
COMPILE_MODES = ("none", "default", "max-autotune", "reduce-overhead")
# infer: forward under no_grad in eval mode. train: forward, cross-entropy, backward, SGD step.
WORKLOADS = ("infer", "train")
DEVICES = ("auto", "cpu", "cuda")
MIN_IMAGE_SIZE = 32  # the network's total stride: smaller inputs vanish before layer4

REFERENCE_MODE = ("contiguous", "fp32", "none")


@dataclass(frozen=True, order=True)
class Case:
    """One measurement. Frozen and hashable: its `key` identifies it across runs (for resume)."""

    model: str
    workload: str
    batch_size: int
    image_size: int
    layout: str
    precision: str
    compile: str
    device: str  # "cpu" or "cuda" (already resolved from "auto")

    @property
    def mode(self) -> tuple[str, str, str]:
        return (self.layout, self.precision, self.compile)

    @property
    def is_reference(self) -> bool:
        """Eager fp32 contiguous: what every other mode is compared with (speed and numerics)."""
        return self.mode == REFERENCE_MODE

    def key(self) -> str:
        return "|".join(str(v) for v in dataclasses.astuple(self))

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Case":
        names = [f.name for f in dataclasses.fields(cls)]
        return cls(**{n: (int(d[n]) if n in ("batch_size", "image_size") else str(d[n])) for n in names})

    def with_batch_size(self, batch_size: int) -> "Case":
        return dataclasses.replace(self, batch_size=batch_size)


@dataclass(frozen=True)
class Sweep:
    """The axes of a sweep. `modes` (layout, precision, compile) triples replace the product of
    layouts x precisions x compiles when a preset names the modes that pay off on a device."""

    models: tuple[str, ...]
    batch_sizes: tuple[int, ...]
    image_sizes: tuple[int, ...]
    modes: tuple[tuple[str, str, str], ...]
    workloads: tuple[str, ...]
    device: str

    def cases(self) -> list[Case]:
        """All cases, grouped by model (the unit of process isolation), reference mode first."""
        modes = sorted(self.modes, key=lambda m: (m != REFERENCE_MODE,))
        out = []
        for model in self.models:
            for workload, bs, size, (layout, prec, comp) in itertools.product(
                self.workloads, self.batch_sizes, self.image_sizes, modes
            ):
                out.append(Case(model, workload, bs, size, layout, prec, comp, self.device))
        return out


def product_modes(layouts: Iterable[str], precisions: Iterable[str], compiles: Iterable[str]):
    return tuple(itertools.product(layouts, precisions, compiles))


# Presets. `quick` shows v1 vs v1.5 (resnet50_v1), the three stems (resnet50 classic,
# resnet50c deep, resnet50s deep_base), the avg shortcut (resnet50d) and ResNeXt, in the modes
# that pay off on the device; `full` is the whole registry in the same modes.
QUICK_MODELS = ("resnet50", "resnet50_v1", "resnet50c", "resnet50d", "resnet50s", "resnext50_32x4d")
PRESET_MODES = {
    # On a CPU without bf16 hardware, AMP is several times slower (REFERENCE.md): not a mode
    # that pays off, so the presets add it only where the CPU has native bf16 (see preset()).
    "cpu": (("contiguous", "fp32", "none"), ("channels_last", "fp32", "none"),
            ("channels_last", "fp32", "default")),
    "cuda": (("contiguous", "fp32", "none"), ("contiguous", "tf32", "none"),
             ("channels_last", "bf16", "none"), ("channels_last", "fp16", "none"),
             ("channels_last", "bf16", "default")),
}
PRESET_BATCH_SIZES = {"cpu": (1,), "cuda": (1, 256)}
PRESETS = ("quick", "full")


CPU_BF16_MODE = ("channels_last", "bf16", "none")


def preset(name: str, device: str) -> dict:
    """Axis values of a preset for a resolved device ("cpu" or "cuda"). On a CPU with native
    bf16 (AVX512-BF16 / AMX) bf16 autocast is added, since there it can pay off."""
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; valid: {', '.join(PRESETS)}")
    modes = PRESET_MODES[device]
    if device == "cpu":
        from bench.env import cpu_has_native_bf16

        if cpu_has_native_bf16():
            modes = modes + (CPU_BF16_MODE,)
    return {
        "models": ("*",) if name == "full" else QUICK_MODELS,
        "batch_sizes": PRESET_BATCH_SIZES[device],
        "image_sizes": (224,),
        "modes": modes,
        "workloads": ("infer",),
    }


# ---------------------------------------------------------------- parsing and validation
def split_list(text: str | Sequence[str]) -> list[str]:
    """'a,b, c' -> ['a', 'b', 'c']; a list of such strings is flattened."""
    parts = [text] if isinstance(text, str) else list(text)
    return [p.strip() for item in parts for p in item.split(",") if p.strip()]


def parse_choices(text: str | Sequence[str], what: str, valid: Sequence[str]) -> tuple[str, ...]:
    values = split_list(text)
    if not values:
        raise UserError(f"no {what} given; valid: {', '.join(valid)}")
    for v in values:
        if v not in valid:
            hint = difflib.get_close_matches(v, valid, n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise UserError(f"unknown {what} {v!r}{extra}; valid: {', '.join(valid)}")
    return tuple(dict.fromkeys(values))


def parse_positive_ints(text: str | Sequence[str], what: str, minimum: int = 1) -> tuple[int, ...]:
    values = split_list(text)
    if not values:
        raise UserError(f"no {what} given")
    out = []
    for v in values:
        try:
            n = int(v)
        except ValueError:
            raise UserError(f"{what} must be a positive integer, got {v!r}") from None
        if n < 1:
            raise UserError(f"{what} must be a positive integer, got {v!r}")
        if n < minimum:
            raise UserError(f"{what} must be at least {minimum} (the network's total stride), got {n}")
        out.append(n)
    return tuple(dict.fromkeys(out))


def expand_models(patterns: str | Sequence[str]) -> tuple[str, ...]:
    """Names and fnmatch patterns -> registered names, in the order given (natural sort per pattern)."""
    import resnet_impl

    wanted = split_list(patterns)
    if not wanted:
        raise UserError("no model given")
    names: list[str] = []
    for pat in wanted:
        try:
            matched = resnet_impl.list_models(pat)
        except ValueError as e:
            raise UserError(str(e)) from None
        if not matched:
            close = difflib.get_close_matches(pat, resnet_impl.list_models(), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else "; see `resnet-bench list`"
            kind = "pattern" if any(c in pat for c in "*?[") else "model"
            raise UserError(f"unknown {kind} {pat!r} (matches no registered model){hint}")
        names.extend(matched)
    return tuple(dict.fromkeys(names))


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when CUDA is present, else 'cpu'. 'cuda' without CUDA is a user error."""
    if device not in DEVICES:
        raise UserError(f"unknown device {device!r}; valid: {', '.join(DEVICES)}")
    import torch

    has_cuda = torch.cuda.is_available()
    if device == "auto":
        return "cuda" if has_cuda else "cpu"
    if device == "cuda" and not has_cuda:
        raise UserError("--device cuda: CUDA is not available on this machine (torch.cuda.is_available() is False)")
    return device
