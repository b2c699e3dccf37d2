"""The environment a measurement was taken in: versions, device, threads, code revision.

Every results file carries it, and `--resume` only continues a run whose environment
fingerprint matches (a sweep must not mix rows measured under different software).

Two scopes (``RunSettings.env_scope``). ``host``, a run on one machine: the fingerprint holds
the software and the hardware (FINGERPRINT_KEYS). ``cluster``, a run spread over the nodes of a
Ray cluster, which may differ in GPU or CPU: the fingerprint holds only what every node must
share (CLUSTER_KEYS: software, device kind, threads); each row carries the hardware and host
of the process that measured it.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.core.host import cpu_flags, cpu_has_native_bf16, cpu_model  # noqa: F401  (the host CPU)

_REPO = Path(__file__).resolve().parents[2]

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
#: What must be the same on every node of a cluster run (the rest of FINGERPRINT_KEYS is
#: hardware, recorded per row).
CLUSTER_KEYS = ("torch", "torchvision", "cuda", "cudnn", "device", "threads", "git_commit")
ENV_SCOPES = {"host": FINGERPRINT_KEYS, "cluster": CLUSTER_KEYS}


def git_commit(repo: Path = _REPO) -> str:
    """Short commit of the code being measured, with '+dirty' when the tree has changes. A copy
    of the tree without its git directory (a remote machine) reads RESNET_BENCH_GIT_COMMIT,
    which the sender sets, else 'unknown'."""
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
        return os.environ.get("RESNET_BENCH_GIT_COMMIT", "").strip() or "unknown"


def torchvision_version() -> str | None:
    """torchvision's ``__version__`` (with its local part, e.g. ``0.29.1+cu130``) without importing
    torchvision: its import pulls in torch._dynamo (about a second per measuring process). Read
    from the ``__version__ = '...'`` line of its version.py; imported only when that fails."""
    import importlib.util
    import re

    if "torchvision" in sys.modules:
        return sys.modules["torchvision"].__version__
    try:
        spec = importlib.util.find_spec("torchvision")
        if spec is None or not spec.submodule_search_locations:
            return None
        text = (Path(next(iter(spec.submodule_search_locations))) / "version.py").read_text()
        found = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", text, re.M)
        if found:
            return found.group(1)
    except (OSError, ValueError, ImportError):
        pass
    try:
        import torchvision
    except ImportError:
        return None
    return torchvision.__version__


def collect(device: str, threads: int | None = None) -> dict[str, Any]:
    """Describe the software and hardware for `device` ("cpu" or "cuda[:N]")."""
    import torch

    from bench.core import devices

    return {
        "torch": torch.__version__,
        "torchvision": torchvision_version(),
        **devices.backend(device).describe(device),  # device_name, cuda, cudnn
        "device": devices.backend(device).kind,
        "cpu_model": cpu_model(),
        "cpu_isa": torch.backends.cpu.get_cpu_capability(),  # what ATen's kernels dispatch to
        "cpu_bf16": cpu_has_native_bf16(),
        "cpu_count": os.cpu_count(),
        "threads": threads if threads is not None else torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": platform.node(),
        "host": platform.node(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "git_commit": git_commit(),
        "time_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def scope_keys(scope: str) -> tuple[str, ...]:
    """The environment keys a run of this scope ("host" or "cluster") holds fixed."""
    try:
        return ENV_SCOPES[scope]
    except KeyError:
        raise ValueError(f"unknown environment scope {scope!r}; valid: {', '.join(ENV_SCOPES)}") from None


def differences(expected: dict[str, Any], env: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
    """``key: expected -> found`` for each of `keys` where `env` differs from `expected`."""
    return [f"{k}: {expected.get(k)} -> {env.get(k)}" for k in keys if expected.get(k) != env.get(k)]


def fingerprint(env: dict[str, Any], extra: dict[str, Any] | None = None,
                keys: tuple[str, ...] = FINGERPRINT_KEYS) -> str:
    """A short hash of the comparable part of `env` (the `keys`: the whole FINGERPRINT_KEYS for
    a one-machine run, CLUSTER_KEYS for a cluster run) and of the timing settings in `extra`."""
    key = {k: env.get(k) for k in keys}
    if extra:
        key["extra"] = extra
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
