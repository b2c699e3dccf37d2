"""Shared fixtures. Tests mirror the package: core/, execute/, store/, gates/, validation/,
cli/, registry/ (resnet_impl); gpu/ needs CUDA; perf/ holds the pytest-benchmark benchmarks;
fixtures/ holds test-only plugin models (RESNET_BENCH_PLUGINS=tests.fixtures.faulty, ...)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def one_torch_thread():
    """1 torch thread for the module (the machine's cores are shared); restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def faulty_models():
    """The test-only faulty models (tests/fixtures/faulty.py) registered in this process for
    one test, then removed, so later tests see the real registry."""
    from tests.fixtures import faulty

    faulty.register()
    yield faulty.NAMES
    faulty.unregister()
