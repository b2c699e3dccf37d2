"""create_model(name, weights=path): local files only, strict, one-line errors that name keys."""

from __future__ import annotations

import datetime

import pytest
import torch

from resnet_impl import CheckpointError, create_model

SMALL = dict(layers=(1, 1, 1, 1), num_classes=10)  # ~5M params: keeps files small and fast


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def small_state(tmp_path_factory):
    """A saved resnet18 (1 block per stage, 10 classes) state dict and its path."""
    torch.manual_seed(0)
    state = create_model("resnet18", **SMALL).state_dict()
    path = tmp_path_factory.mktemp("ckpt") / "resnet18_small.pth"
    torch.save(state, path)
    return state, path


def _assert_same(model: torch.nn.Module, state: dict) -> None:
    own = model.state_dict()
    assert own.keys() == state.keys()
    assert all(torch.equal(own[k], state[k]) for k in state)


def test_plain_state_dict_roundtrip(small_state) -> None:
    state, path = small_state
    _assert_same(create_model("resnet18", weights=path, **SMALL), state)
    _assert_same(create_model("resnet18", weights=str(path), **SMALL), state)


@pytest.mark.parametrize("key", ["state_dict", "model"])
def test_wrapped_state_dict(small_state, tmp_path, key) -> None:
    state, _ = small_state
    path = tmp_path / "wrapped.pth"
    torch.save({key: state, "epoch": 3, "arch": "resnet18"}, path)
    _assert_same(create_model("resnet18", weights=path, **SMALL), state)


def test_torchvision_checkpoint_file_loads(tmp_path) -> None:
    torchvision = pytest.importorskip("torchvision")
    theirs = torchvision.models.resnet18(weights=None, num_classes=10)
    path = tmp_path / "tv_resnet18.pth"
    torch.save(theirs.state_dict(), path)
    ours = create_model("resnet18", weights=path, num_classes=10)
    _assert_same(ours, theirs.state_dict())


def _one_line_error(weights, name: str = "resnet18", **overrides) -> CheckpointError:
    with pytest.raises(CheckpointError) as err:
        create_model(name, weights=weights, **{**SMALL, **overrides})
    assert isinstance(err.value, ValueError)
    assert "\n" not in str(err.value)
    return err.value


def test_missing_file(tmp_path) -> None:
    err = _one_line_error(tmp_path / "nope.pth")
    assert "not found" in str(err) and "nope.pth" in str(err) and "never downloads" in str(err)
    # A torchvision weights *name* is not a file either: no download is attempted.
    assert "not found" in str(_one_line_error("IMAGENET1K_V1"))


def test_garbage_file(tmp_path) -> None:
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"this is not a checkpoint \x00\x01\x02" * 10)
    assert "cannot read checkpoint" in str(_one_line_error(path))


def test_unsafe_pickle_refused(tmp_path) -> None:
    # weights_only=True: arbitrary objects are not unpickled.
    path = tmp_path / "unsafe.pth"
    torch.save({"when": datetime.datetime(2024, 1, 1)}, path)
    assert "cannot read checkpoint" in str(_one_line_error(path))


@pytest.mark.parametrize(
    "obj, words",
    [
        ([torch.zeros(1)], "not a state dict (got list"),
        (torch.zeros(3), "not a state dict (got Tensor"),
        ({}, "(empty)"),
        ({"conv1.weight": torch.zeros(1), "epoch": 3}, "non-tensor entries epoch"),
    ],
)
def test_not_a_state_dict(tmp_path, obj, words) -> None:
    path = tmp_path / "odd.pth"
    torch.save(obj, path)
    assert words in str(_one_line_error(path))


def test_mismatched_keys_are_named(small_state) -> None:
    _, path = small_state
    err = _one_line_error(path, "resnet18d")  # deep stem: conv1 is a Sequential there
    msg = str(err)
    assert "missing key(s): conv1.0.weight, conv1.1.weight, conv1.1.bias" in msg
    assert "unexpected key(s): conv1.weight" in msg
    assert "conv1.0.weight" in err.missing and "conv1.weight" in err.unexpected
    assert "more)" in msg  # long lists are cut to the first few


def test_shape_mismatch_is_named(small_state) -> None:
    _, path = small_state
    err = _one_line_error(path, num_classes=1000)
    msg = str(err)
    assert "shape mismatch" in msg and "fc.weight (10, 512) vs model (1000, 512)" in msg
    assert "num_classes" in msg  # the hint
    assert err.mismatched == ["fc.weight", "fc.bias"] and not err.missing and not err.unexpected


def test_partial_state_dict_refused(small_state, tmp_path) -> None:
    state, _ = small_state
    path = tmp_path / "partial.pth"
    torch.save({k: v for k, v in state.items() if not k.startswith("fc.")}, path)
    err = _one_line_error(path)
    assert err.missing == ["fc.weight", "fc.bias"]
