"""Test-only models that misbehave, registered when RESNET_BENCH_PLUGINS=tests.plugins.faulty.

Each is resnet18's spec under another name, with a factory that wraps the real network:
- test_abort: the process aborts (SIGABRT) in forward, like a segfaulting kernel;
- test_hang: forward sleeps for an hour, like a deadlock;
- test_oom: forward raises torch.OutOfMemoryError for batches larger than 2, like a GPU that
  cannot fit the batch (a simulated OOM: the CPU has no allocator limit to hit);
- test_error: forward raises ValueError.
"""

import os
import time

import torch
from torch import nn

import resnet_impl
from resnet_impl import ResNet


class _Faulty(nn.Module):
    def __init__(self, spec, fault):
        super().__init__()
        self.net = ResNet(spec)
        self.fc = self.net.fc  # the runner reads num_classes from .fc
        self.fault = fault

    def forward(self, x):
        if torch.jit.is_tracing():  # let the profiler trace the real network
            return self.net(x)
        if self.fault == "abort":
            os.abort()
        if self.fault == "hang":
            time.sleep(3600)
        if self.fault == "oom" and x.shape[0] > 2:
            raise torch.OutOfMemoryError(
                f"CUDA out of memory (simulated by tests.plugins.faulty): batch {x.shape[0]} > 2")
        if self.fault == "error":
            raise ValueError("deliberate failure in test_error's forward")
        return self.net(x)


for _fault in ("abort", "hang", "oom", "error"):
    _name = f"test_{_fault}"
    if _name not in resnet_impl.list_models(_name):
        resnet_impl.register_model(
            resnet_impl.get_spec("resnet18").replace(name=_name, description=f"test-only: {_fault} in forward"),
            factory=lambda spec, f=_fault: _Faulty(spec, f),
        )
