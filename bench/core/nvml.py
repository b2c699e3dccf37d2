"""NVML through nvidia-ml-py (module ``pynvml``): energy, clocks, throttling, memory and driver
of an NVIDIA GPU, imported lazily and optional.

Where pynvml is not installed, the NVML library is absent (CPU-only machines, other GPUs) or
``nvmlInit`` fails, :func:`monitor_for` raises :class:`NvmlUnavailable` with the reason; the
harness then leaves the NVML columns empty and records that reason (``energy_note``).

The counters read (units as NVML gives them, converted where named):

- ``nvmlDeviceGetTotalEnergyConsumption``: millijoules consumed since the driver was loaded
  (Volta and newer; not on MIG instances) -- :meth:`Monitor.energy_mj`;
- ``nvmlDeviceGetClockInfo`` / ``nvmlDeviceGetMaxClockInfo`` with ``NVML_CLOCK_SM``: MHz;
- ``nvmlDeviceGetCurrentClocksEventReasons`` (older bindings: ``...ClocksThrottleReasons``):
  why the clocks are below their maximum now, a bitmask -- :meth:`Monitor.throttle_reasons`;
- ``nvmlDeviceGetViolationStatus`` for ``NVML_PERF_POLICY_POWER`` and ``_THERMAL``: the
  cumulative time (ns) the power or thermal policy held the clocks down -- read before and
  after a window, a difference above zero means throttling happened inside it;
- ``nvmlDeviceGetEnforcedPowerLimit``: milliwatts; ``nvmlDeviceGetMemoryInfo().used``: bytes of
  the whole GPU (every process and CUDA context).

A torch device is matched to its NVML handle by UUID, else by PCI bus id (torch's device order
and NVML's may differ). Tests plant a fake module through :func:`_import`.
"""

from __future__ import annotations

from typing import Any

_MIB = 2**20
_state: dict[str, Any] = {}

#: (NVML reason constant suffix, our name, whether it means the clocks were held down)
REASONS = (
    ("GpuIdle", "gpu_idle", False),
    ("ApplicationsClocksSetting", "applications_clocks", False),
    ("SwPowerCap", "sw_power_cap", True),
    ("HwSlowdown", "hw_slowdown", True),
    ("SyncBoost", "sync_boost", False),
    ("SwThermalSlowdown", "sw_thermal_slowdown", True),
    ("HwThermalSlowdown", "hw_thermal_slowdown", True),
    ("HwPowerBrakeSlowdown", "hw_power_brake_slowdown", True),
    ("DisplayClockSetting", "display_clock_setting", False),
)
THROTTLING = frozenset(name for _, name, held in REASONS if held)
POLICIES = (("NVML_PERF_POLICY_POWER", "power"), ("NVML_PERF_POLICY_THERMAL", "thermal"))


class NvmlUnavailable(Exception):
    """NVML, or one of its counters, cannot be read here; the message says why."""


def _import():
    import pynvml

    return pynvml


def load():
    """The initialised pynvml module, or NvmlUnavailable(reason). The outcome is cached."""
    if "nv" in _state:
        return _state["nv"]
    if "error" not in _state:
        try:
            nv = _import()
        except ImportError:
            _state["error"] = "nvidia-ml-py (module pynvml) is not installed"
        else:
            try:
                nv.nvmlInit()
                _state["nv"] = nv
                return nv
            except Exception as e:  # NVMLError_LibraryNotFound, _DriverNotLoaded, ...
                _state["error"] = f"NVML is not usable here: nvmlInit failed ({e})"
    raise NvmlUnavailable(_state["error"])


def reset() -> None:
    """Forget the cached outcome of :func:`load` (tests)."""
    _state.clear()


def monitor_for(device: str) -> Monitor:
    """The :class:`Monitor` of the torch CUDA device `device` ("cuda", "cuda:1")."""
    import torch

    nv = load()
    d = torch.device(device)
    index = d.index if d.index is not None else torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    tried = []
    uuid = str(getattr(props, "uuid", "") or "")
    if uuid:
        tried.append(f"uuid {uuid}")
        for name in (uuid, "GPU-" + uuid):
            try:
                return Monitor(nv, nv.nvmlDeviceGetHandleByUUID(name))
            except Exception:
                continue
    if hasattr(props, "pci_bus_id"):
        pci = f"{props.pci_domain_id:08x}:{props.pci_bus_id:02x}:{props.pci_device_id:02x}.0"
        tried.append(f"PCI {pci}")
        try:
            return Monitor(nv, nv.nvmlDeviceGetHandleByPciBusId(pci))
        except Exception:
            pass
    raise NvmlUnavailable(f"no NVML device matches torch's {device} ({', '.join(tried) or 'no uuid or PCI id'})")


class Monitor:
    """The NVML counters of one GPU. Methods raise NvmlUnavailable where NVML cannot read a
    counter on this GPU (``NVMLError_NotSupported``, ...); ``optional`` reads give None."""

    def __init__(self, nv, handle):
        self.nv = nv
        self.handle = handle

    def _read(self, what: str, fn, *args):
        try:
            return fn(self.handle, *args)
        except self.nv.NVMLError as e:
            raise NvmlUnavailable(f"NVML cannot read {what} on this GPU ({e})") from None

    def optional(self, method: str, *args) -> Any:
        """``getattr(self, method)(*args)``, None where NVML cannot read it."""
        try:
            return getattr(self, method)(*args)
        except NvmlUnavailable:
            return None

    def energy_mj(self) -> int:
        """Energy consumed since the driver was loaded, millijoules (monotone)."""
        return int(self._read("the total-energy counter", self.nv.nvmlDeviceGetTotalEnergyConsumption))

    def sm_clock_mhz(self) -> int:
        return int(self._read("the SM clock", self.nv.nvmlDeviceGetClockInfo, self.nv.NVML_CLOCK_SM))

    def sm_clock_max_mhz(self) -> int:
        return int(self._read("the maximum SM clock", self.nv.nvmlDeviceGetMaxClockInfo, self.nv.NVML_CLOCK_SM))

    def power_limit_w(self) -> float:
        return self._read("the power limit", self.nv.nvmlDeviceGetEnforcedPowerLimit) / 1000.0

    def mem_used_mb(self) -> float:
        return self._read("memory info", self.nv.nvmlDeviceGetMemoryInfo).used / _MIB

    def driver(self) -> str:
        try:
            v = self.nv.nvmlSystemGetDriverVersion()
        except self.nv.NVMLError as e:
            raise NvmlUnavailable(f"NVML cannot read the driver version ({e})") from None
        return v.decode() if isinstance(v, bytes) else str(v)

    def throttle_reasons(self) -> tuple[str, ...]:
        """Why the clocks are below their maximum now (names from :data:`REASONS`); () = none."""
        fn = getattr(self.nv, "nvmlDeviceGetCurrentClocksEventReasons", None) or \
            self.nv.nvmlDeviceGetCurrentClocksThrottleReasons
        mask = int(self._read("the clock event reasons", fn))
        names = []
        for suffix, name, _ in REASONS:
            bit = getattr(self.nv, "nvmlClocksEventReason" + suffix, None)
            if bit is None:
                bit = getattr(self.nv, "nvmlClocksThrottleReason" + suffix, 0)
            if bit and mask & int(bit):
                names.append(name)
        return tuple(names)

    def violation_ns(self) -> dict[str, int]:
        """Cumulative time (ns) the power and thermal policies held the clocks down, for the
        policies this GPU reports."""
        out = {}
        for const, name in POLICIES:
            policy = getattr(self.nv, const, None)
            if policy is None:
                continue
            try:
                out[name] = int(self.nv.nvmlDeviceGetViolationStatus(self.handle, policy).violationTime)
            except self.nv.NVMLError:
                continue
        return out
