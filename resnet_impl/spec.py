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
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

# Valid choices, exported so that errors, CLIs and tests share one source of truth.
BLOCKS: tuple[str, ...] = ("basic", "bottleneck")
STRIDE_AT: tuple[str, ...] = ("1x1", "3x3")
STRIDE_AT_ALIASES: dict[str, str] = {"v1": "1x1", "v1.5": "3x3"}
STEMS: tuple[str, ...] = ("classic", "deep", "deep_base")
SHORTCUTS: tuple[str, ...] = ("conv", "avg")
# Width of the stem when ``stem_width`` is None (classic: the 7x7 conv; deep stems: the
# first two 3x3 convs, the third is twice as wide).
STEM_DEFAULT_WIDTH: dict[str, int] = {"classic": 64, "deep": 32, "deep_base": 64}
# Output channels of each block = planes * expansion.
BLOCK_EXPANSION: dict[str, int] = {"basic": 1, "bottleneck": 4}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _fmt(choices: tuple[str, ...]) -> str:
    return ", ".join(repr(c) for c in choices)


@dataclass(frozen=True)
class ResNetSpec:
    """Frozen description of one ResNet variant; validated on creation.

    Build a model with ``ResNet(spec)``; derive a variant with ``spec.replace(**overrides)``.
    """

    # Registry name, e.g. "resnet50d"; follows torchvision / timm so users recognise it.
    name: str
    # Residual block: "basic" (two 3x3 convs, ResNet-18/34) or "bottleneck" (1x1-3x3-1x1, 50+).
    block: str
    # Number of blocks in each of the 4 stages (layer1..layer4), e.g. (3, 4, 6, 3) for 50 layers.
    layers: tuple[int, int, int, int]
    # Where the downsampling bottleneck puts stride 2: "1x1" = v1 (He et al. 2015),
    # "3x3" = v1.5 (torchvision/NVIDIA). Aliases "v1"/"v1.5" accepted. BasicBlock: always its
    # first 3x3, whatever this says.
    stride_at: str = "3x3"
    # Stem: "classic" (7x7/2 conv), "deep" (ResNet-C, 3x 3x3 convs w-w-2w), "deep_base" (same,
    # w=64). All followed by BN, ReLU, 3x3/2 max-pool: output stride 4.
    stem: str = "classic"
    # Stem width w; None = the stem's default (classic 64, deep 32, deep_base 64).
    stem_width: int | None = None
    # Shortcut of shape-changing blocks: "conv" (1x1 conv with stride, BN) or "avg" (ResNet-D:
    # 2x2 avg-pool with stride, then 1x1 conv stride 1, BN).
    shortcut: str = "conv"
    # Cardinality: groups of the bottleneck's 3x3 conv (ResNeXt "32x4d" -> 32). Basic: 1 only.
    groups: int = 1
    # Width of each group at planes=64 (ResNeXt "32x4d" -> 4; wide "_2" -> 128). Basic: 64 only.
    width_per_group: int = 64
    # Classifier outputs (ImageNet: 1000).
    num_classes: int = 1000
    # Zero the last BN weight of every block, so each residual branch starts as identity.
    zero_init_residual: bool = False
    # One line: what the name means and where it comes from.
    description: str = ""

    # ------------------------------------------------------------------ validation
    def __post_init__(self) -> None:
        # Normalise before validating (frozen: go through object.__setattr__).
        if isinstance(self.stride_at, str) and self.stride_at in STRIDE_AT_ALIASES:
            object.__setattr__(self, "stride_at", STRIDE_AT_ALIASES[self.stride_at])
        if isinstance(self.layers, list):
            object.__setattr__(self, "layers", tuple(self.layers))
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
            or len(self.layers) != 4
            or not all(_is_int(n) and n > 0 for n in self.layers)
        ):
            raise bad("layers", "a tuple of 4 positive ints, e.g. (3, 4, 6, 3)")
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
        """"v1" (stride on the 1x1) or "v1.5" (stride on the 3x3); None for basic blocks,
        where the distinction does not exist."""
        if self.block == "basic":
            return None
        return "v1" if self.stride_at == "1x1" else "v1.5"

    @property
    def stem_channels(self) -> tuple[int, ...]:
        """Output widths of the stem convs: classic (64,), deep (32, 32, 64), deep_base (64, 64, 128)."""
        w = self.stem_width if self.stem_width is not None else STEM_DEFAULT_WIDTH[self.stem]
        return (w,) if self.stem == "classic" else (w, w, 2 * w)

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
        """Channels out of layer4 (into the classifier): 512 * expansion."""
        return 512 * BLOCK_EXPANSION[self.block]


def field_names() -> tuple[str, ...]:
    """The ``ResNetSpec`` field names, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(ResNetSpec))
