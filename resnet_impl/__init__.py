"""resnet_impl: one ResNet class, variants as data, a strict registry.

    >>> from resnet_impl import create_model, list_models, get_spec, count_params
    >>> list_models("resnet50*")
    ['resnet50', 'resnet50_v1', 'resnet50c', 'resnet50d', 'resnet50s']
    >>> get_spec("resnet50d").stem_channels
    (32, 32, 64)
    >>> model = create_model("resnet101", stride_at="1x1", stem="deep", num_classes=10)
    >>> count_params("resnet50")
    25557032

Variant vocabulary (torchvision, timm, He et al. "Bag of Tricks" 2019):

* ``resnet50`` .. ``resnet152``: torchvision's, **v1.5** (stride 2 on the bottleneck's 3x3).
* ``*_v1``: the original paper's **v1** (stride 2 on the first 1x1): same params, fewer MACs.
* ``c``: deep stem, three 3x3 convs 32-32-64 (ResNet-C).
* ``d``: deep stem + average-pool shortcut downsampling (ResNet-D).
* ``s``: deep stem 64-64-128 ("deep base"; first stage takes 128 channels).
* ``resnextD_AxBd``: ResNeXt, A groups of width B in the 3x3 conv; ``wide_resnetD_2``: 2x wide.
* ``resnetv2_D``: pre-activation ("v2", He et al. 2016), timm's layout.
* ``resnet20/32/44/56/110``: He et al.'s CIFAR-10 ResNets (3 stages 16-32-64, option A);
  ``resnetD_cifar``: the ImageNet blocks with the CIFAR stem (3x3/1, no max-pool), 10 classes.

Plugins: set ``RESNET_BENCH_PLUGINS=pkg.mod1,pkg.mod2`` to import modules that call
``register_model`` on first registry access.

Importing the package does not import torch: the registry, the specs and ``count_params`` of
the built-in variants are pure Python. The model classes (``ResNet``, ``ResNetV2``,
``BasicBlock``, ``Bottleneck``) and ``CheckpointError`` load on first access; ``create_model``
imports torch when it builds.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .registry import (
    PLUGINS_ENV,
    count_params,
    create_model,
    get_spec,
    list_models,
    load_plugins,
    register_model,
    unregister_model,
)
from .spec import BLOCKS, SHORTCUTS, STEMS, STRIDE_AT, STRIDE_AT_ALIASES, ResNetSpec
from . import names as _names  # noqa: F401  (registers the built-in names)

if TYPE_CHECKING:  # what the lazy names below resolve to, for type checkers and IDEs
    from .blocks import BasicBlock, Bottleneck
    from .checkpoints import CheckpointError
    from .model import ResNet
    from .preact import ResNetV2

# Public names that need torch: name -> the submodule defining it, imported on first access.
_LAZY: dict[str, str] = {
    "BasicBlock": "blocks",
    "Bottleneck": "blocks",
    "CheckpointError": "checkpoints",
    "ResNet": "model",
    "ResNetV2": "preact",
}


def __getattr__(name: str) -> Any:
    """Import a torch-dependent public name (``_LAZY``) on first access (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later accesses skip this hook
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})

__all__ = [
    "BLOCKS",
    "PLUGINS_ENV",
    "SHORTCUTS",
    "STEMS",
    "STRIDE_AT",
    "STRIDE_AT_ALIASES",
    "BasicBlock",
    "Bottleneck",
    "CheckpointError",
    "ResNet",
    "ResNetSpec",
    "ResNetV2",
    "count_params",
    "create_model",
    "get_spec",
    "list_models",
    "load_plugins",
    "register_model",
    "unregister_model",
]
