"""bench.core.devices: the one place that knows what differs between devices."""

from __future__ import annotations

import pytest
import torch

from bench.core import devices, modes
from bench.core.case import Case
from bench.errors import UserError


def test_cpu_capabilities_and_reasons():
    cpu = devices.backend("cpu")
    caps = cpu.capabilities("cpu")
    assert "bf16_autocast" in caps and not caps & {"fp16_autocast", "tf32", "cuda_graphs"}
    assert "CUDA" in cpu.missing_reason("fp16_autocast", "cpu")


def test_cuda_switches_set_and_restore_tf32_without_a_gpu():
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    with devices.backend("cuda").precision_switches(tf32=True):
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        assert torch.backends.cudnn.benchmark
    with devices.backend("cuda:1").precision_switches(tf32=False):
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
            torch.backends.cudnn.benchmark) == before


def test_resolve_device():
    assert devices.resolve_device("cpu") == "cpu"
    assert devices.resolve_device("auto") in devices.kinds()
    with pytest.raises(UserError, match="valid: auto, cpu, cuda"):
        devices.resolve_device("tpu")
    with pytest.raises(ValueError, match="unknown device"):
        devices.backend("tpu")


def test_a_new_device_kind_is_one_subclass(monkeypatch):
    class Toy(devices.CpuDevice):  # host clock and memory; claims fp16 autocast
        kind = "toy"

        def capabilities(self, device):
            return super().capabilities(device) | {"fp16_autocast"}

    monkeypatch.setitem(devices._BACKENDS, "toy", Toy())
    case = Case("resnet18", "infer", 1, 32, "contiguous", "fp16", "none", "toy")
    assert modes.skip_reason(case) is None  # the mode's rule reads the device's capabilities
    assert modes.skip_reason(Case("resnet18", "infer", 1, 32, "contiguous", "tf32", "none", "toy")) == (
        "TF32 is a CUDA tensor-core mode; there is no TF32 on CPU")
    with pytest.raises(ValueError, match="already registered"):
        devices.register_device(Toy())


def test_is_oom():
    assert devices.is_oom(torch.OutOfMemoryError("CUDA out of memory"))
    assert devices.is_oom(RuntimeError("... out of memory ..."))
    assert not devices.is_oom(ValueError("shape mismatch"))
