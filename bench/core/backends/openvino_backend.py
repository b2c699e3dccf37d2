"""The openvino backend: the torch model converted by ``openvino.convert_model`` (from the
module itself, with the case's input as the example), compiled for the CPU with the latency
hint and this case's thread count. bf16 is OpenVINO's inference precision hint, where the CPU
has native bf16 (else OpenVINO would silently run fp32: the row is skipped instead). int8:
NNCF post-training quantization (``nncf.quantize``) calibrated on the shared seeded set; the
compiled model's runtime graph is read back and its layers that run in int8 (runtime precision
I8/U8) counted: none is an error row.
"""

from __future__ import annotations

from bench.core.backends.base import Backend, Built, logits


class OpenVino(Backend):
    name = "openvino"
    doc = "openvino.convert_model + compile_model on CPU; bf16 hint; int8: NNCF"
    modules = ("openvino",)
    extra = "openvino"
    precisions = ("fp32", "bf16", "int8")

    def skip_reason(self, case):
        why = super().skip_reason(case)
        if why is None and case.precision == "bf16":
            from bench.core.host import cpu_has_native_bf16

            if not cpu_has_native_bf16():
                return "OpenVINO runs bf16 only on CPUs with native bf16 (AVX512-BF16 or AMX); this one has none"
        if why is None and case.precision == "int8":
            import importlib.util

            if importlib.util.find_spec("nncf") is None:
                return "int8 on the openvino backend needs nncf (pip install 'resnet-bench[openvino]')"
        return why

    def build(self, model, case, x, y, *, threads, calibration, phase=None) -> Built:
        import openvino as ov
        import torch

        with torch.no_grad():
            ov_model = ov.convert_model(model.eval(), example_input=x)
        info = {"backend_info": f"openvino {ov.__version__}, CPU, latency hint"}
        if case.precision == "int8":
            import nncf

            batches = [b.detach().cpu().numpy() for b in calibration()]
            ov_model = nncf.quantize(ov_model, nncf.Dataset(batches), subset_size=len(batches))
            info["int8_how"] = f"NNCF {nncf.__version__} post-training quantization (default preset)"
        config = {"PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        config["INFERENCE_PRECISION_HINT"] = "bf16" if case.precision == "bf16" else "f32"
        compiled = ov.Core().compile_model(ov_model, "CPU", config)
        request = compiled.create_infer_request()
        if case.precision == "int8":
            info["int8_ops"] = _count_int8(compiled)
            if not info["int8_ops"]:
                raise RuntimeError("the compiled OpenVINO model runs no layer in int8")
        feed = x.detach().cpu().numpy()

        def step():
            return logits(request.infer([feed])[compiled.output(0)])

        def infer(batch):
            return logits(request.infer([batch.detach().cpu().contiguous().numpy()])[compiled.output(0)])

        return Built(step=step, infer=infer, model=None, info=info, keep=(compiled, request))


def _count_int8(compiled) -> int:
    """Convolutions and fully connected layers of the compiled model's runtime graph that run in
    int8 (runtime precision I8/U8; e.g. primitive ``jit_avx2_I8``)."""
    n = 0
    for op in compiled.get_runtime_model().get_ops():
        rt = op.get_rt_info()
        if "runtimePrecision" not in rt or "layerType" not in rt:
            continue
        prec, kind = rt["runtimePrecision"].astype(str).lower(), rt["layerType"].astype(str)
        if prec in ("i8", "u8") and kind in ("Convolution", "FullyConnected"):
            n += 1
    return n
