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
"""

from .blocks import BasicBlock, Bottleneck
from .checkpoints import CheckpointError
from .model import ResNet
from .preact import ResNetV2
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
