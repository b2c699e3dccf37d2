"""bench.profile against closed-form counts and torchvision's published metadata.

Expected values are computed here from the formulas or copied from REFERENCE.md
(torchvision's Weights metadata), never from the code under test.
"""

from __future__ import annotations

import logging
import math
import warnings

import pytest
import torch
import torchvision
from torch import nn

from bench.core.profile import STAGES, Profile, profile_model, profile_name

# torchvision Weights metadata (REFERENCE.md): `_ops` is conv+linear GMACs at 224 px.
TORCHVISION_GMACS = {"resnet18": 1.814, "resnet50": 4.089}
TORCHVISION_PARAMS = {"resnet18": 11_689_512, "resnet50": 25_557_032}


def make_resnet(name: str) -> nn.Module:
    """resnet_impl's model when it exists, else torchvision's (same module names)."""
    try:
        import resnet_impl

        return resnet_impl.create_model(name)
    except (ImportError, AttributeError):
        return getattr(torchvision.models, name)(weights=None)


@pytest.fixture(scope="module")
def resnet50_224() -> tuple[nn.Module, Profile]:
    model = make_resnet("resnet50")
    return model, profile_model(model, 224, name="resnet50")


def conv_out(size: int, k: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - k) // stride + 1


# --- closed form ------------------------------------------------------------------------------

CONVS = {
    # id: (in_ch, out_ch, kernel, stride, padding, groups)
    "3x3": (3, 16, 3, 1, 1, 1),
    "strided": (3, 8, 3, 2, 1, 1),
    "grouped": (8, 16, 3, 1, 1, 4),
    "1x1": (16, 32, 1, 1, 0, 1),
}


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("conv_id", list(CONVS))
def test_single_conv_closed_form(conv_id: str, batch: int) -> None:
    cin, cout, k, s, p, g = CONVS[conv_id]
    size = 33  # odd on purpose: the strided output rounds down
    conv = nn.Conv2d(cin, cout, k, stride=s, padding=p, groups=g, bias=False)
    out_elems = batch * cout * conv_out(size, k, s, p) ** 2
    expected = out_elems * (cin // g) * k * k

    prof = profile_model(conv, size, batch_size=batch)
    assert prof.macs == expected
    assert prof.flops == 2 * expected
    assert prof.flop_counter_flops == 2 * expected and prof.counters_agree
    assert prof.counter_note == ""
    assert prof.params == cout * (cin // g) * k * k
    assert prof.activations == out_elems  # fvcore: output elements of the conv


def test_linear_closed_form() -> None:
    batch, size, out = 2, 32, 10
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * size * size, out))
    expected = batch * (3 * size * size) * out

    prof = profile_model(model, size, batch_size=batch)
    assert prof.macs == prof.macs_all == expected
    assert prof.flops == 2 * expected == prof.flop_counter_flops
    assert prof.counters_agree
    assert prof.params == 3 * size * size * out + out
    assert prof.activations == batch * out


# --- torchvision metadata ---------------------------------------------------------------------


def test_resnet50_matches_torchvision_metadata(resnet50_224) -> None:
    model, prof = resnet50_224
    assert round(prof.macs / 1e9, 3) == TORCHVISION_GMACS["resnet50"]
    assert prof.params == sum(p.numel() for p in model.parameters())
    assert prof.params == TORCHVISION_PARAMS["resnet50"]
    assert prof.flops == 2 * prof.macs == prof.flop_counter_flops  # 8.178 GFLOPs
    assert prof.counters_agree and prof.counter_note == ""
    # fvcore's own total adds batch-norm and avg-pool: "4.111 G" in REFERENCE.md, which
    # truncates 4,111,512,576 (BN 22,227,968 + avg-pool 100,352 on top of conv+linear)
    assert prof.macs_all == prof.macs + 22_227_968 + 100_352
    assert 4.111 <= prof.macs_all / 1e9 < 4.112
    # residual adds (in-place or not, depending on the implementation) and max-pool are skipped
    skipped = dict(prof.unsupported_ops)
    assert skipped.pop("aten::max_pool2d") == 1
    assert sum(skipped.values()) == 16 and set(skipped) <= {"aten::add", "aten::add_"}


def test_resnet18_matches_torchvision_metadata() -> None:
    model = make_resnet("resnet18")
    prof = profile_model(model, 224, name="resnet18")
    assert round(prof.macs / 1e9, 3) == TORCHVISION_GMACS["resnet18"]
    assert prof.params == TORCHVISION_PARAMS["resnet18"]
    assert prof.counters_agree


def test_stages_sum_to_totals(resnet50_224) -> None:
    model, prof = resnet50_224
    assert tuple(prof.params_by_stage) == tuple(prof.macs_by_stage) == STAGES
    assert sum(prof.params_by_stage.values()) == prof.params
    assert sum(prof.macs_by_stage.values()) == prof.macs
    # independent per-stage values from the modules themselves
    assert prof.params_by_stage["layer3"] == sum(p.numel() for p in model.layer3.parameters())
    assert prof.params_by_stage["head"] == 2048 * 1000 + 1000
    assert prof.macs_by_stage["head"] == 2048 * 1000
    assert prof.macs_by_stage["stem"] == 64 * 112 * 112 * 3 * 7 * 7  # conv1 only
    assert all(v > 0 for v in prof.macs_by_stage.values())


def test_as_row(resnet50_224) -> None:
    _, prof = resnet50_224
    row = prof.as_row()
    for col in ("params", "macs", "flops", "macs_all", "activations", "flop_counter_flops",
                "counters_agree"):
        assert row[col] == getattr(prof, col)
    for stage in STAGES:
        assert row[f"params_{stage}"] == prof.params_by_stage[stage]
        assert row[f"macs_{stage}"] == prof.macs_by_stage[stage]


# --- scaling, state, warnings, errors ---------------------------------------------------------


def test_batch_doubles_and_area_scales() -> None:
    model = torchvision.models.resnet18(weights=None)
    base = profile_model(model, 64)
    double = profile_model(model, 64, batch_size=2)
    big = profile_model(model, 128)
    assert double.macs == 2 * base.macs
    assert double.params == base.params
    assert double.activations == 2 * base.activations
    # every conv output doubles per side (64 and 128 are multiples of 32); fc stays the same
    fc_macs = 512 * 1000
    assert big.macs - fc_macs == 4 * (base.macs - fc_macs)
    assert math.isclose(big.macs / base.macs, 4, rel_tol=0.01)


def test_caller_model_untouched_and_quiet(caplog) -> None:
    model = torchvision.models.resnet18(weights=None).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        with torch.inference_mode():  # the old FlopCounterMode bug reported 0 in here
            prof = profile_model(model, 32)
    assert prof.counters_agree and prof.flop_counter_flops > 0
    assert model.training and all(m.training for m in model.modules())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN stats not updated
    assert [str(w.message) for w in caught] == []
    assert [r.getMessage() for r in caplog.records] == []


class _Baddbmm(nn.Module):
    """FlopCounterMode counts aten.baddbmm; fvcore has no handle for it."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(1, 32 * 32, 4))
        self.b = nn.Parameter(torch.zeros(3, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.flatten(2)  # (B, 3, 1024)
        return torch.baddbmm(self.b, y, self.w.expand(y.shape[0], -1, -1))


def test_counter_disagreement_is_reported_not_raised() -> None:
    prof = profile_model(_Baddbmm(), 32, batch_size=2)
    assert prof.macs == 0
    assert prof.flop_counter_flops == 2 * (2 * 3 * 1024 * 4)
    assert not prof.counters_agree
    assert "baddbmm" in prof.counter_note
    assert prof.unsupported_ops.get("aten::baddbmm") == 1


@pytest.mark.parametrize("size", [16, 31, 0, -224, 224.0, "224", True, None])
def test_bad_image_size(size) -> None:
    with pytest.raises(ValueError, match="image_size must be an int >= 32"):
        profile_model(nn.Conv2d(3, 4, 3), size)


@pytest.mark.parametrize("batch", [0, -1, 1.5])
def test_bad_batch_size(batch) -> None:
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        profile_model(nn.Conv2d(3, 4, 3), 32, batch_size=batch)


# --- stage assignment and the name-based helper -----------------------------------------------


class _TinyDeepStem(nn.Module):
    """Deep stem as an nn.Sequential conv1, an unnamed-by-torchvision child, and a root param."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.Conv2d(8, 8, 3, 1, 1))
        self.layer1 = nn.Conv2d(8, 8, 3, 1, 1)
        self.extra = nn.Conv2d(8, 8, 1)  # not a known name: joins layer1, registered before it
        self.layer2 = nn.Conv2d(8, 16, 3, 2, 1)
        self.layer3 = nn.Conv2d(16, 16, 3, 2, 1)
        self.layer4 = nn.Conv2d(16, 16, 3, 2, 1)
        self.fc = nn.Linear(16, 5)
        self.scale = nn.Parameter(torch.ones(1))  # owned by the root: counted in head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer1(self.conv1(x))
        x = self.layer4(self.layer3(self.layer2(self.extra(x))))
        return self.fc(x.mean((2, 3))) * self.scale


def test_stage_assignment_deep_stem_and_unknown_children() -> None:
    prof = profile_model(_TinyDeepStem(), 32)
    # spatial side per stage: 16 (stem, layer1), 8, 4, 2
    assert prof.macs_by_stage == {
        "stem": 16 * 16 * 8 * 3 * 9 + 16 * 16 * 8 * 8 * 9,
        "layer1": 16 * 16 * 8 * 8 * 9 + 16 * 16 * 8 * 8,
        "layer2": 8 * 8 * 16 * 8 * 9,
        "layer3": 4 * 4 * 16 * 16 * 9,
        "layer4": 2 * 2 * 16 * 16 * 9,
        "head": 16 * 5,
    }
    assert prof.params_by_stage["stem"] == (8 * 3 * 9 + 8) + (8 * 8 * 9 + 8)
    assert prof.params_by_stage["layer1"] == (8 * 8 * 9 + 8) + (8 * 8 + 8)
    assert prof.params_by_stage["head"] == 16 * 5 + 5 + 1
    assert prof.counters_agree


def test_profile_name_uses_resnet_impl() -> None:
    resnet_impl = pytest.importorskip("resnet_impl")
    if not hasattr(resnet_impl, "create_model"):
        pytest.skip("resnet_impl.create_model does not exist yet")
    prof = profile_name("resnet18", 64, batch_size=2)
    reference = profile_model(torchvision.models.resnet18(weights=None), 64, batch_size=2)
    assert prof.name == "resnet18" and prof.image_size == 64 and prof.batch_size == 2
    assert prof.as_row() == reference.as_row()
