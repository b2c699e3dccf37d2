"""What is measured: a frozen :class:`Case` per measurement, and the :class:`Sweep` of them.

A case is one (model, workload, batch size, image size, layout, precision, compile mode,
device), and for data-parallel training the number of ranks (``ddp``). Its :meth:`Case.key`
identifies it across runs (resume, comparisons, gates) and its :meth:`Case.label` names it to
people; nothing else spells either. Plain data: importing this module imports no torch.

A field added later has a default (:data:`FIELD_DEFAULTS`) and enters the key only when it
differs from it, so results written before it existed keep their keys: they still load,
report and resume.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.errors import UserError

# infer: forward under no_grad in eval mode. train: forward, cross-entropy, backward, SGD step.
WORKLOADS = ("infer", "train")
MIN_IMAGE_SIZE = 1  # a positive size; each variant's own minimum is its total stride (check_sizes)

#: Eager fp32 contiguous: what every other mode is compared with (speed and numerics).
REFERENCE_MODE = ("contiguous", "fp32", "none")
#: ... in PyTorch (bench.core.backends).
REFERENCE_BACKEND = "pytorch"


@dataclass(frozen=True, order=True)
class Case:
    """One measurement. Frozen and hashable."""

    model: str
    workload: str
    batch_size: int  # the batch asked for (a row measured at a backed-off batch keeps this)
    image_size: int
    layout: str
    precision: str
    compile: str
    device: str  # "cpu" or "cuda" (already resolved from "auto")
    # torch.distributed data-parallel ranks (one device each, one node); 0 = a plain case in one
    # process. With ddp, batch_size is the batch per rank.
    ddp: int = 0
    # the runtime the model runs in (bench.core.backends): pytorch (eager or torch.compile, per
    # `compile`), aoti, onnxruntime, openvino, tensorrt
    backend: str = "pytorch"

    @property
    def mode(self) -> tuple[str, str, str]:
        return (self.layout, self.precision, self.compile)

    @property
    def is_reference(self) -> bool:
        return self.mode == REFERENCE_MODE and self.backend == REFERENCE_BACKEND

    def reference(self) -> Case:
        """The same case in the reference mode (eager fp32 contiguous, PyTorch)."""
        return dataclasses.replace(self, layout=REFERENCE_MODE[0], precision=REFERENCE_MODE[1],
                                   compile=REFERENCE_MODE[2], backend=REFERENCE_BACKEND)

    def key(self) -> str:
        """The case's identity: its fields joined by ``|``; a field at its default
        (FIELD_DEFAULTS) is left out, so a plain case keeps the key it had before ``ddp``."""
        return "|".join(str(getattr(self, f)) for f in FIELDS
                        if f not in FIELD_DEFAULTS or getattr(self, f) != FIELD_DEFAULTS[f])

    def label(self) -> str:
        """e.g. ``resnet50 infer bs1 224px channels_last/bf16/default cpu`` (`` ddp4`` for a
        data-parallel case)."""
        return (f"{self.model} {self.workload} bs{self.batch_size} {self.image_size}px "
                f"{self.layout}/{self.precision}/{self.compile} {self.device}"
                + (f" ddp{self.ddp}" if self.ddp else "")
                + (f" {self.backend}" if self.backend != REFERENCE_BACKEND else ""))

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Case:
        """From a dict holding every required field (extra keys ignored; a field with a default
        may be absent, or missing as None/NaN from a table); KeyError/ValueError otherwise."""
        out: dict[str, Any] = {}
        for n in FIELDS:
            v = d[n] if n not in FIELD_DEFAULTS else d.get(n)
            if n in FIELD_DEFAULTS and (v is None or v != v):
                v = FIELD_DEFAULTS[n]
            out[n] = int(v) if n in INT_FIELDS else str(v)
        return cls(**out)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Case:
        """The case a result row answers: its *requested* batch size, not the one an OOM
        back-off measured, so a row and the case it was planned as have one key."""
        requested = row.get("batch_size_requested")
        if requested is None or requested != requested:  # absent, or NaN from a table
            requested = row["batch_size"]
        return cls.from_dict({**row, "batch_size": requested})

    def with_batch_size(self, batch_size: int) -> Case:
        return dataclasses.replace(self, batch_size=batch_size)


#: The case's fields, in key order.
FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Case))
#: Fields added after results were first written: their default, which the key leaves out.
FIELD_DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(Case)
                                  if f.default is not dataclasses.MISSING}
#: Fields every result row must hold.
REQUIRED_FIELDS: tuple[str, ...] = tuple(f for f in FIELDS if f not in FIELD_DEFAULTS)
#: Fields that hold whole numbers.
INT_FIELDS = ("batch_size", "image_size", "ddp")


@dataclass(frozen=True)
class Sweep:
    """The axes of a sweep. `modes` (layout, precision, compile) triples replace the product of
    layouts x precisions x compiles when a preset names the modes that pay off on a device.
    Empty `image_sizes`: each model at its natural input size (`natural_sizes`, e.g. 32 px for
    the CIFAR variants, 224 for the ImageNet ones). `ddp` (world sizes, e.g. (1, 2, 8)) turns
    every train case into one data-parallel case per world size; infer cases stay plain."""

    models: tuple[str, ...]
    batch_sizes: tuple[int, ...]
    image_sizes: tuple[int, ...]
    modes: tuple[tuple[str, str, str], ...]
    workloads: tuple[str, ...]
    device: str
    natural_sizes: Mapping[str, int] = dataclasses.field(default_factory=dict)
    ddp: tuple[int, ...] = ()
    # runtimes (bench.core.backends): each (layout, precision, compile) mode in each of them; a
    # mode of four names (a preset's) names its backend itself
    backends: tuple[str, ...] = (REFERENCE_BACKEND,)

    def sizes_of(self, model: str) -> tuple[int, ...]:
        return self.image_sizes or (self.natural_sizes.get(model) or natural_size(model),)

    def full_modes(self) -> list[tuple[str, str, str, str]]:
        """(layout, precision, compile, backend) of every mode, the reference first."""
        full = [m if len(m) == 4 else (*m, b) for m in self.modes for b in ((None,) if len(m) == 4 else self.backends)]
        ref = REFERENCE_MODE + (REFERENCE_BACKEND,)
        return sorted(dict.fromkeys(full), key=lambda m: (m != ref,))

    def cases(self) -> list[Case]:
        """All cases, grouped by model (the unit of process isolation), reference mode first."""
        modes = self.full_modes()
        out = []
        for model in self.models:
            for workload, bs, size, (layout, prec, comp, backend) in itertools.product(
                self.workloads, self.batch_sizes, self.sizes_of(model), modes
            ):
                ranks = self.ddp if (workload == "train" and self.ddp) else (0,)
                out += [Case(model, workload, bs, size, layout, prec, comp, self.device, n, backend) for n in ranks]
        return out


def product_modes(layouts: Iterable[str], precisions: Iterable[str], compiles: Iterable[str]):
    return tuple(itertools.product(layouts, precisions, compiles))


def natural_size(model: str, overrides: Mapping[str, Any] | None = None) -> int:
    """The input size a registered variant is meant for (its spec's natural_input_size)."""
    import resnet_impl

    return resnet_impl.get_spec(model).replace(**dict(overrides or {})).natural_input_size


def check_sizes(models: Sequence[str], sizes: Sequence[int], overrides: Mapping[str, Any] | None = None) -> None:
    """UserError for a size below a model's total stride (the input would vanish before its
    last stage)."""
    import resnet_impl

    for m in models:
        stride = resnet_impl.get_spec(m).replace(**dict(overrides or {})).total_stride
        small = [s for s in sizes if s < stride]
        if small:
            raise UserError(f"image size {small[0]} is below {m}'s total stride ({stride} px): its last stage "
                            f"would get no pixels; use at least {stride}")


def group_by_model(cases: Iterable[Case]) -> list[list[Case]]:
    """Cases grouped by model, in first-seen order: the unit an executor runs in one process."""
    groups: dict[str, list[Case]] = {}
    for c in cases:
        groups.setdefault(c.model, []).append(c)
    return list(groups.values())


def expand_models(patterns: str | Sequence[str]) -> tuple[str, ...]:
    """Names and fnmatch patterns (comma-separated or a list) -> registered names, in the order
    given (natural sort per pattern). Unknown names: UserError with the closest names."""
    import resnet_impl

    parts = [patterns] if isinstance(patterns, str) else list(patterns)
    wanted = [p.strip() for item in parts for p in item.split(",") if p.strip()]
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
