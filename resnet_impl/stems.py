"""Stems: the convs before layer1. Every stem is ``conv1 -> bn1 -> relu -> maxpool``: output
stride 4, or 1 for the CIFAR stem, whose ``maxpool`` is an identity.

Only ``conv1`` differs, so the model keeps torchvision's/timm's module names:

* ``classic``: ``conv1`` = 7x7/2 conv 3 -> 64 (torchvision, He et al. 2015).
* ``deep`` (ResNet-C, timm ``c``/``d``) and ``deep_base`` (timm ``s``): ``conv1`` =
  ``Sequential(conv3x3/2 3->w, BN, ReLU, conv3x3 w->w, BN, ReLU, conv3x3 w->2w)``; the model's
  ``bn1`` normalises its output (timm's layout: keys ``conv1.0``, ``conv1.1``, ``conv1.3``,
  ``conv1.4``, ``conv1.6``, ``bn1``). Three 3x3 convs see the same 7x7 field more cheaply
  per parameter and add two non-linearities.
* ``cifar`` (He et al. 2015 Sec. 4.2): ``conv1`` = 3x3/1 conv 3 -> w, no max-pool: a 32 px image
  keeps its resolution into the first stage.
"""

from __future__ import annotations

from torch import nn

from .blocks import conv3x3


def make_stem_conv(stem: str, channels: tuple[int, ...], in_chans: int = 3) -> nn.Module:
    """The ``conv1`` of a stem; ``channels`` is ``ResNetSpec.stem_channels``."""
    if stem == "classic":
        (width,) = channels
        return nn.Conv2d(in_chans, width, 7, stride=2, padding=3, bias=False)
    if stem == "cifar":
        (width,) = channels
        return conv3x3(in_chans, width)
    if stem in ("deep", "deep_base"):
        w1, w2, w3 = channels
        return nn.Sequential(
            conv3x3(in_chans, w1, stride=2),
            nn.BatchNorm2d(w1),
            nn.ReLU(inplace=True),
            conv3x3(w1, w2),
            nn.BatchNorm2d(w2),
            nn.ReLU(inplace=True),
            conv3x3(w2, w3),
        )
    raise ValueError(f"invalid stem {stem!r}; valid: 'classic', 'deep', 'deep_base', 'cifar'")


def make_stem_pool(stem: str = "classic") -> nn.Module:
    """3x3/2 max-pool, padding 1; none (an identity) for the CIFAR stem."""
    if stem == "cifar":
        return nn.Identity()
    return nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
