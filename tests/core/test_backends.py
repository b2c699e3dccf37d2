"""The backend seam (bench.core.backends): a toy backend added in one place is measured, checked
against eager fp32 and pooled into rows like any case; a runtime that is not installed or
cannot run a case gives a skipped row with the reason; the real runtimes, where installed,
build resnet18 and run it (fp32 within fp32's tolerance; int8 with its kernels counted)."""

from __future__ import annotations

import importlib.util
import json

import pytest

from _cli import FAST
from bench.cli import main
from bench.core import backends
from bench.core.backends.base import Backend, Built
from bench.core.case import Case

TINY = ["run", "--models", "resnet18", "--batch-sizes", "1", "--image-sizes", "32", "--threads", "1", "--device",
        "cpu", "--layouts", "contiguous", "--precisions", "fp32", "--compile", "none", *FAST]


@pytest.fixture
def toy_backend():
    class Doubled(Backend):
        """Runs the eager model twice per step: slower, same output."""

        name = "toy"

        def build(self, model, case, x, y, *, threads, calibration, phase=None):
            import torch

            def step():
                with torch.no_grad():
                    model(x)
                    return model(x)

            return Built(step=step, infer=lambda b: model(b), model=model, info={"backend_info": "toy twice"})

    backends.register_backend("toy", Doubled)
    yield "toy"
    backends.unregister_backend("toy")


def test_a_toy_backend_is_one_registration(tmp_path, toy_backend, capsys):
    assert main([*TINY, "--backends", "pytorch,toy", "--no-isolate", "--out", str(tmp_path / "r"),
                 "--format", "json"]) == 0
    rows = {r["backend"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"pytorch", "toy"}
    toy = rows["toy"]
    assert toy["status"] == "ok" and toy["output_ok"] is True and toy["backend_info"] == "toy twice"
    assert toy["build_s"] >= 0 and 0.3 < toy["speedup_vs_eager"] < 0.8  # twice the work
    assert Case.from_row(toy).key().endswith("|toy") and "|pytorch" not in Case.from_row(rows["pytorch"]).key()


def test_the_default_backend_keeps_old_keys():
    c = Case("resnet18", "infer", 1, 32, "contiguous", "fp32", "none", "cpu")
    assert c.backend == "pytorch" and c.key() == "resnet18|infer|1|32|contiguous|fp32|none|cpu"
    assert Case.from_dict({**c.as_dict(), "backend": None}) == c  # a row from before backends
    ort = Case("resnet18", "infer", 1, 32, "contiguous", "int8", "none", "cpu", backend="onnxruntime")
    assert ort.reference() == c and not ort.is_reference and "onnxruntime" in ort.label()


@pytest.mark.parametrize("case,needle", [
    (dict(backend="nosuch"), "unknown backend 'nosuch'"),
    (dict(backend="onnxruntime", compile="default"), "compile modes are the pytorch backend's"),
    (dict(backend="onnxruntime", layout="channels_last"), "chooses its own memory layout"),
    (dict(backend="onnxruntime", workload="train"), "measures infer only"),
    (dict(backend="tensorrt"), "tensorrt"),
    (dict(precision="int8"), "int8 needs a compile mode"),
])
def test_what_a_backend_cannot_run_is_skipped_with_the_reason(case, needle):
    from bench.core import modes

    fields = dict(model="resnet18", workload="infer", batch_size=1, image_size=32, layout="contiguous",
                  precision="fp32", compile="none", device="cpu")
    fields.update(case)
    why = modes.skip_reason(Case(**fields))
    assert why and needle in why, why


def test_a_missing_runtime_is_a_skipped_row_never_a_traceback(tmp_path, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "openvino" else real(n, *a))
    assert main([*TINY, "--backends", "openvino", "--no-isolate", "--out", str(tmp_path / "r"),
                 "--format", "json"]) == 0
    rows = {r["backend"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["openvino"]["status"] == "skipped" and "pip install 'resnet-bench[openvino]'" in rows["openvino"]["error"]
    assert rows["pytorch"]["status"] == "ok"  # the reference is always measured


@pytest.mark.slow
@pytest.mark.parametrize("backend,module", [("onnxruntime", "onnxruntime"), ("openvino", "openvino"), ("aoti", "torch")])
def test_a_real_runtime_builds_and_matches_eager_fp32(tmp_path, capsys, backend, module):
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (pip install 'resnet-bench[{backends.get(backend).extra}]')")
    layout = "channels_last" if backend == "aoti" else "contiguous"
    assert main([*TINY, "--layouts", f"contiguous,{layout}", "--backends", f"pytorch,{backend}", "--out",
                 str(tmp_path / "r"), "--format", "json"]) == 0
    rows = [r for r in json.loads(capsys.readouterr().out) if r["backend"] == backend]
    assert rows and all(r["status"] in ("ok", "skipped") for r in rows), rows
    ok = [r for r in rows if r["status"] == "ok"]
    assert ok and all(r["output_ok"] is True and r["build_s"] > 0 and r["backend_info"] for r in ok)


@pytest.mark.slow
@pytest.mark.parametrize("backend,module", [("onnxruntime", "onnxruntime"), ("openvino", "nncf"),
                                            ("pytorch", "torchao"), ("aoti", "torchao")])
def test_int8_runs_int8_kernels_and_reports_its_fidelity(tmp_path, capsys, backend, module):
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")
    layout, comp = {"pytorch": ("channels_last", "default"), "aoti": ("channels_last", "none")}.get(
        backend, ("contiguous", "none"))
    args = [a for a in TINY]
    args[args.index("--layouts") + 1] = layout
    args[args.index("--precisions") + 1] = "int8"
    args[args.index("--compile") + 1] = comp
    assert main([*args, "--backends", backend, "--out", str(tmp_path / "r"), "--format", "json"]) == 0
    (row,) = [r for r in json.loads(capsys.readouterr().out) if r["precision"] == "int8"]
    assert row["status"] == "ok", row.get("error")
    assert row["int8_ops"] > 0 and row["int8_how"]
    if backend in ("pytorch", "aoti"):
        assert row["int8_kernels"] > 0  # a profiled step after compilation; aoti: the package's wrapper
    assert 0 <= row["top1_agreement"] <= 1 and row["check_images"] == 8 and row["output_cosine"] > 0.9


def test_an_int8_graph_that_runs_no_int8_kernel_is_an_error():
    import torch

    from bench.core.backends import int8

    conv = torch.nn.Conv2d(3, 4, 3)
    with pytest.raises(RuntimeError, match="calls no int8 kernel"):
        int8.kernels_run(lambda: conv(torch.zeros(1, 3, 8, 8)))  # an fp32 step: nothing to count


def test_an_aoti_package_is_checked_in_its_wrapper(tmp_path):
    """AOTInductor calls oneDNN's int8 kernels through its C shim, which the profiler does not
    see: the package's generated wrapper is where the calls are counted."""
    import zipfile

    from bench.core.backends import int8

    def package(name: str, text: str):
        path = tmp_path / name
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("model/data/aotinductor/model/abc.wrapper.cpp", text)
            z.writestr("model/data/aotinductor/model/abc.kernel.cpp", "aoti_torch_cpu__qconv_pointwise_tensor(")
        return str(path)

    calls = ("AOTI_TORCH_ERROR_CODE_CHECK(aoti_torch_cpu__qconv_pointwise_tensor(buf0, x_scale));\n"
             "AOTI_TORCH_ERROR_CODE_CHECK(aoti_torch_cpu__qconv2d_pointwise_binary_tensor(buf1));\n"
             "AOTI_TORCH_ERROR_CODE_CHECK(aoti_torch_cpu__qlinear_pointwise_tensor(buf2));\n"
             "// qconv_prepack_ in a comment is no call\n")
    assert int8.kernels_in_aoti_package(package("int8.pt2", calls)) == {"int8_kernels": 3}
    with pytest.raises(RuntimeError, match="calls no int8 kernel"):
        int8.kernels_in_aoti_package(package("fp32.pt2", "aoti_torch_cpu_convolution(buf0);"))
