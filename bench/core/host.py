"""The host machine this process runs on: the CPU's model and feature flags, and this
process's peak resident memory. Linux reads /proc; elsewhere the portable fallbacks."""

from __future__ import annotations

import platform
import sys
from pathlib import Path


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
    than fp32; with them it can pay off."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def peak_rss_bytes() -> int:
    """Peak RSS of this process in bytes: Linux VmHWM (resettable through /proc/self/clear_refs),
    else getrusage's ru_maxrss (monotone), psutil's peak_wset on Windows."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:  # Windows
        import psutil

        info = psutil.Process().memory_info()
        return int(getattr(info, "peak_wset", info.rss))
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(ru) if sys.platform == "darwin" else int(ru) * 1024


def physical_cores() -> int:
    """Physical cores among the CPUs this process may run on (its affinity mask): SMT siblings
    (hyperthreads) of one core count once (Linux sysfs topology; elsewhere the usable CPUs)."""
    import os

    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
    cores = set()
    for cpu in cpus:
        base = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add((base.joinpath("physical_package_id").read_text().strip(),
                       base.joinpath("core_id").read_text().strip()))
        except OSError:
            cores.add(("cpu", str(cpu)))
    return max(1, len(cores))


#: How many cores the default thread count leaves to the harness, the OS and other tenants.
RESERVED_CORES = 1


def default_threads() -> tuple[int, str]:
    """The thread count a CPU measurement uses when --threads is not given, and the rule, as
    it is recorded in every row (``threads_rule``).

    All physical cores this process may use but one. torch's default takes every physical
    core; then any other runnable process (the harness's own parent, a daemon, a neighbour's
    job on a shared VM) deschedules one of torch's threads, and every parallel region waits
    at its barrier for it: on this project's 2-core VM resnet50 went from 40 ms to 2.6 s per
    call that way. One core left free absorbs that; on a machine with many cores it costs
    one core's share (results/threads/ has the measurement behind the rule)."""
    cores = physical_cores()
    n = max(1, cores - RESERVED_CORES)
    return n, f"{n} = {cores} physical core(s) this process may use - {RESERVED_CORES} left to the OS and other work"
