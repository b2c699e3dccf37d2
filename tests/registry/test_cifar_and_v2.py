"""The variants the source documents teach: He et al.'s CIFAR-10 ResNets, the common "ResNet-18
for CIFAR-10", pre-activation (v2), and timm's other depths. Golden values come from the papers
(He et al. 2015 Table 6), from closed-form MAC counts, from timm's models and from torchvision's
(training: the same gradients)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import resnet_impl
from bench.cli import main
from resnet_impl import count_params, create_model, get_spec

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# He et al. 2015, Table 6 ("# params" of the CIFAR-10 ResNets, option A).
HE_TABLE_6 = {"resnet20": 0.27, "resnet32": 0.46, "resnet44": 0.66, "resnet56": 0.85, "resnet110": 1.7}
CIFAR_N = {"resnet20": 3, "resnet32": 5, "resnet44": 7, "resnet56": 9, "resnet110": 18}


@pytest.mark.parametrize("name", list(HE_TABLE_6))
def test_cifar_resnets_match_he_et_al_table_6(name):
    digits = 1 if name == "resnet110" else 2
    assert round(count_params(name) / 1e6, digits) == HE_TABLE_6[name]
    spec = get_spec(name)
    n = CIFAR_N[name]
    assert spec.depth == 6 * n + 2 and spec.layers == (n, n, n) and spec.stage_widths == (16, 32, 64)
    assert spec.num_classes == 10 and spec.natural_input_size == 32 and spec.total_stride == 4


def _basic_net_macs(size: int, stem_width: int, layers, widths, num_classes: int, conv_shortcut: bool) -> int:
    """Closed form for a CIFAR-stem net of basic blocks: 3x3 convs k*k*Cin*Cout per output pixel."""
    h, c = size, stem_width
    macs = h * h * c * 3 * 9  # stem, stride 1
    for i, (n, w) in enumerate(zip(layers, widths)):
        if i > 0:
            h //= 2
        macs += h * h * w * c * 9 + (2 * n - 1) * h * h * w * w * 9  # first block's conv1, then the rest
        if conv_shortcut and (i > 0 or c != w):
            macs += h * h * w * c  # option B: a 1x1 conv
        c = w
    return macs + c * num_classes


@pytest.mark.parametrize("name", ["resnet20", "resnet56", "resnet110"])
def test_cifar_macs_closed_form(name):
    from bench.core.profile import profile_name

    n = CIFAR_N[name]
    prof = profile_name(name, 32)
    assert prof.macs == _basic_net_macs(32, 16, (n, n, n), (16, 32, 64), 10, conv_shortcut=False)
    assert prof.counters_agree and prof.image_size == 32


def test_resnet18_for_cifar10_is_the_common_one():
    from bench.core.profile import profile_name

    assert count_params("resnet18_cifar") == 11_173_962  # the widely published count (torchvision blocks, 10 classes)
    prof = profile_name("resnet18_cifar", 32)
    assert prof.macs == _basic_net_macs(32, 64, (2, 2, 2, 2), (64, 128, 256, 512), 10, conv_shortcut=True)
    assert round(prof.macs / 1e9, 2) == 0.56
    m = create_model("resnet18_cifar")
    assert m.conv1.kernel_size == (3, 3) and m.conv1.stride == (1, 1) and isinstance(m.maxpool, nn.Identity)


def test_option_a_shortcut_has_no_parameters_and_pads_with_zeros():
    m = create_model("resnet20").eval()
    sc = m.layer2[0].downsample
    assert not list(sc.parameters())
    x = torch.randn(1, 16, 32, 32)
    y = sc(x)
    assert y.shape == (1, 32, 16, 16)
    assert torch.equal(y[:, :16], x[:, :, ::2, ::2]) and not y[:, 16:].any()


def test_preact_block_order():
    m = create_model("resnetv2_50")
    b = m.stages[1].blocks[0]
    assert [n for n, _ in b.named_children()] == ["downsample", "norm1", "conv1", "norm2", "conv2", "norm3", "conv3"]
    assert b.conv2.stride == (2, 2) and not isinstance(b.downsample, nn.Sequential)  # a bare 1x1 conv, no BN
    assert get_spec("resnetv2_50").version == "v2" and isinstance(m.norm, nn.BatchNorm2d)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_training_matches_torchvision_exactly(name):
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    ref = torchvision.models.get_model(name, weights=None).train()
    ours = create_model(name).train()
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    a, b = ours(x), ref(x)
    a.logsumexp(1).sum().backward()
    b.logsumexp(1).sum().backward()
    assert torch.equal(a, b)
    for (na, pa), (_, pb) in zip(ours.named_parameters(), ref.named_parameters()):
        assert torch.equal(pa.grad, pb.grad), na


@pytest.mark.parametrize("overrides,needle", [
    (dict(shortcut="pad"), r"option A\) is for basic blocks"),
    (dict(num_classes=0), "num_classes"),
    (dict(preact=True, shortcut="avg"), "preact=True takes shortcut"),
    (dict(preact=True, stem="deep"), "preact=True supports stem"),
    (dict(widths=(16, 32)), "widths"),
    (dict(input_size=16), "input_size"),
])
def test_bad_specs_are_refused(overrides, needle):
    with pytest.raises(ValueError, match=needle):
        get_spec("resnet50").replace(**overrides)


def test_option_a_with_a_deep_stem_is_refused():
    with pytest.raises(ValueError, match="option A"):
        get_spec("resnet20").replace(stem="deep")


@pytest.mark.parametrize("argv,needle", [
    (["--models", "resnet50", "--set", "shortcut=pad"], "option A"),
    (["--models", "resnet20", "--set", "num_classes=0"], "num_classes"),
    (["--models", "resnetv2_50", "--set", "shortcut=avg"], "preact"),
    (["--models", "resnet50", "--image-sizes", "16"], "total stride (32 px)"),
])
def test_bad_variants_on_the_command_line(tmp_path, capsys, argv, needle):
    assert main(["run", *argv, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and not (tmp_path / "r").exists()


def test_profile_counts_each_at_its_natural_size(capsys):
    assert main(["profile", "resnet20", "resnet18_cifar", "resnet18", "--format", "json"]) == 0
    rows = {r["model"]: r for r in json.loads(capsys.readouterr().out)}
    assert (rows["resnet20"]["image_size"], rows["resnet18_cifar"]["image_size"], rows["resnet18"]["image_size"]) == (
        32, 32, 224)
    assert main(["profile", "resnet20", "--image-size", "8", "--format", "json"]) == 0  # total stride 4
    assert json.loads(capsys.readouterr().out)[0]["image_size"] == 8


def test_list_teaches_every_new_name(capsys):
    assert main(["list", "resnet20", "resnet*_cifar", "resnetv2*", "resnet26*", "resnet200d", "--format", "json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert len(rows) == 1 + 3 + 2 + 2 + 1
    assert "option-A" in rows["resnet20"]["description"] and "pre-activation" in rows["resnetv2_50"]["description"]
    assert "CIFAR-10" in rows["resnet18_cifar"]["description"]


@pytest.mark.slow
def test_the_cifar_preset_runs_on_cpu(tmp_path, capsys):
    from bench.core.presets import CIFAR_MODELS

    out = tmp_path / "cifar"
    assert main(["run", "--preset", "cifar", "--layouts", "contiguous", "--precisions", "fp32", "--compile", "none",
                 "--no-isolate", "--threads", "1", "--rounds", "1", "--no-stages", "--max-time", "0.2",
                 "--min-samples", "3", "--max-warmup", "0.5", "--quiet", "--format", "json", "--out", str(out)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in rows] == list(CIFAR_MODELS)
    assert {r["image_size"] for r in rows} == {32} and {r["status"] for r in rows} == {"ok"}


def test_the_cifar_preset_names_its_models_at_32_px():
    from bench.core.case import Sweep
    from bench.core.presets import CIFAR_MODELS, preset

    p = preset("cifar", "cpu")
    assert p["models"] == CIFAR_MODELS and p["image_sizes"] == ()
    sweep = Sweep(p["models"], p["batch_sizes"], p["image_sizes"], p["modes"], p["workloads"], "cpu")
    assert {c.image_size for c in sweep.cases()} == {32}
    assert resnet_impl.get_spec("resnet50_cifar").total_stride == 8
