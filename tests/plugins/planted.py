"""A test-only variant with a planted slowdown, for proving the speed gate (results/speed_gate/).

Registered when ``RESNET_BENCH_PLUGINS=tests.plugins.planted``:

- ``planted_resnet18``: resnet18 whose first block of layer1 is followed by one extra 3x3
  convolution from 64 to ``EXTRA_WIDTH`` channels. Its weights are zero and its output is
  reduced and added back, so the logits are exactly resnet18's (same seed, same weights); only
  the cost changes. ``EXTRA_WIDTH = 0`` means no extra op at all: the network is resnet18.

The cost is set by the constant ``EXTRA_WIDTH`` below (what a code change edits: the speed
gate's ``--base-ref`` path compares a commit with 0 against a working tree with N), or, when
set, by the env var ``RESNET_BENCH_PLANTED_WIDTH`` (what a run-to-run comparison such as
``pytest --benchmark-compare`` changes between its baseline and candidate runs). At 64 px the
extra conv runs on a 16x16 map: 64 * 9 * 256 = 147,456 MACs per output channel, against
~148 M MACs for the whole resnet18; run results/speed_gate/run_proof.py to calibrate the
width to a measured slowdown.
"""

from __future__ import annotations

import os

import torch
from torch import nn

import resnet_impl
from resnet_impl import ResNet

NAME = "planted_resnet18"
WIDTH_ENV = "RESNET_BENCH_PLANTED_WIDTH"
EXTRA_WIDTH = 0  # output channels of the planted conv; 0 = none


def extra_width() -> int:
    text = os.environ.get(WIDTH_ENV, "").strip()
    return int(text) if text else EXTRA_WIDTH


class PlantedBlock(nn.Module):
    """`block` followed by a zero-weight 3x3 conv whose (zero) result is added back."""

    def __init__(self, block: nn.Module, channels: int, width: int):
        super().__init__()
        self.block = block
        self.extra = nn.Conv2d(channels, width, kernel_size=3, padding=1, bias=False)
        nn.init.zeros_(self.extra.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return y + self.extra(y).sum(dim=1, keepdim=True)  # the sum is 0: output unchanged


def build(spec) -> nn.Module:
    model = ResNet(spec)
    width = extra_width()
    if width > 0:
        channels = model.layer1[0].conv1.in_channels  # basic block: in == out channels
        model.layer1[0] = PlantedBlock(model.layer1[0], channels, width)
    return model


if NAME not in resnet_impl.list_models(NAME):
    resnet_impl.register_model(
        resnet_impl.get_spec("resnet18").replace(
            name=NAME, description=f"test-only: resnet18 + a planted 3x3 conv of {extra_width()} channels"),
        factory=build,
    )
