"""``ResNetSpec.num_params`` (closed form, no torch) against the built modules, and the
torch-free import path: ``import resnet_impl``, listing and counting, and ``resnet-bench list``.

The independent check is ``sum(p.numel() for p in model.parameters())`` of the module the
default factory builds (on the meta device: shapes only, no memory); the published torchvision
and timm counts are checked in test_resnet_impl.py through ``count_params``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from resnet_impl import ResNetSpec, count_params, create_model, get_spec, list_models, register_model, unregister_model

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def built_params(name: str, **overrides) -> int:
    """Parameters of the module ``create_model`` builds, counted one tensor at a time."""
    with torch.device("meta"):
        model = create_model(name, **overrides)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", list_models())
def test_closed_form_equals_built_module(name: str) -> None:
    spec = get_spec(name)
    assert spec.num_params == count_params(name) == built_params(name)


# Each override moves one term of the formula: stem convs, stride placement, the grouped 3x3,
# the inner width, the shortcut kind, stage widths/count, the head, the v2 layout.
OVERRIDES = [
    ("resnet50", dict(stem="deep")),
    ("resnet50", dict(stem="deep_base", stem_width=48)),
    ("resnet18", dict(stem="deep", shortcut="avg")),
    ("resnet18", dict(stem="cifar", shortcut="pad")),
    ("resnet101", dict(stride_at="1x1")),
    ("resnet50", dict(groups=32, width_per_group=4, shortcut="avg")),
    ("resnet50", dict(groups=8, width_per_group=24)),
    ("resnet50", dict(width_per_group=96)),  # inner width int(p * 1.5): not a multiple of 64
    ("resnet50", dict(num_classes=10)),
    ("resnet18", dict(num_classes=1, layers=(1, 2, 1))),
    ("resnet34", dict(layers=(1, 1, 1, 1, 1), stem_width=16)),
    ("resnet20", dict(shortcut="conv", widths=(8, 24, 40), num_classes=100)),
    ("resnet20", dict(stem_width=8)),  # option A padding from the stem into layer1
    ("resnetv2_50", dict(stem="cifar", num_classes=10)),
    ("resnetv2_50", dict(groups=32, width_per_group=4, layers=(1, 2, 1, 1))),
    ("resnetv2_50", dict(block="basic", layers=(2, 2, 2, 2))),
    ("resnetv2_50", dict(block="basic", stem="cifar", shortcut="pad", widths=(16, 32, 64), layers=(3, 3, 3))),
]


@pytest.mark.parametrize("name, overrides", OVERRIDES, ids=[f"{n}-{'-'.join(o)}" for n, o in OVERRIDES])
def test_closed_form_equals_built_module_with_overrides(name: str, overrides: dict) -> None:
    spec = get_spec(name).replace(**overrides)
    assert spec.num_params == count_params(name, **overrides) == built_params(name, **overrides)


def test_option_a_refuses_narrowing_stages() -> None:
    # Option A pads channels; a stage narrower than its input cannot be built, so the spec refuses it.
    with pytest.raises(ValueError, match="shortcut='pad'.*layer1 takes 64 channels and gives 16"):
        ResNetSpec("x", "basic", (1, 1, 1), widths=(16, 32, 64), shortcut="pad")
    with pytest.raises(ValueError, match="layer3 takes 32 channels and gives 8"):
        get_spec("resnet20").replace(widths=(16, 32, 8))


def test_custom_factory_is_counted_by_building() -> None:
    class WithBias(nn.Module):
        def __init__(self, spec: ResNetSpec) -> None:
            super().__init__()
            self.body = create_model("resnet18", layers=spec.layers, num_classes=spec.num_classes)
            self.shift = nn.Parameter(torch.zeros(7))

    spec = ResNetSpec(f"test_factory_{os.getpid()}", "basic", (1, 1, 1, 1), num_classes=5)
    register_model(spec, WithBias)
    try:
        assert count_params(spec.name) == spec.num_params + 7
        assert count_params(spec.name, num_classes=3) == spec.replace(num_classes=3).num_params + 7
    finally:
        unregister_model(spec.name)


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = dict(os.environ, PYTHONPATH=str(REPO), **env)
    environ.pop("RESNET_BENCH_PLUGINS", None)
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=environ, capture_output=True, text=True,
                          timeout=120)


def test_import_list_and_count_do_not_import_torch() -> None:
    done = _python(
        "import sys, resnet_impl; resnet_impl.list_models(); n = resnet_impl.count_params('resnet50'); "
        "resnet_impl.get_spec('resnet50d'); "
        "print(n, 'torch' in sys.modules, sorted(m for m in sys.modules if m.startswith('resnet_impl.')))"
    )
    assert done.returncode == 0, done.stderr
    count, torch_loaded, modules = done.stdout.split(" ", 2)
    assert (int(count), torch_loaded) == (25_557_032, "False")
    assert "resnet_impl.model" not in modules and "resnet_impl.blocks" not in modules


def test_lazy_names_resolve_on_access() -> None:
    done = _python(
        "import sys, resnet_impl; from resnet_impl import ResNet, BasicBlock, CheckpointError; "
        "import resnet_impl.model as m; "
        "print(ResNet is m.ResNet, 'ResNet' in dir(resnet_impl), 'torch' in sys.modules, "
        "hasattr(resnet_impl, 'NoSuchName'))"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True", "True", "False"]


def test_cli_list_does_not_import_torch() -> None:
    done = _python(
        "import contextlib, io, json, sys; from bench.cli import main; out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out): rc = main(['list', 'resnet50', '--format', 'json'])\n"
        "print(json.dumps([rc, json.loads(out.getvalue()), 'torch' in sys.modules, 'rich.progress' in sys.modules]))"
    )
    assert done.returncode == 0, done.stderr
    rc, rows, torch_loaded, progress_loaded = json.loads(done.stdout)
    assert rc == 0 and [r["params"] for r in rows] == [25_557_032]
    assert not torch_loaded and not progress_loaded
