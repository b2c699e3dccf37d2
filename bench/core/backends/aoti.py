"""The aoti backend: ``torch.export`` then AOTInductor, the way a model ships without Python
compilation at load time (``torch._inductor.aoti_compile_and_package`` writes a ``.pt2``
package, ``aoti_load_package`` loads it back as a callable). Part of torch: CPU and CUDA. With
inductor freezing for inference (oneDNN weight prepacking on CPU, as the pytorch backend's
compile modes use). int8: PT2E (bench.core.backends.int8), exported again, then the same."""

from __future__ import annotations

import tempfile

from bench.core.backends.base import Backend, Built


class AOTInductor(Backend):
    name = "aoti"
    doc = "torch.export + AOTInductor package (aoti_compile_and_package / aoti_load_package)"
    precisions = ("fp32", "bf16", "fp16", "int8")
    device_kinds = ("cpu", "cuda")
    layouts = ("contiguous", "channels_last")

    def skip_reason(self, case):
        why = super().skip_reason(case)
        if why is None and case.precision == "int8":
            import importlib.util

            if importlib.util.find_spec("torchao") is None:
                return "int8 on the aoti backend needs torchao (pip install 'resnet-bench[int8]')"
        if why is None and case.precision in ("bf16", "fp16") and not case.device.startswith("cuda"):
            return f"{case.precision} on the aoti backend is measured on CUDA here (autocast is not exported on CPU)"
        return why

    def build(self, model, case, x, y, *, threads, calibration, phase=None) -> Built:
        import torch

        from bench.core import modes

        fmt = getattr(torch, modes.layout(case.layout).memory_format)
        model = model.eval().to(memory_format=fmt)
        info = {}
        if case.precision == "int8":
            from bench.core.backends.int8 import pt2e_quantize

            model, info = pt2e_quantize(model, x, calibration)
            if not info["int8_ops"]:
                raise RuntimeError("the PT2E quantizer quantized nothing (PyTorch #160095): no int8 kernel would run")
        elif case.precision in ("bf16", "fp16"):
            model = model.to(getattr(torch, {"bf16": "bfloat16", "fp16": "float16"}[case.precision]))
            x = x.to(next(model.parameters()).dtype)
        keep = tempfile.TemporaryDirectory(prefix="resnet-bench-aoti-")
        with torch.no_grad():
            exported = torch.export.export(model, (x,))
            path = torch._inductor.aoti_compile_and_package(
                exported, package_path=f"{keep.name}/model.pt2", inductor_configs={"freezing": True})
        runner = torch._inductor.aoti_load_package(path)
        dtype = x.dtype

        def step():
            with torch.no_grad():
                return runner(x)

        def infer(batch):
            with torch.no_grad():
                return runner(batch.to(dtype).contiguous(memory_format=fmt))

        info["backend_info"] = f"AOTInductor package, torch {torch.__version__}"
        verify = None
        if case.precision == "int8":
            from bench.core.backends.int8 import kernels_in_aoti_package

            verify = lambda: kernels_in_aoti_package(path)  # noqa: E731
        return Built(step=step, infer=infer, model=None, info=info, keep=keep, verify=verify)
