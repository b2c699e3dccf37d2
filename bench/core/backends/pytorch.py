"""The pytorch backend: what every case was before backends existed. Eager, or ``torch.compile``
(inductor) per the case's compile mode (bench.core.modes.prepare); int8 through PT2E and
inductor (bench.core.backends.int8), only with a compile mode (eager int8 runs the reference
quantize/dequantize ops, 68x slower than fp32: PyTorch #144434)."""

from __future__ import annotations

from bench.core.backends.base import Backend, Built
from bench.core.case import Case


class PyTorch(Backend):
    name = "pytorch"
    doc = "eager or torch.compile (inductor); int8 via PT2E + inductor"
    precisions = ("fp32", "tf32", "bf16", "fp16", "int8")
    workloads = ("infer", "train")
    device_kinds = ("cpu", "cuda", "mps")
    layouts = ("contiguous", "channels_last")

    def skip_reason(self, case: Case) -> str | None:
        if case.precision == "int8":
            if case.workload != "infer":
                return "int8 (PT2E) is for inference"
            if case.compile == "none":
                return ("int8 needs a compile mode on the pytorch backend: eager runs PT2E's reference "
                        "quantize/dequantize ops (PyTorch #144434); use --compile default")
            if self._missing_torchao():
                return "int8 on the pytorch backend needs torchao (pip install 'resnet-bench[int8]')"
        return None  # everything else: the modes' own device checks (bench.core.modes.skip_reason)

    @staticmethod
    def _missing_torchao() -> bool:
        import importlib.util

        return importlib.util.find_spec("torchao") is None

    def build(self, model, case, x, y, *, threads, calibration, phase=None) -> Built:
        from bench.core import modes

        if case.precision != "int8":
            p = modes.prepare(model, case, x, y, phase=phase)
            return Built(step=p.step, infer=_infer(p.model, case), model=p.model)
        return self._int8(model, case, x, calibration)

    def _int8(self, model, case, x, calibration) -> Built:
        import torch

        from bench.core import modes
        from bench.core.backends.int8 import pt2e_quantize

        fmt = getattr(torch, modes.layout(case.layout).memory_format)
        model = model.eval().to(memory_format=fmt)
        converted, info = pt2e_quantize(model, x, calibration)
        if not info["int8_ops"]:
            raise RuntimeError("the PT2E quantizer quantized nothing (PyTorch #160095): no int8 kernel would run")
        comp = modes.compile_mode(case.compile)
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True  # restored after the case (bench.execute.torch_settings)
        runner = torch.compile(converted, mode=comp.torch_mode)

        def step():
            with torch.no_grad():
                return runner(x)

        def infer(batch):
            with torch.no_grad():
                return runner(batch.contiguous(memory_format=fmt))

        from bench.core.backends.int8 import kernels_run

        return Built(step=step, infer=infer, model=None, info=info, verify=lambda: kernels_run(step))


def _infer(model, case: Case):
    """Logits of the prepared eager/compiled module for any batch of the case's shape."""
    import torch

    from bench.core import modes

    fmt = getattr(torch, modes.layout(case.layout).memory_format)

    def infer(batch):
        with torch.no_grad(), modes.autocast(case):
            return model(batch.contiguous(memory_format=fmt))

    return infer
