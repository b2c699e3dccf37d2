"""The registered names: data only, one line each. Names follow torchvision and timm.

Reading a name: ``resnet{depth}`` = v1.5 (torchvision); ``_v1`` = stride on the 1x1 (original
paper); timm letters ``c`` = deep stem 32-32-64, ``d`` = deep stem + avg-pool shortcut,
``s`` = deep stem 64-64-128; ``resnext{depth}_{A}x{B}d`` = A groups of width B;
``wide_resnet{depth}_2`` = bottleneck twice as wide; ``resnetv2_{depth}`` = pre-activation (v2);
``resnet{6n+2}`` (20, 32, 44, 56, 110) = He et al.'s CIFAR-10 ResNets; ``*_cifar`` = the
ImageNet blocks with the CIFAR stem and 10 classes.

Add a variant with one more line; run the tests (they are driven by ``list_models()``).
"""

from __future__ import annotations

from .registry import _register
from .spec import ResNetSpec

_R18 = (2, 2, 2, 2)
_R34 = (3, 4, 6, 3)
_R50 = (3, 4, 6, 3)
_R101 = (3, 4, 23, 3)
_R152 = (3, 8, 36, 3)
_R26 = (2, 2, 2, 2)
_R200 = (3, 24, 36, 3)
_CIFAR_WIDTHS = (16, 32, 64)

_TV = "torchvision, v1.5: stride on the 3x3"
_C = "timm 'c': deep stem 32-32-64 (ResNet-C), v1.5"
_D = "timm 'd': deep stem 32-32-64 + avg-pool shortcut (ResNet-D), v1.5"
_S = "timm 's': deep_base stem 64-64-128, v1.5"
_V1 = "v1: stride 2 on the first 1x1 conv (He et al. 2015, Caffe)"
_V2 = "v2, pre-activation: BN-ReLU before each conv, a final BN-ReLU (He et al. 2016; timm)"
_CIFAR = ("for CIFAR-10: torchvision's blocks and widths, a 3x3 stride-1 stem without max-pool, "
          "10 classes, 32 px")

SPECS: tuple[ResNetSpec, ...] = (
    # torchvision (He et al. 2015 depths), v1.5, classic 7x7 stem.
    ResNetSpec("resnet18", "basic", _R18, description="ResNet-18, basic blocks (torchvision)"),
    ResNetSpec("resnet34", "basic", _R34, description="ResNet-34, basic blocks (torchvision)"),
    ResNetSpec("resnet50", "bottleneck", _R50, description=f"ResNet-50 ({_TV})"),
    ResNetSpec("resnet101", "bottleneck", _R101, description=f"ResNet-101 ({_TV})"),
    ResNetSpec("resnet152", "bottleneck", _R152, description=f"ResNet-152 ({_TV})"),
    # The original v1.
    ResNetSpec("resnet50_v1", "bottleneck", _R50, stride_at="1x1", description=f"ResNet-50 {_V1}"),
    ResNetSpec("resnet101_v1", "bottleneck", _R101, stride_at="1x1", description=f"ResNet-101 {_V1}"),
    ResNetSpec("resnet152_v1", "bottleneck", _R152, stride_at="1x1", description=f"ResNet-152 {_V1}"),
    # timm's letters (He et al. "Bag of Tricks", 2019).
    ResNetSpec("resnet18d", "basic", _R18, stem="deep", shortcut="avg",
               description="ResNet-18 timm 'd': deep stem 32-32-64 + avg-pool shortcut (ResNet-D)"),
    ResNetSpec("resnet34d", "basic", _R34, stem="deep", shortcut="avg",
               description="ResNet-34 timm 'd': deep stem 32-32-64 + avg-pool shortcut (ResNet-D)"),
    ResNetSpec("resnet50c", "bottleneck", _R50, stem="deep", description=f"ResNet-50 {_C}"),
    ResNetSpec("resnet50d", "bottleneck", _R50, stem="deep", shortcut="avg", description=f"ResNet-50 {_D}"),
    ResNetSpec("resnet50s", "bottleneck", _R50, stem="deep_base", description=f"ResNet-50 {_S}"),
    ResNetSpec("resnet101c", "bottleneck", _R101, stem="deep", description=f"ResNet-101 {_C}"),
    ResNetSpec("resnet101d", "bottleneck", _R101, stem="deep", shortcut="avg", description=f"ResNet-101 {_D}"),
    ResNetSpec("resnet101s", "bottleneck", _R101, stem="deep_base", description=f"ResNet-101 {_S}"),
    ResNetSpec("resnet152c", "bottleneck", _R152, stem="deep", description=f"ResNet-152 {_C}"),
    ResNetSpec("resnet152d", "bottleneck", _R152, stem="deep", shortcut="avg", description=f"ResNet-152 {_D}"),
    ResNetSpec("resnet152s", "bottleneck", _R152, stem="deep_base", description=f"ResNet-152 {_S}"),
    # ResNeXt (Xie et al. 2017): groups x width-per-group in the 3x3 conv.
    ResNetSpec("resnext50_32x4d", "bottleneck", _R50, groups=32, width_per_group=4,
               description="ResNeXt-50 32x4d: 32 groups of width 4 (Xie et al. 2017; torchvision)"),
    ResNetSpec("resnext101_32x8d", "bottleneck", _R101, groups=32, width_per_group=8,
               description="ResNeXt-101 32x8d: 32 groups of width 8 (Xie et al. 2017; torchvision)"),
    ResNetSpec("resnext101_64x4d", "bottleneck", _R101, groups=64, width_per_group=4,
               description="ResNeXt-101 64x4d: 64 groups of width 4 (Xie et al. 2017; torchvision)"),
    ResNetSpec("resnext50d_32x4d", "bottleneck", _R50, groups=32, width_per_group=4, stem="deep",
               shortcut="avg", description="ResNeXt-50 32x4d, timm 'd': deep stem 32-32-64 + avg-pool shortcut"),
    # Wide ResNet (Zagoruyko & Komodakis 2016, bottleneck form): inner width doubled.
    ResNetSpec("wide_resnet50_2", "bottleneck", _R50, width_per_group=128,
               description="Wide ResNet-50-2: bottleneck 3x3 twice as wide (torchvision)"),
    ResNetSpec("wide_resnet101_2", "bottleneck", _R101, width_per_group=128,
               description="Wide ResNet-101-2: bottleneck 3x3 twice as wide (torchvision)"),
    # timm's other depths.
    ResNetSpec("resnet26", "bottleneck", _R26, description="ResNet-26: 2 bottlenecks per stage (timm, v1.5)"),
    ResNetSpec("resnet26d", "bottleneck", _R26, stem="deep", shortcut="avg", description=f"ResNet-26 {_D}"),
    ResNetSpec("resnet200d", "bottleneck", _R200, stem="deep", shortcut="avg", description=f"ResNet-200 {_D}"),
    # Pre-activation, "v2" (He et al. 2016, "Identity Mappings in Deep Residual Networks"; timm's names).
    ResNetSpec("resnetv2_50", "bottleneck", _R50, preact=True, description=f"ResNet-50 {_V2}"),
    ResNetSpec("resnetv2_101", "bottleneck", _R101, preact=True, description=f"ResNet-101 {_V2}"),
    # CIFAR-10 (He et al. 2015 Sec. 4.2): 3x3 stem, three stages 16-32-64 of n basic blocks
    # (depth 6n+2), option-A shortcuts, 10 classes, 32 px.
    *(ResNetSpec(f"resnet{6 * n + 2}", "basic", (n, n, n), stem="cifar", widths=_CIFAR_WIDTHS, shortcut="pad",
                 num_classes=10, description=f"ResNet-{6 * n + 2} for CIFAR-10: 3 stages 16-32-64 of {n} basic "
                                             "blocks, option-A (zero-pad) shortcuts (He et al. 2015, 4.2)")
      for n in (3, 5, 7, 9, 18)),
    # torchvision's blocks and widths with the CIFAR stem: the common "ResNet-18 for CIFAR-10".
    ResNetSpec("resnet18_cifar", "basic", _R18, stem="cifar", num_classes=10, description=f"ResNet-18 {_CIFAR}"),
    ResNetSpec("resnet34_cifar", "basic", _R34, stem="cifar", num_classes=10, description=f"ResNet-34 {_CIFAR}"),
    ResNetSpec("resnet50_cifar", "bottleneck", _R50, stem="cifar", num_classes=10,
               description=f"ResNet-50 (v1.5) {_CIFAR}"),
)

for _spec in SPECS:
    _register(_spec)
