"""``ResNetSpec``: one frozen, validated record that fully describes a ResNet variant.

A variant is data, not code: ``resnet50d`` is ``resnet50`` with ``stem="deep"`` and
``shortcut="avg"``. ``ResNet(spec)`` (see ``model.py``) turns a spec into an ``nn.Module``.

Vocabulary (timm's letters, He et al. "Bag of Tricks for Image Classification", 2019):

* ``stride_at="1x1"`` -- v1, the original paper (He et al. 2015, Caffe): the downsampling
  bottleneck puts stride 2 on its first 1x1 conv.
* ``stride_at="3x3"`` -- v1.5 / ResNet-B (torchvision, NVIDIA): stride 2 on the 3x3 conv.
  Same parameters, a few % more MACs, ~0.5% better top-1.
* ``stem="deep"`` -- ResNet-C (timm suffix ``c``): three 3x3 convs of widths 32, 32, 64.
* ``shortcut="avg"`` -- ResNet-D (timm suffix ``d``, together with the deep stem): the
  shortcut downsamples with 2x2 average pooling before its 1x1 conv.
* ``stem="deep_base"`` -- timm suffix ``s``: deep stem of widths 64, 64, 128.
* ``groups=32, width_per_group=4`` -- ResNeXt ``32x4d``; ``width_per_group=128`` -- wide ``_2``.
* ``stem="cifar"`` -- one 3x3 stride-1 conv, BN, ReLU, no max-pool (the CIFAR-10 ResNets of
  He et al. 2015 Sec. 4.2, and the common "ResNet-18 for CIFAR-10").
* ``widths=(16, 32, 64)`` with ``layers=(n, n, n)`` -- the CIFAR layout: three stages of basic
  blocks, depth 6n+2 (resnet20 .. resnet110).
* ``shortcut="pad"`` -- "option A" (He et al. 2015 Sec. 3.3, 4.2): parameter-free, the input
  subsampled with the block's stride and zero-padded to the new width; ``"conv"`` is option B.
* ``preact=True`` -- pre-activation ("v2", He et al. 2016, "Identity Mappings in Deep Residual
  Networks"): BN-ReLU before each conv, a final BN-ReLU before pooling; timm's ``resnetv2_*``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

# Valid choices, exported so that errors, CLIs and tests share one source of truth.
BLOCKS: tuple[str, ...] = ("basic", "bottleneck")
STRIDE_AT: tuple[str, ...] = ("1x1", "3x3")
STRIDE_AT_ALIASES: dict[str, str] = {"v1": "1x1", "v1.5": "3x3"}
STEMS: tuple[str, ...] = ("classic", "deep", "deep_base", "cifar")
SHORTCUTS: tuple[str, ...] = ("conv", "avg", "pad")
# Width of the stem when ``stem_width`` is None (classic: the 7x7 conv; deep stems: the
# first two 3x3 convs, the third is twice as wide; cifar: the first stage's width).
STEM_DEFAULT_WIDTH: dict[str, int] = {"classic": 64, "deep": 32, "deep_base": 64}
# Downsampling of each stem (conv strides x max-pool): input pixels per output pixel.
STEM_STRIDE: dict[str, int] = {"classic": 4, "deep": 4, "deep_base": 4, "cifar": 1}
# Planes of the stages when ``widths`` is None (torchvision's; the output is planes x expansion).
DEFAULT_WIDTHS: tuple[int, ...] = (64, 128, 256, 512)
# Output channels of each block = planes * expansion.
BLOCK_EXPANSION: dict[str, int] = {"basic": 1, "bottleneck": 4}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _fmt(choices: tuple[str, ...]) -> str:
    return ", ".join(repr(c) for c in choices)


@dataclass(frozen=True)
class ResNetSpec:
    """Frozen description of one ResNet variant; validated on creation.

    Build a model with ``ResNet(spec)``; derive a variant with ``spec.replace(**overrides)``;
    count its parameters without torch with ``spec.num_params``.
    """

    # Registry name, e.g. "resnet50d"; follows torchvision / timm so users recognise it.
    name: str
    # Residual block: "basic" (two 3x3 convs, ResNet-18/34) or "bottleneck" (1x1-3x3-1x1, 50+).
    block: str
    # Number of blocks in each stage (layer1..), e.g. (3, 4, 6, 3) for 50 layers; (n, n, n) for
    # the CIFAR layout. The first stage has stride 1, every later one stride 2.
    layers: tuple[int, ...]
    # Where the downsampling bottleneck puts stride 2: "1x1" = v1 (He et al. 2015),
    # "3x3" = v1.5 (torchvision/NVIDIA). Aliases "v1"/"v1.5" accepted. BasicBlock: always its
    # first 3x3, whatever this says.
    stride_at: str = "3x3"
    # Stem: "classic" (7x7/2 conv), "deep" (ResNet-C, 3x 3x3 convs w-w-2w), "deep_base" (same,
    # w=64), each followed by BN, ReLU, 3x3/2 max-pool (output stride 4); "cifar" (one 3x3/1
    # conv, BN, ReLU, no pool: output stride 1).
    stem: str = "classic"
    # Stem width w; None = the stem's default (classic 64, deep 32, deep_base 64, cifar widths[0]).
    stem_width: int | None = None
    # Planes of each stage (output channels = planes x expansion); None = (64, 128, 256, 512).
    # The CIFAR ResNets: (16, 32, 64).
    widths: tuple[int, ...] | None = None
    # Shortcut of shape-changing blocks: "conv" (option B: 1x1 conv with stride, BN), "avg"
    # (ResNet-D: 2x2 avg-pool with stride, then 1x1 conv stride 1, BN) or "pad" (option A: the
    # input subsampled with the stride, zero-padded to the new width; no parameters; so no stage
    # may be narrower than its input).
    shortcut: str = "conv"
    # Pre-activation blocks ("v2"): BN-ReLU before each conv and a final BN-ReLU before pooling;
    # the shortcut of a shape-changing block is a 1x1 conv (no BN) of the pre-activated input.
    preact: bool = False
    # Cardinality: groups of the bottleneck's 3x3 conv (ResNeXt "32x4d" -> 32). Basic: 1 only.
    groups: int = 1
    # Width of each group at planes=64 (ResNeXt "32x4d" -> 4; wide "_2" -> 128). Basic: 64 only.
    width_per_group: int = 64
    # Classifier outputs (ImageNet: 1000, CIFAR-10: 10).
    num_classes: int = 1000
    # The input size the variant is meant for, px; None = 32 with the cifar stem, else 224.
    input_size: int | None = None
    # Zero the last BN weight of every block, so each residual branch starts as identity.
    zero_init_residual: bool = False
    # One line: what the name means and where it comes from.
    description: str = ""

    # ------------------------------------------------------------------ validation
    def __post_init__(self) -> None:
        # Normalise before validating (frozen: go through object.__setattr__).
        if isinstance(self.stride_at, str) and self.stride_at in STRIDE_AT_ALIASES:
            object.__setattr__(self, "stride_at", STRIDE_AT_ALIASES[self.stride_at])
        for name in ("layers", "widths"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        self._validate()

    def _validate(self) -> None:
        def bad(field: str, valid: str) -> ValueError:
            value = getattr(self, field)
            return ValueError(f"ResNetSpec {self.name!r}: invalid {field}={value!r}; valid: {valid}")

        if not isinstance(self.name, str) or not self.name:
            raise bad("name", "a non-empty str")
        if self.block not in BLOCKS:
            raise bad("block", _fmt(BLOCKS))
        if (
            not isinstance(self.layers, tuple)
            or not 1 <= len(self.layers) <= 6
            or not all(_is_int(n) and n > 0 for n in self.layers)
        ):
            raise bad("layers", "a tuple of 1 to 6 positive ints, e.g. (3, 4, 6, 3) or (3, 3, 3)")
        if self.widths is not None and (
            not isinstance(self.widths, tuple)
            or len(self.widths) != len(self.layers)
            or not all(_is_int(n) and n > 0 for n in self.widths)
        ):
            raise bad("widths", f"None or {len(self.layers)} positive ints, one per stage, e.g. (16, 32, 64)")
        if self.stride_at not in STRIDE_AT:
            aliases = ", ".join(f"{k!r}->{v!r}" for k, v in STRIDE_AT_ALIASES.items())
            raise bad("stride_at", f"{_fmt(STRIDE_AT)} (aliases {aliases})")
        if self.stem not in STEMS:
            raise bad("stem", _fmt(STEMS))
        if self.stem_width is not None and not (_is_int(self.stem_width) and self.stem_width > 0):
            raise bad("stem_width", "None (the stem's default) or a positive int")
        if self.shortcut not in SHORTCUTS:
            raise bad("shortcut", _fmt(SHORTCUTS))
        for field in ("groups", "width_per_group", "num_classes"):
            if not (_is_int(getattr(self, field)) and getattr(self, field) > 0):
                raise bad(field, "a positive int")
        if not isinstance(self.preact, bool):
            raise bad("preact", "True, False")
        if self.input_size is not None and not (_is_int(self.input_size) and self.input_size >= self.total_stride):
            raise bad("input_size", f"None or an int >= the total stride ({self.total_stride})")
        if self.shortcut == "pad" and self.block != "basic":
            raise ValueError(
                f"ResNetSpec {self.name!r}: shortcut='pad' (option A) is for basic blocks, whose stages "
                "double the width; a bottleneck's 4x expansion would leave most shortcut channels zero; "
                "valid: shortcut='conv' (option B) or 'avg' with block='bottleneck'"
            )
        if self.shortcut == "pad" and self.stem in ("deep", "deep_base"):
            raise ValueError(
                f"ResNetSpec {self.name!r}: shortcut='pad' (option A) goes with the paper's stems "
                "(classic, cifar); the deep stems come with timm's conv/avg shortcuts; "
                "valid: stem='classic' or 'cifar', or shortcut='conv'/'avg'"
            )
        if self.shortcut == "pad":
            narrowing = [(i + 1, cin, cout) for i, (cin, cout) in enumerate(self._stage_channels()) if cout < cin]
            if narrowing:
                stage, cin, cout = narrowing[0]
                raise ValueError(
                    f"ResNetSpec {self.name!r}: shortcut='pad' (option A) zero-pads channels, so no stage "
                    f"may be narrower than its input; layer{stage} takes {cin} channels and gives {cout}; "
                    "valid: widths that never shrink (stem_width <= widths[0]), or shortcut='conv'"
                )
        if self.preact and self.stem not in ("classic", "cifar"):
            raise ValueError(
                f"ResNetSpec {self.name!r}: preact=True supports stem='classic' or 'cifar' (timm's "
                f"resnetv2 layout), got stem={self.stem!r}"
            )
        if self.preact and self.shortcut == "avg":
            raise ValueError(
                f"ResNetSpec {self.name!r}: preact=True takes shortcut='conv' (a 1x1 conv of the "
                "pre-activated input, He et al. 2016) or 'pad'; the ResNet-D avg-pool shortcut is not "
                "a pre-activation shortcut here; valid: shortcut='conv' or 'pad'"
            )
        if self.block == "basic" and (self.groups, self.width_per_group) != (1, 64):
            raise ValueError(
                f"ResNetSpec {self.name!r}: block='basic' supports only groups=1 and "
                f"width_per_group=64 (got groups={self.groups}, width_per_group="
                f"{self.width_per_group}); valid: use block='bottleneck' for ResNeXt/wide variants"
            )
        if not isinstance(self.zero_init_residual, bool):
            raise bad("zero_init_residual", "True, False")
        if not isinstance(self.description, str):
            raise bad("description", "a str")

    def replace(self, **overrides: Any) -> ResNetSpec:
        """Return a copy with ``overrides`` applied, validated.

        Raises ``ValueError`` for an unknown field (listing the valid ones) or an invalid
        value (listing the valid values).
        """
        valid = field_names()
        unknown = sorted(set(overrides) - set(valid))
        if unknown:
            raise ValueError(
                f"unknown ResNetSpec field(s) {', '.join(unknown)} for {self.name!r}; "
                f"valid fields: {', '.join(valid)}"
            )
        return dataclasses.replace(self, **overrides)

    # ------------------------------------------------------------------ derived
    @property
    def depth(self) -> int:
        """Weighted layers: convs on the main path + the stem's first conv + fc (50 for resnet50).

        Counted as the papers do (a deep stem still counts as 1).
        """
        per_block = 2 if self.block == "basic" else 3
        return per_block * sum(self.layers) + 2

    @property
    def version(self) -> str | None:
        """"v2" (pre-activation), "v1" (stride on the 1x1) or "v1.5" (stride on the 3x3); None for
        post-activation basic blocks, where the stride placement does not exist."""
        if self.preact:
            return "v2"
        if self.block == "basic":
            return None
        return "v1" if self.stride_at == "1x1" else "v1.5"

    @property
    def stage_widths(self) -> tuple[int, ...]:
        """Planes of each stage: ``widths``, else torchvision's (64, 128, 256, 512) cut to the stages."""
        if self.widths is not None:
            return self.widths
        n = len(self.layers)
        return tuple(DEFAULT_WIDTHS[i] if i < len(DEFAULT_WIDTHS) else 512 * 2 ** (i - 3) for i in range(n))

    @property
    def stem_channels(self) -> tuple[int, ...]:
        """Output widths of the stem convs: classic (64,), deep (32, 32, 64), deep_base (64, 64, 128),
        cifar (the first stage's width,)."""
        default = self.stage_widths[0] if self.stem == "cifar" else STEM_DEFAULT_WIDTH[self.stem]
        w = self.stem_width if self.stem_width is not None else default
        return (w,) if self.stem in ("classic", "cifar") else (w, w, 2 * w)

    @property
    def total_stride(self) -> int:
        """Input pixels per pixel of the last feature map: the stem's stride x 2 per later stage
        (32 for ImageNet ResNets, 4 for the CIFAR layout, 8 for resnet18_cifar). Inputs smaller
        than this vanish before the last stage."""
        return STEM_STRIDE[self.stem] * 2 ** (len(self.layers) - 1)

    @property
    def natural_input_size(self) -> int:
        """The input size the variant is meant for: ``input_size``, else 32 with the cifar stem, else 224."""
        if self.input_size is not None:
            return self.input_size
        return 32 if self.stem == "cifar" else 224

    @property
    def inplanes(self) -> int:
        """Channels into layer1 (= the stem's last width)."""
        return self.stem_channels[-1]

    @property
    def width_label(self) -> str:
        """ResNeXt-style width: "{groups}x{width_per_group}d", e.g. "32x4d", "1x64d", "1x128d"."""
        return f"{self.groups}x{self.width_per_group}d"

    @property
    def num_features(self) -> int:
        """Channels out of the last stage (into the classifier): its planes x expansion."""
        return self.stage_widths[-1] * BLOCK_EXPANSION[self.block]

    def _stage_channels(self) -> list[tuple[int, int]]:
        """(input channels, output channels) of each stage: the stem's width into layer1, then
        each stage's planes x expansion."""
        expansion = BLOCK_EXPANSION[self.block]
        outs = [planes * expansion for planes in self.stage_widths]
        return list(zip([self.inplanes, *outs[:-1]], outs))

    @property
    def num_params(self) -> int:
        """Parameters (not buffers) of the model this spec builds with the default factory, in
        closed form: pure Python, no torch, no model built.

        Counting units (every conv is bias-free, every BN affine, as the modules are built):
        a k x k conv from ``c_in`` to ``c_out`` in ``g`` groups holds ``k^2 * c_in/g * c_out``;
        a BN over ``c`` channels holds ``2c`` (weight, bias; running stats are buffers); the
        classifier (``fc``, or v2's 1x1-conv ``head.fc``) holds ``C * classes + classes``.

        * Stem (``stem_channels`` ``c_1..c_m`` from 3 input channels): one conv per width, 7x7
          for ``classic``, 3x3 otherwise, each followed by a BN (the last one is the model's
          ``bn1``): ``sum_i (k_i^2 c_{i-1} c_i + 2 c_i)``. Pre-activation: the conv only (the
          first block's ``norm1`` normalises it).
        * Blocks (input ``c``, planes ``p``, output ``o = p * expansion``; the bottleneck's inner
          width ``w = int(p * width_per_group / 64) * groups``, as torchvision): basic
          ``9cp + 9p^2 + 2(p + p)``; bottleneck ``cw + 9w^2/groups + wo + 2(w + w + o)``.
          Post-activation: one BN after each conv, on its output channels. Pre-activation (v2):
          one BN before each conv, on its input channels (``2(c + p)`` basic, ``2(c + w + w)``
          bottleneck). Stride placement (``stride_at``) moves no parameter.
        * Shortcut: only the first block of a stage whose stride is 2 or whose width changes
          has one: ``conv``/``avg`` ``c * o + 2o`` (1x1 conv + BN; the avg-pool has none);
          v2's 1x1 conv ``c * o`` (no BN); ``pad`` (option A) none.
        * Head: post-activation ``fc``; v2 adds its final BN-ReLU ``norm`` (``2C``) before the head.

        Checked against ``sum(p.numel() for p in model.parameters())`` of the built module for
        every registered name (tests/registry/test_num_params.py).
        """
        expansion = BLOCK_EXPANSION[self.block]

        def conv(k: int, c_in: int, c_out: int, groups: int = 1) -> int:
            return k * k * (c_in // groups) * c_out

        def block(c_in: int, planes: int) -> int:
            out = planes * expansion
            if self.block == "basic":
                convs = [(3, c_in, planes, 1), (3, planes, planes, 1)]
            else:
                # The same expression as the blocks, float and all, so rounding agrees.
                width = int(planes * (self.width_per_group / 64.0)) * self.groups
                convs = [(1, c_in, width, 1), (3, width, width, self.groups), (1, width, out, 1)]
            normed = [c[1] for c in convs] if self.preact else [c[2] for c in convs]
            return sum(conv(*c) for c in convs) + sum(2 * c for c in normed)

        def shortcut(c_in: int, out: int) -> int:
            if self.shortcut == "pad":
                return 0
            return c_in * out + (0 if self.preact else 2 * out)

        total, c_in = 0, 3
        for i, width in enumerate(self.stem_channels):
            k = 7 if self.stem == "classic" and i == 0 else 3
            total += conv(k, c_in, width) + (0 if self.preact else 2 * width)
            c_in = width
        for i, (n, planes, (c_in, out)) in enumerate(zip(self.layers, self.stage_widths, self._stage_channels())):
            stride = 1 if i == 0 else 2
            total += block(c_in, planes) + (n - 1) * block(out, planes)
            if stride != 1 or c_in != out:
                total += shortcut(c_in, out)
        features = self.num_features
        if self.preact:
            total += 2 * features  # the final BN-ReLU ("norm")
        return total + features * self.num_classes + self.num_classes


def field_names() -> tuple[str, ...]:
    """The ``ResNetSpec`` field names, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(ResNetSpec))
