"""The backend seam: how a case's model becomes the step that is timed, in the runtime it will
be deployed with.

A :class:`Backend` turns a built eager model (on the case's device, the case's seed) into a
:class:`Built`: ``step()`` runs one batch of the case's input and returns its output (the
logits, a torch tensor, so the output check against eager fp32 is the same for every
backend), ``infer(x)`` runs any batch of that shape (the int8 check set), and ``info`` says
what the runtime built (opset, providers, how many int8 kernels...). The runner times the
build (``build_s``) and everything after it (first call, warm-up, samples, the passes, the
rounds, the row) exactly as for PyTorch: adding a backend touches nothing else.

``pytorch`` is the backend every case had before backends existed (eager, or torch.compile per
the case's compile mode), so old results keep their keys. A backend that is not installed, or
cannot run the case's device, precision, layout, compile mode or workload, gives a ``skipped``
row with the reason (:meth:`Backend.skip_reason`), never a traceback and never a download.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.core.case import Case


@dataclass
class Built:
    """A case's model as its backend runs it."""

    step: Callable[[], Any]  # one batch of the case's input -> output (torch tensor)
    infer: Callable[[Any], Any]  # any input batch of the case's shape -> logits (torch tensor)
    model: Any = None  # the torch module when there is one (memory and stage passes read it)
    info: dict[str, Any] = field(default_factory=dict)  # backend_* and int8_* columns
    keep: Any = None  # what must live as long as the step (a temporary directory, a session)
    #: run after the first call (compilation done): checks what really runs, returns columns
    #: (e.g. the int8 kernels a profiled step calls); raising makes the case an error row
    verify: Callable[[], dict[str, Any]] | None = None


class Backend:
    """One runtime. Subclasses set the class attributes and implement :meth:`build`."""

    name: str = ""
    doc: str = ""
    #: Python modules the runtime needs (checked without importing them)
    modules: tuple[str, ...] = ()
    #: pip extra of resnet-bench that installs them (pyproject.toml)
    extra: str | None = None
    precisions: tuple[str, ...] = ("fp32",)
    workloads: tuple[str, ...] = ("infer",)
    device_kinds: tuple[str, ...] = ("cpu",)
    #: layouts the runtime takes its input in (it chooses its own internal layout)
    layouts: tuple[str, ...] = ("contiguous",)

    def skip_reason(self, case: Case) -> str | None:
        """Why this backend cannot run `case` here, or None."""
        missing = [m for m in self.modules if importlib.util.find_spec(m) is None]
        if missing:
            how = f"pip install 'resnet-bench[{self.extra}]'" if self.extra else f"pip install {' '.join(missing)}"
            return f"backend {self.name} needs {', '.join(missing)}, not installed here ({how})"
        kind = case.device.split(":")[0]
        if kind not in self.device_kinds:
            return f"backend {self.name} runs on {', '.join(self.device_kinds)}, not {kind}"
        if case.workload not in self.workloads:
            return f"backend {self.name} measures {', '.join(self.workloads)} only, not {case.workload}"
        if case.precision not in self.precisions:
            return f"backend {self.name} has no {case.precision} here (it has {', '.join(self.precisions)})"
        if case.layout not in self.layouts:
            return (f"backend {self.name} takes {', '.join(self.layouts)} input and chooses its own memory layout; "
                    f"use --layouts {self.layouts[0]}")
        if case.compile != "none" and self.name != "pytorch":
            return f"compile modes are the pytorch backend's; backend {self.name} builds its own (use --compile none)"
        return None

    def build(self, model: Any, case: Case, x: Any, y: Any, *, threads: int | None, calibration: Callable[[], list],
              phase: Any = None) -> Built:
        """Build or export `model` (eager, on the device; eval for inference, train mode for a
        training case) for `case`; `x`, `y`: the case's
        input and labels; `calibration()`: the fixed seeded batches an int8 build calibrates on."""
        raise NotImplementedError


def logits(out: Any):
    """A runtime's output (numpy array, a list of them, a tensor) as a torch tensor."""
    import numpy as np
    import torch

    if isinstance(out, (list, tuple)):
        out = out[0]
    if isinstance(out, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(out))
    return out
