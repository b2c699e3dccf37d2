"""``ResNet``: one model class for every variant; the ``ResNetSpec`` says which."""

from __future__ import annotations

import torch
from torch import nn

from .blocks import BLOCK_CLASSES, BasicBlock, Bottleneck, make_shortcut
from .spec import ResNetSpec
from .stems import make_stem_conv, make_stem_pool


class ResNet(nn.Module):
    """ResNet / ResNeXt / wide ResNet, v1 or v1.5, with classic, deep (letters c, d, s) or CIFAR stems.

    One class, configured by a frozen :class:`ResNetSpec` (variants are data):

    * block: ``basic`` (ResNet-18/34) or ``bottleneck`` (50/101/152).
    * ``stride_at``: where a downsampling bottleneck strides.
      ``"1x1"`` = **v1** (He et al. 2015, the original Caffe model; names ``*_v1``);
      ``"3x3"`` = **v1.5** (torchvision, NVIDIA, timm; the plain names ``resnet50`` ...).
    * stem (timm's letters, He et al. "Bag of Tricks", 2019):
      no letter = ``classic`` 7x7/2 conv, 64 wide;
      **c** = ``deep`` stem, three 3x3 convs 32-32-64 (ResNet-C);
      **d** = deep stem + ``avg`` shortcut, 2x2 avg-pool before the 1x1 conv (ResNet-D);
      **s** = ``deep_base`` stem, 64-64-128 (PSPNet-style backbones).
    * **ResNeXt** ``AxBd``: ``groups=A`` groups of width ``width_per_group=B`` in the 3x3 conv;
      **wide** ``_2``: ``width_per_group=128``, the bottleneck twice as wide.
    * **CIFAR** (He et al. 2015 Sec. 4.2): ``cifar`` stem (3x3/1 conv, no max-pool), three
      stages of widths 16-32-64 with n basic blocks each (depth 6n+2), option-A ``pad``
      shortcuts, 10 classes.

    Layout and names are torchvision's (``conv1, bn1, relu, maxpool, layer1..layerN, avgpool,
    fc``), deep stems are timm's (``conv1`` a Sequential), so torchvision and timm state_dicts
    load with ``strict=True``. Any input of at least ``spec.total_stride`` px works (adaptive
    average pool before fc). Pre-activation specs build :class:`resnet_impl.preact.ResNetV2`.

    Init (torchvision's): convs kaiming-normal (fan_out, relu), BN weight 1 bias 0, fc PyTorch's
    default; ``zero_init_residual`` zeros the last BN weight of each block.
    """

    def __init__(self, spec: ResNetSpec) -> None:
        super().__init__()
        self.spec = spec
        block = BLOCK_CLASSES[spec.block]

        # Stem: input /4 (/1 for cifar). conv1: a 7x7/2 conv (classic), a Sequential of 3 convs
        # (deep), or a 3x3/1 conv (cifar, whose maxpool is an identity).
        self.conv1 = make_stem_conv(spec.stem, spec.stem_channels)
        self.bn1 = nn.BatchNorm2d(spec.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = make_stem_pool(spec.stem)

        # Stages layer1..layerN: planes spec.stage_widths (x expansion out); stride 1, then 2.
        inplanes = spec.inplanes
        self.stage_names: tuple[str, ...] = tuple(f"layer{i + 1}" for i in range(len(spec.layers)))
        for i, (name, n, planes) in enumerate(zip(self.stage_names, spec.layers, spec.stage_widths)):
            layer, inplanes = self._make_layer(block, inplanes, planes, n, 1 if i == 0 else 2)
            self.add_module(name, layer)

        # Head.
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(inplanes, spec.num_classes)

        self._init_weights()

    def _make_layer(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        inplanes: int,
        planes: int,
        num_blocks: int,
        stride: int,
    ) -> tuple[nn.Sequential, int]:
        spec = self.spec
        outplanes = planes * block.expansion
        downsample = None
        if stride != 1 or inplanes != outplanes:
            downsample = make_shortcut(spec.shortcut, inplanes, outplanes, stride)
        kwargs = dict(groups=spec.groups, base_width=spec.width_per_group, stride_at=spec.stride_at)
        blocks = [block(inplanes, planes, stride, downsample, **kwargs)]
        blocks += [block(outplanes, planes, 1, None, **kwargs) for _ in range(1, num_blocks)]
        return nn.Sequential(*blocks), outplanes

    def _init_weights(self) -> None:
        # Meta tensors (a model built under ``torch.device("meta")`` for shapes, params or a
        # memory estimate) hold no values: initialising them is a no-op that would still cost
        # ~1.5 s, since the random init of a meta tensor imports torch._dynamo. Skip them
        # (zeroing, below, has a plain meta kernel).
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and not m.weight.is_meta:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and not m.weight.is_meta:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if self.spec.zero_init_residual:
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    m.zero_init_last()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, num_features, ~H/total_stride, ~W/total_stride), before pooling."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> logits (N, num_classes)."""
        x = self.avgpool(self.forward_features(x))
        return self.fc(torch.flatten(x, 1))

    def extra_repr(self) -> str:
        return f"spec={self.spec.name!r}"
