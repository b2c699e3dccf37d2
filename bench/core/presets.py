"""Presets: named sweeps of the modes that pay off on a device.

``quick`` shows v1 vs v1.5 (resnet50_v1), the three stems (resnet50 classic, resnet50c deep,
resnet50s deep_base), the avg-pool shortcut (resnet50d) and ResNeXt; ``full`` is the whole
registry in the same modes; ``deploy`` measures resnet50, resnet50d and resnext50_32x4d at
batch 1 and 8 the ways they ship: every backend (PyTorch eager and inductor, AOTInductor, ONNX
Runtime, OpenVINO) in fp32 and int8. On a CPU without native bf16 (AVX512-BF16 or AMX) bf16 autocast is
several times slower than fp32, so the CPU presets add it only where the CPU has it.

On CUDA the quick preset measures eager fp32 (the reference), eager bf16 channels_last, and
fp16 and bf16 channels_last under ``reduce-overhead`` (inductor + CUDA graphs: the best mode of
the first H100 runs, see README); ``full`` adds TF32, eager fp16, bf16 with compile ``default``
and fp16 ``max-autotune`` (long autotuning compiles: worth it only where the search pays, so
not in quick).
"""

from __future__ import annotations

from bench.core.case import REFERENCE_MODE
from bench.errors import UserError

PRESETS = ("quick", "full", "cifar", "deploy")
QUICK_MODELS = ("resnet50", "resnet50_v1", "resnet50c", "resnet50d", "resnet50s", "resnext50_32x4d")
# He et al.'s CIFAR-10 ResNets by depth, then torchvision's blocks with the CIFAR stem.
CIFAR_MODELS = ("resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet18_cifar", "resnet34_cifar",
                "resnet50_cifar")
PRESET_MODES = {
    "cpu": (REFERENCE_MODE, ("channels_last", "fp32", "none"),
            ("channels_last", "fp32", "default")),
    "cuda": (REFERENCE_MODE, ("channels_last", "bf16", "none"),
             ("channels_last", "fp16", "reduce-overhead"), ("channels_last", "bf16", "reduce-overhead")),
}
#: Modes the full preset adds on a device (on top of PRESET_MODES).
FULL_EXTRA_MODES = {
    "cuda": (("contiguous", "tf32", "none"), ("channels_last", "fp16", "none"), ("channels_last", "bf16", "default"),
             ("channels_last", "fp16", "max-autotune")),
}
PRESET_BATCH_SIZES = {"cpu": (1,), "cuda": (1, 256)}
#: Seconds of rounds a preset measures for at most (`run --budget`); a sweep named by its flags
#: gets DEFAULT_BUDGET_S. The quick preset's fits `make bench` in about 6 minutes on a 2-core VM.
PRESET_BUDGET_S = {"quick": 300.0, "full": 3600.0, "cifar": 240.0, "deploy": 2400.0}
DEFAULT_BUDGET_S = 600.0
CPU_BF16_MODE = ("channels_last", "bf16", "none")
#: The deploy preset: each variant the way it may ship, in every runtime (bench.core.backends),
#: fp32 and int8 (and bf16 where the CPU has it), against eager fp32: (layout, precision,
#: compile, backend).
DEPLOY_MODELS = ("resnet50", "resnet50d", "resnext50_32x4d")
DEPLOY_MODES = {
    "cpu": (REFERENCE_MODE + ("pytorch",), ("channels_last", "fp32", "default", "pytorch"),
            ("channels_last", "int8", "default", "pytorch"), ("channels_last", "fp32", "none", "aoti"),
            ("channels_last", "int8", "none", "aoti"), ("contiguous", "fp32", "none", "onnxruntime"),
            ("contiguous", "int8", "none", "onnxruntime"), ("contiguous", "fp32", "none", "openvino"),
            ("contiguous", "int8", "none", "openvino")),
    "cuda": (REFERENCE_MODE + ("pytorch",), ("channels_last", "fp16", "reduce-overhead", "pytorch"),
             ("channels_last", "fp16", "none", "aoti"), ("contiguous", "fp32", "none", "onnxruntime"),
             ("contiguous", "fp16", "none", "tensorrt")),
}
DEPLOY_BF16 = (("channels_last", "bf16", "default", "pytorch"), ("contiguous", "bf16", "none", "openvino"))


def preset(name: str, device: str) -> dict:
    """Axis values of a preset for a resolved device ("cpu" or "cuda")."""
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; valid: {', '.join(PRESETS)}")
    modes = PRESET_MODES[device]
    if name == "full":
        modes = modes + FULL_EXTRA_MODES.get(device, ())
    native_bf16 = False
    if device == "cpu":
        from bench.core.host import cpu_has_native_bf16

        native_bf16 = cpu_has_native_bf16()
        if native_bf16:
            modes = modes + (CPU_BF16_MODE,)
    if name == "deploy":
        modes = DEPLOY_MODES[device] + (DEPLOY_BF16 if native_bf16 else ())
    return {
        "models": {"full": ("*",), "quick": QUICK_MODELS, "cifar": CIFAR_MODELS, "deploy": DEPLOY_MODELS}[name],
        "batch_sizes": (1, 8) if name == "deploy" and device == "cpu" else PRESET_BATCH_SIZES[device],
        "image_sizes": (),  # each model at its natural size: 224 px, 32 px for the CIFAR variants
        "modes": modes,
        "workloads": ("infer",),
    }
