"""The tensorrt backend, on a GPU only: Torch-TensorRT (``torch_tensorrt.compile`` with the
dynamo frontend) where it is installed for this torch. (ONNX Runtime's TensorRT execution
provider is the onnxruntime backend on CUDA, where that build has it.) fp16 and fp32; int8
through TensorRT needs its own calibrator and is not built here: such a case is skipped with
that reason."""

from __future__ import annotations

from bench.core.backends.base import Backend, Built


class TensorRT(Backend):
    name = "tensorrt"
    doc = "Torch-TensorRT on CUDA (dynamo frontend)"
    modules = ("torch_tensorrt",)
    extra = "tensorrt"
    precisions = ("fp32", "fp16")
    device_kinds = ("cuda",)

    def build(self, model, case, x, y, *, threads, calibration, phase=None) -> Built:
        import torch
        import torch_tensorrt

        dtype = torch.float16 if case.precision == "fp16" else torch.float32
        with torch.no_grad():
            trt = torch_tensorrt.compile(model.eval(), ir="dynamo", inputs=[x], enabled_precisions={dtype})

        def step():
            with torch.no_grad():
                return trt(x)

        def infer(batch):
            with torch.no_grad():
                return trt(batch)

        return Built(step=step, infer=infer, model=None,
                     info={"backend_info": f"torch_tensorrt {torch_tensorrt.__version__}"}, keep=trt)
