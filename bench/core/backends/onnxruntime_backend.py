"""The onnxruntime backend: the model exported to ONNX (``torch.onnx.export``, torch.export-based,
opset :data:`OPSET`), run by an ``InferenceSession`` with every graph optimisation, this case's
thread count, and the execution providers of the installed build for the device (CPU; CUDA,
then TensorRT before it, where that build is installed). The row records the opset and the
providers the session really uses.

int8: static QDQ quantization (``onnxruntime.quantization.quantize_static``: per-channel int8
weights, uint8 activations, calibrated on the shared seeded set, MinMax), the format ONNX
Runtime fuses into integer kernels on x86. The optimised graph the session runs is saved and
its integer ops counted (``QLinearConv``, ``ConvInteger``, ``QLinearMatMul``, ``MatMulInteger``):
a session that runs none is an error row, not an "int8" one.
"""

from __future__ import annotations

import tempfile

from bench.core.backends.base import Backend, Built, logits

OPSET = 18
INT8_OPS = ("QLinearConv", "ConvInteger", "QLinearMatMul", "MatMulInteger", "QGemm")


class OnnxRuntime(Backend):
    name = "onnxruntime"
    doc = "ONNX export + onnxruntime InferenceSession (CPU, CUDA or TensorRT execution provider); int8: static QDQ"
    modules = ("onnxruntime", "onnx", "onnxscript")
    extra = "onnx"
    precisions = ("fp32", "int8")
    device_kinds = ("cpu", "cuda")

    def build(self, model, case, x, y, *, threads, calibration, phase=None) -> Built:
        import onnxruntime as ort
        import torch

        keep = tempfile.TemporaryDirectory(prefix="resnet-bench-onnx-")
        path = f"{keep.name}/model.onnx"
        with torch.no_grad():  # the torch.export-based exporter (onnxscript), PyTorch's default since 2.9
            torch.onnx.export(model.eval(), (x,), path, input_names=["x"], output_names=["logits"],
                              opset_version=OPSET, dynamo=True, external_data=False)
        info = {"backend_info": f"onnxruntime {ort.__version__}, opset {OPSET}"}
        if case.precision == "int8":
            path = _quantize(path, keep.name, calibration)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        opts.optimized_model_filepath = f"{keep.name}/optimized.onnx"
        session = ort.InferenceSession(path, sess_options=opts, providers=_providers(ort, case.device))
        info["backend_info"] += f", providers {'+'.join(session.get_providers())}"
        if case.precision == "int8":
            info["int8_ops"] = _count_int8(f"{keep.name}/optimized.onnx")
            info["int8_how"] = "onnxruntime quantize_static, QDQ, per-channel int8 weights, uint8 activations"
            if not info["int8_ops"]:
                raise RuntimeError("the quantized ONNX session runs no integer kernel (no QLinearConv/ConvInteger)")
        feed = {"x": x.detach().cpu().numpy()}

        def step():
            return logits(session.run(None, feed))

        def infer(batch):
            return logits(session.run(None, {"x": batch.detach().cpu().contiguous().numpy()}))

        return Built(step=step, infer=infer, model=None, info=info, keep=(keep, session))


def _providers(ort, device: str) -> list[str]:
    have = ort.get_available_providers()
    if device.startswith("cuda"):
        return [p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider") if p in have]
    return ["CPUExecutionProvider"]


class _Reader:
    """onnxruntime.quantization's CalibrationDataReader over the shared seeded batches."""

    def __init__(self, batches):
        self.it = iter([{"x": b.detach().cpu().contiguous().numpy()} for b in batches])

    def get_next(self):
        return next(self.it, None)


def _quantize(path: str, work: str, calibration) -> str:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre, out = f"{work}/pre.onnx", f"{work}/int8.onnx"
    quant_pre_process(path, pre)
    reader = type("Reader", (_Reader, CalibrationDataReader), {})(calibration())
    quantize_static(pre, out, reader, quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return out


def _count_int8(path: str) -> int:
    import onnx

    graph = onnx.load(path, load_external_data=False).graph
    return sum(1 for n in graph.node if n.op_type in INT8_OPS)
