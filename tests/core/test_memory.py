"""The memory estimate's shapes (bench.core.memory, a meta-device pass): what training keeps
equals fvcore's activation count (conv/linear outputs per image), an independent counter, and
the largest layer is at least the first conv's output."""

from __future__ import annotations

import pytest
import torch

import resnet_impl
from bench.core import memory


@pytest.mark.parametrize("name,size", [("resnet18", 64), ("resnet20", 32), ("resnetv2_50", 64)])
def test_kept_elements_equal_fvcores_activation_count(name, size):
    from fvcore.nn import ActivationCountAnalysis

    fp = memory.footprint(lambda: resnet_impl.create_model(name), size)
    model = resnet_impl.create_model(name).eval()
    acts = ActivationCountAnalysis(model, torch.zeros(1, 3, size, size))
    acts.unsupported_ops_warnings(False)
    acts.uncalled_modules_warnings(False)
    assert fp.kept_elements == acts.total()
    assert fp.params == resnet_impl.count_params(name)
    first = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    out_px = (size + 2 * first.padding[0] - first.kernel_size[0]) // first.stride[0] + 1
    assert fp.max_layer_elements >= first.out_channels * out_px ** 2
