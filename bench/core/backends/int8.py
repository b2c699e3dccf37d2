"""int8 the PyTorch way (PT2E, through torchao) and what every int8 case is checked with.

PT2E (``torch.export`` -> ``prepare_pt2e`` with the X86 inductor quantizer -> calibration ->
``convert_pt2e``) gives a graph of quantize/dequantize pairs around the convolutions and the
linear layer; inductor (or AOTInductor) then fuses each pair and its op into an int8 kernel.
Two known traps are checked, not assumed: a quantizer that quantizes nothing (PyTorch #160095)
and an int8 graph run eagerly, 68x slower than fp32 (#144434: the reference ops, never fused).
So :func:`count_int8` counts the quantized ops in the converted graph (an int8 case with none
is an error row, never a fast "int8" that is not), and the pytorch backend refuses int8 without
a compile mode.

Calibration uses a small fixed seeded set of inputs made here, the same for every backend
(``CALIBRATION_BATCHES``); fidelity is measured on another seeded set (``CHECK_BATCHES``):
:func:`fidelity` compares the int8 logits with eager fp32's on the same weights: cosine
similarity, and top-1 / top-5 agreement. With random weights this measures numerical
fidelity, not accuracy (`--weights local.pth` for a real checkpoint).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

CALIBRATION_BATCHES = 8
CHECK_BATCHES = 8
CALIBRATION_SEED = 1000
CHECK_SEED = 2000
#: An int8 case's output passes when its logits' cosine similarity to eager fp32's is at least this.
MIN_COSINE = 0.99


def pt2e_quantize(model: Any, x: Any, calibration: Callable[[], list]) -> tuple[Any, dict[str, Any]]:
    """`model` (eval, on its device) quantized with PT2E for x86 inductor, calibrated on
    `calibration()`; (the converted graph module, info)."""
    import torch
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq

    quantizer = xiq.X86InductorQuantizer()
    quantizer.set_global(xiq.get_default_x86_inductor_quantization_config())
    with torch.no_grad():
        # functional ATen (add_ -> add, relu_ -> relu): the quantizer matches conv-add-relu only there
        exported = torch.export.export(model, (x,)).run_decompositions({}).module()
        _one_partition_per_relu_call(exported)
        prepared = prepare_pt2e(exported, quantizer)
        for batch in calibration():
            prepared(batch)
        converted = convert_pt2e(prepared)
    n = count_int8(converted)
    return converted, {"int8_ops": n, "int8_how": "PT2E X86InductorQuantizer (torchao), static, per-channel weights"}


def _one_partition_per_relu_call(gm: Any) -> None:
    """A block calls its one ``nn.ReLU`` twice (after bn1 and after the residual add, as
    torchvision's do); torch.export records both calls under one source, so the quantizer sees
    one ReLU "partition" with two outputs and gives up ("Input partition has more than one
    output node", torchao 0.18 with torch 2.14, torchvision's resnet18 alike). Each call's
    source is renamed after its own node, so each is its own partition: metadata only, the
    graph and its numbers do not change."""
    import torch

    for node in gm.graph.nodes:
        modules = node.meta.get("nn_module_stack")
        if node.op != "call_function" or not modules:
            continue
        _, cls = list(modules.values())[-1]  # the innermost module: what the source matcher reads
        if cls is torch.nn.ReLU or cls == "torch.nn.modules.activation.ReLU":
            node.meta["source_fn_stack"] = [(node.name, torch.nn.ReLU)]


def count_int8(graph_module: Any) -> int:
    """Quantized ops in a PT2E graph: its dequantize nodes (one per quantized tensor a conv or
    linear reads); 0 = the quantizer quantized nothing."""
    n = 0
    for node in graph_module.graph.nodes:
        if node.op == "call_function" and "dequantize" in str(node.target):
            n += 1
    return n


#: Profiler event names of the integer kernels inductor (and AOTInductor) call on x86 (oneDNN).
KERNEL_MARKS = ("qconv", "qlinear")


def kernels_run(step: Callable[[], Any]) -> dict[str, Any]:
    """Run `step` once under the profiler and count the int8 kernel calls in it (events named
    ``*qconv*``/``*qlinear*``): the check that the compiled graph really runs int8 (a graph of
    quantize/dequantize pairs left unfused runs fp32 kernels between reference ops, #144434).
    Raises when there are none."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    names = [e.name for e in prof.events()]
    n = sum(1 for name in names if any(k in name.lower() for k in KERNEL_MARKS))
    if not n:
        raise RuntimeError("the compiled int8 graph calls no int8 kernel (no qconv/qlinear in a profiled step)")
    return {"int8_kernels": n}


def kernels_in_aoti_package(path: str) -> dict[str, Any]:
    """The int8 kernel calls an AOTInductor package makes, counted in its generated C++ wrapper
    (``aoti_torch_cpu__qconv*(`` / ``__qlinear*(`` call sites). The profiler cannot count them:
    the wrapper calls oneDNN's int8 kernels through AOTInductor's C shim, which records no
    profiler event (measured: a resnet18 int8 package showed only quantized::max_pool2d and
    copies under the profiler, and 21 qconv/qlinear call sites, one per conv and the fc).
    Raises when there are none."""
    import re
    import zipfile

    with zipfile.ZipFile(path) as z:
        sources = [z.read(n).decode(errors="replace") for n in z.namelist() if n.endswith("wrapper.cpp")]
    n = sum(len(re.findall(r"\baoti_torch_\w+?__q(?:conv|linear)\w*\(", src)) for src in sources)
    if not n:
        raise RuntimeError("the AOTInductor int8 package calls no int8 kernel (no qconv/qlinear in its wrapper)")
    return {"int8_kernels": n}


def fidelity(infer: Callable[[Any], Any], reference: Callable[[Any], Any], batches: list) -> dict[str, Any]:
    """Logits of `infer` against `reference` over `batches`: cosine similarity (all logits
    flattened), top-1 and top-5 agreement (the reference's top-1 among the candidate's top-k)."""
    import torch

    cand = torch.cat([infer(b).detach().float().cpu().reshape(b.shape[0], -1) for b in batches])
    ref = torch.cat([reference(b).detach().float().cpu().reshape(b.shape[0], -1) for b in batches])
    cos = torch.nn.functional.cosine_similarity(cand.flatten(), ref.flatten(), dim=0).item()
    top1 = ref.argmax(dim=1)
    k = min(5, ref.shape[1])
    agree1 = (cand.argmax(dim=1) == top1).float().mean().item()
    agree5 = (cand.topk(k, dim=1).indices == top1[:, None]).any(dim=1).float().mean().item()
    return {"output_cosine": cos, "top1_agreement": agree1, "top5_agreement": agree5,
            "check_images": int(ref.shape[0])}
