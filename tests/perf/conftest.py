"""pytest-benchmark set-up for tests/perf.

Benchmarks are **off by default** (pytest-benchmark's --benchmark-disable: each benchmarked
function runs once, as a smoke test), so the plain `pytest` run stays fast. They measure when
any of --benchmark-enable, --benchmark-json, --benchmark-save, --benchmark-autosave,
--benchmark-compare or --benchmark-only is given, or RESNET_BENCH_PERF=1:

    pytest tests/perf --benchmark-json=perf.json        # measure, write JSON (raw samples included)
    resnet-bench report perf.json                       # render it as our tables
    resnet-bench check --speed --baseline perf.json     # gate a later candidate against it

Env knobs (all optional): RESNET_BENCH_PERF_MODELS (comma-separated names, default resnet18),
RESNET_BENCH_PERF_DEVICE (cpu/cuda, default cuda when available), RESNET_BENCH_PERF_THREADS
(torch threads, default 1 on CPU: see bench/check.py on oversubscribed CPUs).

`machine_info` gains the device and software versions (torch, torchvision, CUDA, cuDNN, device
name, threads), so `check --baseline` can tell whether a saved file comes from this machine class.
"""

from __future__ import annotations

import os

import pytest

ENABLING_OPTIONS = ("benchmark_enable", "benchmark_json", "benchmark_save", "benchmark_autosave",
                    "benchmark_compare", "benchmark_only")


def perf_device() -> str:
    import torch

    wanted = os.environ.get("RESNET_BENCH_PERF_DEVICE", "").strip()
    if wanted:
        return wanted
    return "cuda" if torch.cuda.is_available() else "cpu"


def perf_threads(device: str) -> int | None:
    text = os.environ.get("RESNET_BENCH_PERF_THREADS", "").strip()
    if text:
        return int(text)
    return 1 if device == "cpu" else None


def benchmarks_requested(config) -> bool:
    if os.environ.get("RESNET_BENCH_PERF") == "1":
        return True
    return any(config.getoption(opt, default=None) for opt in ENABLING_OPTIONS)


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    bs = getattr(config, "_benchmarksession", None)
    if bs is not None and not benchmarks_requested(config):
        bs.disabled = True  # run each benchmarked function once, time nothing


def pytest_benchmark_update_machine_info(config, machine_info):
    from bench.core import env as E

    device = perf_device()
    info = E.collect(device, perf_threads(device))
    machine_info["resnet_bench_env"] = info
    for key in ("torch", "torchvision", "cuda", "cudnn", "device", "device_name", "threads"):
        machine_info[key] = info.get(key)
