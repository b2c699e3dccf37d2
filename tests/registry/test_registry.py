"""resnet_impl registry: strict names, glob listing, overrides, factories, plugins."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

import resnet_impl
from resnet_impl import (
    ResNet,
    ResNetSpec,
    count_params,
    create_model,
    get_spec,
    list_models,
    register_model,
    unregister_model,
)

REPO = Path(__file__).resolve().parents[2]
_ids = itertools.count()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def registered():
    """Register test-only specs under unique names; remove them after the test."""
    names: list[str] = []

    def _register(spec: ResNetSpec, factory=None) -> ResNetSpec:
        register_model(spec, factory)
        names.append(spec.name)
        return spec

    def unique(prefix: str) -> str:
        return f"test_{prefix}_{os.getpid()}_{next(_ids)}"

    _register.unique = unique  # type: ignore[attr-defined]
    yield _register
    for name in names:
        if name in list_models(name):
            unregister_model(name)


TINY = dict(block="basic", layers=(1, 1, 1, 1), num_classes=4)


# --------------------------------------------------------------------------- listing
def test_list_models_natural_sort() -> None:
    plain = list_models("resnet[0-9]*", exclude=["*_v1", "*[cds]", "*_cifar"])
    assert plain == ["resnet18", "resnet20", "resnet26", "resnet32", "resnet34", "resnet44", "resnet50", "resnet56",
                     "resnet101", "resnet110", "resnet152"]
    everything = list_models()
    assert everything.index("resnet50") < everything.index("resnet101") < everything.index("resnet152")
    assert len(everything) == len(set(everything)) >= 25


def test_list_models_patterns_and_excludes() -> None:
    assert list_models("resnet50*") == ["resnet50", "resnet50_cifar", "resnet50_v1", "resnet50c", "resnet50d",
                                        "resnet50s"]
    assert list_models("resnet50*", exclude="resnet50?") == ["resnet50", "resnet50_cifar", "resnet50_v1"]
    assert list_models(["wide_*", "resnext101*"]) == [
        "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2",
    ]  # fmt: skip
    assert list_models("*_v1") == ["resnet50_v1", "resnet101_v1", "resnet152_v1"]
    assert list_models("no_such_*") == []
    assert list_models(("resnet18", "resnet18d"), exclude=("*d",)) == ["resnet18"]


def test_expected_names_registered() -> None:
    expected = {
        "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
        "resnet50_v1", "resnet101_v1", "resnet152_v1",
        "resnet18d", "resnet34d", "resnet50c", "resnet50d", "resnet50s", "resnet101c",
        "resnet101d", "resnet101s", "resnet152c", "resnet152d", "resnet152s",
        "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d", "resnext50d_32x4d",
        "wide_resnet50_2", "wide_resnet101_2",
        "resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
        "resnet18_cifar", "resnet34_cifar", "resnet50_cifar",
        "resnetv2_50", "resnetv2_101", "resnet26", "resnet26d", "resnet200d",
    }  # fmt: skip
    assert expected <= set(list_models())


# --------------------------------------------------------------------------- lookup
@pytest.mark.parametrize("bad, close", [("resnet05", "resnet50"), ("resnt50d", "resnet50d"), ("ResNet18", "resnet18")])
def test_unknown_name_suggests_close_names(bad: str, close: str) -> None:
    with pytest.raises(ValueError, match="unknown model") as err:
        get_spec(bad)
    assert close in str(err.value)
    with pytest.raises(ValueError, match=close):
        create_model(bad)
    with pytest.raises(ValueError, match=close):
        count_params(bad)


def test_unknown_name_suggests_at_most_three() -> None:
    with pytest.raises(ValueError) as err:
        get_spec("resnet1")
    suggestions = str(err.value).split("did you mean:")[1].split("?")[0]
    assert 1 <= len(suggestions.split(",")) <= 3


# --------------------------------------------------------------------------- registration
def test_duplicate_registration_refused(registered) -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_model(get_spec("resnet50"))
    spec = registered(ResNetSpec(registered.unique("dup"), **TINY))
    with pytest.raises(ValueError, match="already registered"):
        register_model(spec.replace(num_classes=9))
    assert get_spec(spec.name).num_classes == 4  # the first registration stands


def test_register_and_unregister(registered) -> None:
    spec = registered(ResNetSpec(registered.unique("tiny"), description="test", **TINY))
    assert list_models(spec.name) == [spec.name]
    assert get_spec(spec.name) is spec
    model = create_model(spec.name)
    assert isinstance(model, ResNet) and model.fc.out_features == 4
    unregister_model(spec.name)
    assert list_models(spec.name) == []
    with pytest.raises(ValueError, match="unknown model"):
        unregister_model(spec.name)


def test_register_model_rejects_non_spec() -> None:
    with pytest.raises(TypeError):
        register_model({"name": "x"})  # type: ignore[arg-type]


def test_factory_hook_extra_op_gets_overridden_spec(registered) -> None:
    seen: list[ResNetSpec] = []

    class WithExtraOp(nn.Module):
        def __init__(self, spec: ResNetSpec) -> None:
            super().__init__()
            self.body = ResNet(spec)
            self.scale = nn.Parameter(torch.ones(1))  # the extra op: 1 more parameter

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x) * self.scale

    def factory(spec: ResNetSpec) -> nn.Module:
        seen.append(spec)
        return WithExtraOp(spec)

    spec = registered(ResNetSpec(registered.unique("extra"), **TINY), factory)
    model = create_model(spec.name, num_classes=6)
    assert isinstance(model, WithExtraOp) and seen[-1].num_classes == 6
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 6)
    # count_params builds through the factory too (on meta), for a name or its spec.
    plain = count_params(spec.replace(name="not_registered_anywhere"))
    assert count_params(spec.name) == count_params(spec) == plain + 1
    assert count_params(spec.name, num_classes=6) == plain + 1 + 2 * 513  # 512 features + bias


def test_factory_that_crashes_propagates(registered) -> None:
    def crash(spec: ResNetSpec) -> nn.Module:
        raise RuntimeError(f"boom from {spec.name}")

    spec = registered(ResNetSpec(registered.unique("crash"), **TINY), crash)
    with pytest.raises(RuntimeError, match="boom"):
        create_model(spec.name)


# --------------------------------------------------------------------------- overrides
def test_create_model_overrides() -> None:
    with torch.device("meta"):
        model = create_model("resnet101", stride_at="1x1", stem="deep")
    assert model.spec.version == "v1" and model.spec.stem_channels == (32, 32, 64)
    assert model.spec.layers == (3, 4, 23, 3) and model.spec.name == "resnet101"
    assert isinstance(model.conv1, nn.Sequential)
    assert model.layer2[0].conv1.stride == (2, 2) and model.layer2[0].conv2.stride == (1, 1)
    assert get_spec("resnet101").stride_at == "3x3"  # the registry is untouched
    # name is positional-only: name= is an ordinary override.
    assert create_model("resnet18", name="my_resnet18", device="meta").spec.name == "my_resnet18"


@pytest.mark.parametrize("alias, value", [("v1", "1x1"), ("v1.5", "3x3"), ("1x1", "1x1")])
def test_stride_at_aliases(alias: str, value: str) -> None:
    assert get_spec("resnet50").replace(stride_at=alias).stride_at == value
    assert ResNetSpec("x", "bottleneck", (1, 1, 1, 1), stride_at=alias).stride_at == value


def test_unknown_override_field_lists_valid_fields() -> None:
    with pytest.raises(ValueError, match="unknown ResNetSpec field") as err:
        create_model("resnet50", stem_type="deep")
    msg = str(err.value)
    assert "stem_type" in msg
    for field in ("name", "block", "layers", "stride_at", "stem", "stem_width", "shortcut",
                  "groups", "width_per_group", "num_classes", "zero_init_residual", "description"):
        assert field in msg
    with pytest.raises(ValueError, match="unknown ResNetSpec field"):
        count_params("resnet50", pretrained=True)


@pytest.mark.parametrize(
    "overrides, valid",
    [
        (dict(stem="deeep"), "'classic', 'deep', 'deep_base', 'cifar'"),
        (dict(stride_at="2x2"), "'1x1', '3x3'"),
        (dict(shortcut="pool"), "'conv', 'avg', 'pad'"),
        (dict(block="resnet"), "'basic', 'bottleneck'"),
        (dict(layers=(3, 4, 6, 3, 3, 3, 3)), "tuple of 1 to 6 positive ints"),
        (dict(layers=(3, 0, 6, 3)), "tuple of 1 to 6 positive ints"),
        (dict(layers="3463"), "tuple of 1 to 6 positive ints"),
        (dict(groups=0), "positive int"),
        (dict(width_per_group=-4), "positive int"),
        (dict(num_classes=0), "positive int"),
        (dict(num_classes=True), "positive int"),
        (dict(num_classes=10.0), "positive int"),
        (dict(stem_width=0), "positive int"),
        (dict(zero_init_residual="yes"), "True, False"),
        (dict(name=""), "non-empty"),
    ],
)
def test_bad_override_value_lists_valid_values(overrides: dict, valid: str) -> None:
    key = next(iter(overrides))
    with pytest.raises(ValueError, match=f"invalid {key}=") as err:
        get_spec("resnet50").replace(**overrides)
    assert valid in str(err.value)
    with pytest.raises(ValueError, match=f"invalid {key}="):
        create_model("resnet50", **overrides)


def test_basic_block_rejects_groups_and_width() -> None:
    for bad in (dict(groups=32), dict(width_per_group=128)):
        with pytest.raises(ValueError, match="block='basic' supports only groups=1"):
            get_spec("resnet18").replace(**bad)
    # The same numbers are fine on a bottleneck.
    assert get_spec("resnet18").replace(block="bottleneck", groups=32, width_per_group=4).width_label == "32x4d"


def test_spec_validates_on_construction_and_is_frozen() -> None:
    with pytest.raises(ValueError, match="invalid stem="):
        ResNetSpec("x", "bottleneck", (3, 4, 6, 3), stem="tiered")
    spec = ResNetSpec("x", "bottleneck", [3, 4, 6, 3])  # a list is normalised to a tuple
    assert spec.layers == (3, 4, 6, 3)
    assert hash(spec) == hash(ResNetSpec("x", "bottleneck", (3, 4, 6, 3)))
    with pytest.raises(AttributeError):
        spec.stem = "deep"  # type: ignore[misc]


def test_create_model_device_argument() -> None:
    model = create_model("resnet18", device="meta", layers=(1, 1, 1, 1))
    assert next(model.parameters()).device.type == "meta"


# --------------------------------------------------------------------------- count_params
def test_count_params_meta_matches_real_model() -> None:
    spec = get_spec("resnet50d").replace(layers=(1, 1, 1, 1), num_classes=10)
    real = ResNet(spec)
    assert count_params(spec) == sum(p.numel() for p in real.parameters())
    assert count_params("resnet50", num_classes=10) == 25_557_032 - 990 * 2049
    assert isinstance(count_params("wide_resnet101_2"), int)


# --------------------------------------------------------------------------- plugins
PLUGIN_SOURCE = """
from resnet_impl import ResNet, ResNetSpec, register_model

class Doubled(ResNet):
    def forward(self, x):
        return 2 * super().forward(x)

register_model(ResNetSpec("{name}", "basic", (1, 1, 1, 1), num_classes=3,
                          description="test plugin model"), factory=Doubled)
"""


def _write_plugin(tmp_path: Path, module: str, model_name: str) -> None:
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(PLUGIN_SOURCE.format(name=model_name)))


def test_plugin_env_var_in_process(tmp_path, monkeypatch) -> None:
    tag = f"{os.getpid()}_{next(_ids)}"
    module, model_name = f"rb_plugin_{tag}", f"test_plugin_{tag}"
    _write_plugin(tmp_path, module, model_name)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(resnet_impl.PLUGINS_ENV, f" {module} , ")
    try:
        assert list_models("test_plugin_*") == [model_name]
        assert type(create_model(model_name)).__name__ == "Doubled"
        assert list_models("test_plugin_*") == [model_name]  # imported once, not re-registered
    finally:
        if list_models(model_name):
            unregister_model(model_name)
        sys.modules.pop(module, None)


@pytest.mark.parametrize("source", [None, "raise ImportError('plugin is broken')"])
def test_plugin_import_failure_names_module(tmp_path, monkeypatch, source) -> None:
    module = f"rb_missing_plugin_{os.getpid()}_{next(_ids)}"
    if source is not None:
        (tmp_path / f"{module}.py").write_text(source)
        monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(resnet_impl.PLUGINS_ENV, f"{module}")
    try:
        with pytest.raises(ValueError, match=module):
            list_models()
        with pytest.raises(ValueError, match="RESNET_BENCH_PLUGINS"):
            get_spec("resnet50")  # still failing on the next access, not silently skipped
    finally:
        sys.modules.pop(module, None)


def test_plugin_registers_inside_subprocess(tmp_path) -> None:
    tag = f"{os.getpid()}_{next(_ids)}"
    module, model_name = f"rb_plugin_{tag}", f"test_plugin_{tag}"
    _write_plugin(tmp_path, module, model_name)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]))
    env["RESNET_BENCH_PLUGINS"] = module
    code = (
        "import resnet_impl as r; "
        f"print(r.list_models('test_plugin_*'), type(r.create_model('{model_name}', device='meta')).__name__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"['{model_name}'] Doubled"
    assert list_models(model_name) == []  # nothing leaked into this process
