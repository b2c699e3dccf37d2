"""Pre-activation ResNets ("v2", He et al. 2016, "Identity Mappings in Deep Residual Networks").

The residual branch starts with BN-ReLU instead of ending with it: each conv is preceded by
BN-ReLU, the sum leaves the block unactivated (a clean identity path), and a final BN-ReLU
precedes the pooling. The shortcut of a shape-changing block is a 1x1 conv (no BN) of the
*pre-activated* input, or option A's zero padding.

Module names are timm's ``ResNetV2`` (``stem.conv``, ``stages.N.blocks.M.{norm1,conv1,...,
downsample.conv}``, ``norm``, ``head.fc`` as a 1x1 conv), so timm's ``resnetv2_*`` state_dicts
load with ``strict=True``.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .blocks import PadShortcut, conv1x1, conv3x3
from .spec import ResNetSpec


class BatchNormAct2d(nn.BatchNorm2d):
    """BN followed by ReLU, with a BatchNorm2d's parameter names (timm's norm-act layer)."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(super().forward(x))


class DownsampleConv(nn.Module):
    """The projection shortcut of a pre-activation block: a strided 1x1 conv, no BN."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.conv = conv1x1(in_ch, out_ch, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def _shortcut(kind: str, in_ch: int, out_ch: int, stride: int) -> nn.Module | None:
    if stride == 1 and in_ch == out_ch:
        return None
    return PadShortcut(in_ch, out_ch, stride) if kind == "pad" else DownsampleConv(in_ch, out_ch, stride)


class PreActBasic(nn.Module):
    """BN-ReLU, 3x3 (stride), BN-ReLU, 3x3; plus the shortcut of the pre-activated input."""

    expansion = 1

    def __init__(self, in_ch: int, planes: int, stride: int, shortcut: str, groups: int = 1,
                 base_width: int = 64) -> None:
        super().__init__()
        self.downsample = _shortcut(shortcut, in_ch, planes, stride)
        self.norm1 = BatchNormAct2d(in_ch)
        self.conv1 = conv3x3(in_ch, planes, stride)
        self.norm2 = BatchNormAct2d(planes)
        self.conv2 = conv3x3(planes, planes)

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.conv2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_preact = self.norm1(x)
        shortcut = x if self.downsample is None else self.downsample(x_preact)
        out = self.conv2(self.norm2(self.conv1(x_preact)))
        out += shortcut  # in place, as the post-activation blocks (results/parity/README.md)
        return out


class PreActBottleneck(nn.Module):
    """BN-ReLU, 1x1, BN-ReLU, 3x3 (stride, groups), BN-ReLU, 1x1 (x4); plus the shortcut."""

    expansion = 4

    def __init__(self, in_ch: int, planes: int, stride: int, shortcut: str, groups: int = 1,
                 base_width: int = 64) -> None:
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        out_ch = planes * self.expansion
        self.downsample = _shortcut(shortcut, in_ch, out_ch, stride)
        self.norm1 = BatchNormAct2d(in_ch)
        self.conv1 = conv1x1(in_ch, width)
        self.norm2 = BatchNormAct2d(width)
        self.conv2 = conv3x3(width, width, stride, groups)
        self.norm3 = BatchNormAct2d(width)
        self.conv3 = conv1x1(width, out_ch)

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.conv3.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_preact = self.norm1(x)
        shortcut = x if self.downsample is None else self.downsample(x_preact)
        out = self.conv1(x_preact)
        out = self.conv2(self.norm2(out))
        out = self.conv3(self.norm3(out))
        out += shortcut  # in place: a conv's output is not needed by its backward
        return out


class _Stage(nn.Module):
    def __init__(self, blocks: list[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class _Head(nn.Module):
    """Global average pool, a 1x1 conv as the classifier (timm's ``use_conv`` head), flatten."""

    def __init__(self, in_ch: int, num_classes: int) -> None:
        super().__init__()
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Conv2d(in_ch, num_classes, 1, bias=True)
        self.flatten = nn.Flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.flatten(self.fc(self.global_pool(x)))


class ResNetV2(nn.Module):
    """A pre-activation ResNet from a :class:`ResNetSpec` with ``preact=True``.

    Stem: ``classic`` 7x7/2 conv then 3x3/2 max-pool, or ``cifar`` 3x3/1 conv (no BN: the first
    block's ``norm1`` normalizes it). Stages as the spec says (stride 1, then 2; stride on the
    3x3), then BN-ReLU (``norm``) and the head. Init as timm's: convs kaiming-normal (fan_out),
    BN ones/zeros, classifier normal(0, 0.01) with zero bias.
    """

    def __init__(self, spec: ResNetSpec) -> None:
        super().__init__()
        if spec.stem not in ("classic", "cifar"):
            raise ValueError(f"ResNetSpec {spec.name!r}: preact=True supports stem 'classic' or 'cifar', "
                             f"got {spec.stem!r}")
        self.spec = spec
        (width,) = spec.stem_channels
        stem: list[tuple[str, nn.Module]] = [
            ("conv", nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False) if spec.stem == "classic"
             else conv3x3(3, width))]
        if spec.stem == "classic":
            stem.append(("pool", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)))
        self.stem = nn.Sequential(OrderedDict(stem))
        block = PreActBasic if spec.block == "basic" else PreActBottleneck
        in_ch, stages = width, []
        for i, (n, planes) in enumerate(zip(spec.layers, spec.stage_widths)):
            blocks = []
            for j in range(n):
                blocks.append(block(in_ch, planes, 2 if (i > 0 and j == 0) else 1, spec.shortcut,
                                    spec.groups, spec.width_per_group))
                in_ch = planes * block.expansion
            stages.append(_Stage(blocks))
        self.stages = nn.Sequential(*stages)
        self.norm = BatchNormAct2d(in_ch)
        self.head = _Head(in_ch, spec.num_classes)
        # profile stages (bench.core.profile): module path -> stage
        self.profile_stages = {"stem": "stem", **{f"stages.{i}": f"layer{i + 1}" for i in range(len(stages))},
                               "norm": "head", "head": "head"}
        self._init_weights()

    def _init_weights(self) -> None:
        # Meta tensors hold no values: skip them (their random init imports torch._dynamo,
        # ~1.5 s, in every process that builds a model on meta for its shapes or memory;
        # zeroing, below, has a plain meta kernel).
        for name, m in self.named_modules():
            if not isinstance(m, (nn.Conv2d, nn.BatchNorm2d)) or m.weight.is_meta:
                continue
            if name == "head.fc":
                nn.init.normal_(m.weight, mean=0.0, std=0.01)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            else:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if self.spec.zero_init_residual:
            for m in self.modules():
                if isinstance(m, (PreActBasic, PreActBottleneck)):
                    m.zero_init_last()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.stages(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> logits (N, num_classes)."""
        return self.head(self.forward_features(x))

    def extra_repr(self) -> str:
        return f"spec={self.spec.name!r}"
