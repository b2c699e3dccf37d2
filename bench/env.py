"""The environment a measurement was taken in: versions, device, threads, code revision.

Every results file carries it, and `--resume` only continues a run whose environment
fingerprint matches (a sweep must not mix rows measured under different software).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

_REPO = Path(__file__).resolve().parent.parent

# Keys that must match for rows to be comparable (and for --resume to continue a run).
FINGERPRINT_KEYS = (
    "torch",
    "torchvision",
    "cuda",
    "cudnn",
    "device",
    "device_name",
    "cpu_model",
    "cpu_isa",
    "threads",
    "git_commit",
)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux) with its family/model numbers (a VM may
    report just "AMD EPYC": the family tells Zen 3 from Zen 5), else platform.processor()."""
    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key in ("model name", "cpu family", "model") and key not in info:
                info[key] = value.strip()
            if not line.strip() and info:
                break
    except OSError:
        pass
    if "model name" in info:
        extra = f" (family {info['cpu family']}, model {info['model']})" if "cpu family" in info else ""
        return info["model name"] + extra
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (Linux; empty elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX-BF16: without either, bf16 autocast on CPU is several times slower
    than fp32 (REFERENCE.md: ~5x on an AVX2 EPYC); with them it can pay off."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def git_commit(repo: Path = _REPO) -> str:
    """Short commit of the code being measured, with '+dirty' when the tree has changes."""
    try:
        sha = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def device_name(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return cpu_model()


def collect(device: str, threads: int | None = None) -> dict[str, Any]:
    """Describe the software and hardware for `device` ("cpu" or "cuda[:N]")."""
    import torch
    import torchvision

    cuda = torch.version.cuda if torch.cuda.is_available() else None
    cudnn = None
    if device.startswith("cuda") and torch.backends.cudnn.is_available():
        cudnn = str(torch.backends.cudnn.version())
    return {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cuda": cuda if device.startswith("cuda") else None,
        "cudnn": cudnn,
        "device": device.split(":")[0],
        "device_name": device_name(device),
        "cpu_model": cpu_model(),
        "cpu_isa": torch.backends.cpu.get_cpu_capability(),  # what ATen's kernels dispatch to
        "cpu_bf16": cpu_has_native_bf16(),
        "cpu_count": os.cpu_count(),
        "threads": threads if threads is not None else torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": platform.node(),
        "git_commit": git_commit(),
        "time_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def fingerprint(env: dict[str, Any], extra: dict[str, Any] | None = None) -> str:
    """A short hash of the comparable part of `env` (and of the timing settings in `extra`)."""
    key = {k: env.get(k) for k in FINGERPRINT_KEYS}
    if extra:
        key["extra"] = extra
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
