"""Residual blocks (``BasicBlock``, ``Bottleneck``) and the shortcut of shape-changing blocks.

Parameter names follow torchvision (conv1/bn1/conv2/bn2[/conv3/bn3]/downsample), so
torchvision and timm state_dicts load strictly.
"""

from __future__ import annotations

import torch
from torch import nn


def conv3x3(in_ch: int, out_ch: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """3x3 conv, padding 1, no bias (a BN follows)."""
    return nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    """1x1 conv, no bias (a BN follows)."""
    return nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)


class PadShortcut(nn.Module):
    """Option A (He et al. 2015): the input subsampled with ``stride`` and zero-padded from
    ``in_ch`` to ``out_ch`` channels (the new channels appended). No parameters."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        if out_ch < in_ch:
            raise ValueError(f"option A pads channels; it cannot go from {in_ch} to {out_ch}")
        self.extra, self.stride = out_ch - in_ch, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return nn.functional.pad(x, (0, 0, 0, 0, 0, self.extra)) if self.extra else x

    def extra_repr(self) -> str:
        return f"stride={self.stride}, zero_channels={self.extra}"


def make_shortcut(kind: str, in_ch: int, out_ch: int, stride: int) -> nn.Module:
    """Shortcut for a block whose output shape differs from its input.

    * ``"conv"`` (torchvision, keys ``downsample.0/1``): 1x1 conv with ``stride``, BN.
    * ``"avg"`` (ResNet-D, timm, keys ``downsample.1/2``): 2x2 average pool with ``stride``
      (``ceil_mode=True, count_include_pad=False``; ``nn.Identity`` when ``stride == 1``),
      then 1x1 conv with stride 1, BN. The strided 1x1 conv of "conv" reads only one pixel
      in four; averaging first uses all of them.
    * ``"pad"`` (option A, He et al. 2015): :class:`PadShortcut`, no parameters.
    """
    if kind == "conv":
        return nn.Sequential(conv1x1(in_ch, out_ch, stride), nn.BatchNorm2d(out_ch))
    if kind == "avg":
        pool: nn.Module = (
            nn.AvgPool2d(2, stride=stride, ceil_mode=True, count_include_pad=False)
            if stride != 1
            else nn.Identity()
        )
        return nn.Sequential(pool, conv1x1(in_ch, out_ch, 1), nn.BatchNorm2d(out_ch))
    if kind == "pad":
        return PadShortcut(in_ch, out_ch, stride)
    raise ValueError(f"invalid shortcut {kind!r}; valid: 'conv', 'avg', 'pad'")


class BasicBlock(nn.Module):
    """Two 3x3 convs (ResNet-18/34). Stride, when any, is on the first 3x3.

    ``groups``/``base_width``/``stride_at`` are accepted so both blocks share one signature;
    only ``groups=1, base_width=64`` is valid (as torchvision).
    """

    expansion: int = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
        stride_at: str = "3x3",
    ) -> None:
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock supports only groups=1 and base_width=64")
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def zero_init_last(self) -> None:
        """Zero the last BN's weight: the residual branch starts as 0, the block as identity."""
        nn.init.zeros_(self.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # torchvision's order: the branch first, then the shortcut, added in place.
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += x if self.downsample is None else self.downsample(x)
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 (reduce) -> 3x3 (grouped) -> 1x1 (expand x4) block (ResNet-50+, ResNeXt, wide).

    Inner width = ``int(planes * base_width / 64) * groups`` (torchvision's formula):
    ResNet-50 64x1 -> 64, ResNeXt ``32x4d`` -> 128, wide ``_2`` (base_width 128) -> 128 at
    planes=64. ``stride_at`` picks the conv that downsamples: ``"1x1"`` = v1 (conv1, the
    original paper), ``"3x3"`` = v1.5 (conv2, torchvision/NVIDIA/timm).
    """

    expansion: int = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
        stride_at: str = "3x3",
    ) -> None:
        super().__init__()
        if stride_at not in ("1x1", "3x3"):
            raise ValueError(f"invalid stride_at {stride_at!r}; valid: '1x1', '3x3'")
        width = int(planes * (base_width / 64.0)) * groups
        stride_1x1, stride_3x3 = (stride, 1) if stride_at == "1x1" else (1, stride)
        self.conv1 = conv1x1(inplanes, width, stride_1x1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride_3x3, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def zero_init_last(self) -> None:
        """Zero the last BN's weight: the residual branch starts as 0, the block as identity."""
        nn.init.zeros_(self.bn3.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # torchvision's order: the branch first, then the shortcut, added in place.
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += x if self.downsample is None else self.downsample(x)
        return self.relu(out)


BLOCK_CLASSES: dict[str, type[BasicBlock] | type[Bottleneck]] = {
    "basic": BasicBlock,
    "bottleneck": Bottleneck,
}
