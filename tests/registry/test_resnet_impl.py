"""resnet_impl: every registered name builds and trains; structure and counts match the references.

Golden values are torchvision's published metadata (``num_params``, ``_ops`` = GMACs) from
/work/shared/REFERENCE.md, and timm's models for the timm-named variants. MACs are counted here
independently with a closed-form forward-hook counter (conv and linear only, as torchvision's
``_ops``), on the meta device so 224 px costs nothing.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import resnet_impl
from resnet_impl import (
    BasicBlock,
    Bottleneck,
    ResNet,
    ResNetV2,
    count_params,
    create_model,
    get_spec,
    list_models,
)

# torchvision Weights enums (IMAGENET1K_V1), 1000 classes, 224 px: (num_params, GMACs "_ops").
TORCHVISION_REFERENCE = {
    "resnet18": (11_689_512, 1.814),
    "resnet34": (21_797_672, 3.664),
    "resnet50": (25_557_032, 4.089),
    "resnet101": (44_549_160, 7.801),
    "resnet152": (60_192_808, 11.514),
    "resnext50_32x4d": (25_028_904, 4.230),
    "resnext101_32x8d": (88_791_336, 16.414),
    "resnext101_64x4d": (83_455_272, 15.460),
    "wide_resnet50_2": (68_883_240, 11.398),
    "wide_resnet101_2": (126_886_696, 22.753),
}
TIMM_NAMES = [
    "resnet18d", "resnet34d",
    "resnet50c", "resnet50d", "resnet50s",
    "resnet101c", "resnet101d", "resnet101s",
    "resnet152c", "resnet152d", "resnet152s",
    "resnext50d_32x4d",
    "resnet26", "resnet26d", "resnet200d",
    "resnetv2_50", "resnetv2_101",
]  # fmt: skip
V1_PAIRS = [("resnet50", "resnet50_v1"), ("resnet101", "resnet101_v1"), ("resnet152", "resnet152_v1")]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def count_macs(model: nn.Module, px: int = 224) -> int:
    """Multiply-accumulates of one image: sum over Conv2d of out_elems * in_ch/groups * kh * kw,
    over Linear of out_elems * in_features. Runs on the meta device (shapes only)."""
    total = 0

    def hook(m: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        per_image = out.numel() // out.shape[0]
        if isinstance(m, nn.Conv2d):
            total += per_image * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        else:
            total += per_image * m.in_features

    handles = [
        m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    try:
        with torch.no_grad():
            model(torch.empty(1, 3, px, px, device="meta"))
    finally:
        for h in handles:
            h.remove()
    return total


def meta_model(name: str, **overrides) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, **overrides)


# --------------------------------------------------------------------------- every name runs
@pytest.mark.parametrize("name", list_models())
def test_every_name_forward_backward_32px(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=10)
    assert isinstance(model, ResNetV2 if get_spec(name).preact else ResNet)
    x = torch.randn(2, 3, 32, 32)
    out = model(x)
    assert out.shape == (2, 10)
    out.logsumexp(dim=1).mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads)
    assert all(torch.isfinite(g).all() for g in (grads[0], grads[-1]))


@pytest.mark.parametrize("name", ["resnet18", "resnet50d", "resnext50_32x4d", "resnet50_v1"])
def test_output_shape_any_size(name: str) -> None:
    model = create_model(name, num_classes=7).eval()
    with torch.no_grad():
        for px in (32, 33, 64, 97):
            assert model(torch.randn(1, 3, px, px)).shape == (1, 7), px
        assert model(torch.randn(1, 3, 33, 61)).shape == (1, 7)  # non-square


@pytest.mark.parametrize("name", list_models())
def test_every_name_has_description_and_consistent_spec(name: str) -> None:
    spec = get_spec(name)
    assert spec.name == name
    assert spec.description and "\n" not in spec.description
    assert spec.num_classes == (10 if spec.stem == "cifar" else 1000) and spec.zero_init_residual is False
    assert str(spec.depth) in name  # resnet50d -> 50, wide_resnet101_2 -> 101


# --------------------------------------------------------------------------- torchvision
@pytest.mark.parametrize("name", list(TORCHVISION_REFERENCE))
def test_params_equal_torchvision_published(name: str) -> None:
    assert count_params(name) == TORCHVISION_REFERENCE[name][0]


@pytest.mark.parametrize("name", list(TORCHVISION_REFERENCE))
def test_macs_equal_torchvision_published(name: str) -> None:
    gmacs = count_macs(meta_model(name)) / 1e9
    assert round(gmacs, 3) == TORCHVISION_REFERENCE[name][1]


@pytest.mark.parametrize("name", list(TORCHVISION_REFERENCE))
def test_torchvision_state_dict_loads_strict(name: str) -> None:
    torchvision = pytest.importorskip("torchvision")
    with torch.device("meta"):  # keys and shapes only: free even for wide_resnet101_2
        theirs = torchvision.models.get_model(name, weights=None)
        ours = create_model(name)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [
        (k, v.shape) for k, v in theirs.state_dict().items()
    ]


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "resnext50_32x4d"])
def test_torchvision_outputs_match(name: str) -> None:
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    theirs = torchvision.models.get_model(name, weights=None, num_classes=10).eval()
    ours = create_model(name, num_classes=10).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- timm
@pytest.mark.parametrize("name", TIMM_NAMES)
def test_timm_variant_params_and_state_dict(name: str) -> None:
    timm = pytest.importorskip("timm")
    with torch.device("meta"):
        theirs = timm.create_model(name, pretrained=False)
        ours = create_model(name)
    assert count_params(name) == sum(p.numel() for p in theirs.parameters())
    ours.load_state_dict(theirs.state_dict(), strict=True)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in theirs.state_dict().items()
    }


@pytest.mark.parametrize("name", ["resnet18d", "resnet50d", "resnet26", "resnet26d", "resnetv2_50"])
def test_timm_outputs_match(name: str) -> None:
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    theirs = timm.create_model(name, pretrained=False, num_classes=10).eval()
    ours = create_model(name, num_classes=10).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- v1 vs v1.5
@pytest.mark.parametrize("v15, v1", V1_PAIRS)
def test_v1_same_params_fewer_macs(v15: str, v1: str) -> None:
    assert get_spec(v15).version == "v1.5" and get_spec(v1).version == "v1"
    assert count_params(v1) == count_params(v15)
    macs_v1, macs_v15 = count_macs(meta_model(v1)), count_macs(meta_model(v15))
    assert macs_v1 < macs_v15
    # The 3x3 runs at the strided resolution in v1: ~5.7% fewer MACs for ResNet-50.
    if v15 == "resnet50":
        assert 0.93 < macs_v1 / macs_v15 < 0.96


def test_stride_placement() -> None:
    v1, v15 = meta_model("resnet50_v1"), meta_model("resnet50")
    for layer in ("layer2", "layer3", "layer4"):
        b1, b15 = getattr(v1, layer)[0], getattr(v15, layer)[0]
        assert (b1.conv1.stride, b1.conv2.stride) == ((2, 2), (1, 1))
        assert (b15.conv1.stride, b15.conv2.stride) == ((1, 1), (2, 2))
        assert b1.downsample[0].stride == b15.downsample[0].stride == (2, 2)
    # Non-downsampling blocks never stride.
    assert all(m.stride == (1, 1) for m in v1.layer2[1].modules() if isinstance(m, nn.Conv2d))
    # BasicBlock: stride on its first 3x3 whatever stride_at says.
    for stride_at in ("1x1", "3x3"):
        block = meta_model("resnet18", stride_at=stride_at).layer2[0]
        assert isinstance(block, BasicBlock)
        assert (block.conv1.stride, block.conv2.stride) == ((2, 2), (1, 1))


# --------------------------------------------------------------------------- stems
@pytest.mark.parametrize(
    "stem, widths", [("classic", (64,)), ("deep", (32, 32, 64)), ("deep_base", (64, 64, 128))]
)
def test_stem_widths_and_output_stride(stem: str, widths: tuple[int, ...]) -> None:
    spec = get_spec("resnet50").replace(stem=stem)
    assert spec.stem_channels == widths and spec.inplanes == widths[-1]
    model = create_model("resnet18", stem=stem, layers=(1, 1, 1, 1)).eval()
    convs = [m for m in model.conv1.modules() if isinstance(m, nn.Conv2d)]
    assert tuple(c.out_channels for c in convs) == widths
    assert convs[0].stride == (2, 2) and all(c.stride == (1, 1) for c in convs[1:])
    assert model.layer1[0].conv1.in_channels == widths[-1]
    with torch.no_grad():
        x = torch.randn(1, 3, 64, 64)
        stem_out = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    assert stem_out.shape == (1, widths[-1], 16, 16)  # output stride 4


def test_deep_stem_module_layout_matches_timm() -> None:
    model = meta_model("resnet50d")
    assert isinstance(model.conv1, nn.Sequential) and len(model.conv1) == 7
    kinds = [type(m).__name__ for m in model.conv1]
    assert kinds == ["Conv2d", "BatchNorm2d", "ReLU", "Conv2d", "BatchNorm2d", "ReLU", "Conv2d"]
    assert model.bn1.num_features == 64
    classic = meta_model("resnet50")
    assert isinstance(classic.conv1, nn.Conv2d) and classic.conv1.kernel_size == (7, 7)
    assert isinstance(classic.maxpool, nn.MaxPool2d)


def test_stem_width_default_follows_stem() -> None:
    # Overriding the stem of a classic model takes the new stem's default width.
    spec = get_spec("resnet101").replace(stem="deep")
    assert spec.stem_width is None and spec.stem_channels == (32, 32, 64)
    assert get_spec("resnet101").replace(stem="deep_base").stem_channels == (64, 64, 128)
    assert get_spec("resnet50d").replace(stem_width=48).stem_channels == (48, 48, 96)
    model = meta_model("resnet101", stem="deep", stride_at="1x1")
    assert model.conv1[6].out_channels == 64 and model.layer2[0].conv1.stride == (2, 2)


# --------------------------------------------------------------------------- shortcuts
def test_avg_shortcut_layout() -> None:
    model = meta_model("resnet50d")
    assert isinstance(model.layer1[0].downsample[0], nn.Identity)  # stride 1: no pooling
    for layer in (model.layer2, model.layer3, model.layer4):
        pool, conv, bn = layer[0].downsample
        assert isinstance(pool, nn.AvgPool2d)
        assert (pool.kernel_size, pool.stride, pool.ceil_mode, pool.count_include_pad) == (2, 2, True, False)
        assert conv.stride == (1, 1) and conv.kernel_size == (1, 1)
        assert isinstance(bn, nn.BatchNorm2d)
        assert all(b.downsample is None for b in layer[1:])
    keys = [k for k in model.state_dict() if k.startswith("layer2.0.downsample")]
    assert {k.split(".")[3] for k in keys} == {"1", "2"}


def test_conv_shortcut_layout() -> None:
    model = meta_model("resnet50")
    conv, bn = model.layer2[0].downsample
    assert conv.stride == (2, 2) and conv.kernel_size == (1, 1) and isinstance(bn, nn.BatchNorm2d)
    assert model.layer1[0].downsample[0].stride == (1, 1)  # 64 -> 256 channels only
    assert meta_model("resnet18").layer1[0].downsample is None  # 64 -> 64: identity shortcut


def test_avg_shortcut_odd_size_forward() -> None:
    # ceil_mode keeps the shortcut and the strided 3x3 in step at odd sizes.
    model = create_model("resnet18d", num_classes=3, layers=(1, 1, 1, 1)).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 97, 97)).shape == (1, 3)


# --------------------------------------------------------------------------- widths, init
def test_bottleneck_inner_width() -> None:
    assert meta_model("resnet50").layer1[0].conv2.out_channels == 64
    rx = meta_model("resnext50_32x4d").layer1[0].conv2
    assert (rx.out_channels, rx.groups) == (128, 32)
    wide = meta_model("wide_resnet50_2").layer4[0].conv2
    assert (wide.out_channels, wide.groups) == (1024, 1)
    assert isinstance(meta_model("resnext101_64x4d").layer1[0], Bottleneck)
    assert meta_model("resnext101_64x4d").layer1[0].conv2.groups == 64


def test_initialisation_and_zero_init_residual() -> None:
    torch.manual_seed(0)
    model = create_model("resnet18", layers=(1, 1, 1, 1))
    w = model.layer3[0].conv2.weight  # 256 -> 256, 3x3: fan_out = 256 * 9
    assert abs(w.std().item() - math.sqrt(2.0 / (256 * 9))) < 0.002
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
    assert all(b.bn2.weight.abs().sum() > 0 for b in (model.layer1[0], model.layer4[0]))

    zero = create_model("resnet50", zero_init_residual=True, layers=(1, 1, 1, 1))
    blocks = [m for m in zero.modules() if isinstance(m, Bottleneck)]
    assert len(blocks) == 4
    assert all(torch.all(b.bn3.weight == 0) and torch.all(b.bn2.weight == 1) for b in blocks)
    zero18 = create_model("resnet18", zero_init_residual=True, layers=(1, 1, 1, 1))
    assert all(torch.all(m.bn2.weight == 0) for m in zero18.modules() if isinstance(m, BasicBlock))


def test_module_names_as_torchvision() -> None:
    names = [n for n, _ in meta_model("resnet18").named_children()]
    assert names == ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc"]


# --------------------------------------------------------------------------- spec properties
@pytest.mark.parametrize(
    "name, depth, version, stem_channels, inplanes, width_label",
    [
        ("resnet18", 18, None, (64,), 64, "1x64d"),
        ("resnet34d", 34, None, (32, 32, 64), 64, "1x64d"),
        ("resnet50", 50, "v1.5", (64,), 64, "1x64d"),
        ("resnet50_v1", 50, "v1", (64,), 64, "1x64d"),
        ("resnet101s", 101, "v1.5", (64, 64, 128), 128, "1x64d"),
        ("resnet152c", 152, "v1.5", (32, 32, 64), 64, "1x64d"),
        ("resnext50_32x4d", 50, "v1.5", (64,), 64, "32x4d"),
        ("resnext101_64x4d", 101, "v1.5", (64,), 64, "64x4d"),
        ("wide_resnet50_2", 50, "v1.5", (64,), 64, "1x128d"),
    ],
)
def test_spec_derived_properties(name, depth, version, stem_channels, inplanes, width_label) -> None:
    spec = get_spec(name)
    assert (spec.depth, spec.version, spec.stem_channels, spec.inplanes, spec.width_label) == (
        depth, version, stem_channels, inplanes, width_label,
    )  # fmt: skip


def test_public_api_exports() -> None:
    for attr in (
        "ResNetSpec", "ResNet", "BasicBlock", "Bottleneck", "register_model", "list_models",
        "get_spec", "create_model", "count_params", "CheckpointError",
    ):  # fmt: skip
        assert hasattr(resnet_impl, attr), attr
    assert resnet_impl.BLOCKS == ("basic", "bottleneck")
    assert resnet_impl.STRIDE_AT == ("1x1", "3x3")
    assert resnet_impl.STEMS == ("classic", "deep", "deep_base", "cifar")
    assert resnet_impl.SHORTCUTS == ("conv", "avg", "pad")
    assert issubclass(resnet_impl.CheckpointError, ValueError)
    for letter in ("v1.5", "deep", "avg", "64-64-128"):
        assert letter in (ResNet.__doc__ or "")
