"""NVML: the absent path (this CPU machine), and the arithmetic of the energy and clock
trackers against a fake NVML with planted counters (closed-form joules, watts, images)."""

from __future__ import annotations

import types

import pytest

from bench.core import devices, nvml, trackers
from bench.core.case import Case
from bench.results import columns

CASE = Case("resnet18", "infer", 8, 32, "contiguous", "fp32", "none", "cpu")


class FakeNVMLError(Exception):
    pass


def fake_nvml(energy_mj, *, mask=0, violations=None, energy_supported=True):
    """A pynvml stand-in: `energy_mj` is a callable giving the counter at each read."""
    violations = violations or {}

    def energy(handle):
        if not energy_supported:
            raise FakeNVMLError("Not Supported")
        return energy_mj()

    def violation(handle, policy):
        if policy not in violations:
            raise FakeNVMLError("Not Supported")
        return types.SimpleNamespace(violationTime=violations[policy]())

    return types.SimpleNamespace(
        NVMLError=FakeNVMLError, NVML_CLOCK_SM=1, NVML_PERF_POLICY_POWER=0, NVML_PERF_POLICY_THERMAL=1,
        nvmlInit=lambda: None,
        nvmlDeviceGetTotalEnergyConsumption=energy,
        nvmlDeviceGetClockInfo=lambda h, clock: 1755,
        nvmlDeviceGetMaxClockInfo=lambda h, clock: 1980,
        nvmlDeviceGetEnforcedPowerLimit=lambda h: 700_000,
        nvmlDeviceGetMemoryInfo=lambda h: types.SimpleNamespace(used=3 * 2**30),
        nvmlSystemGetDriverVersion=lambda: b"580.95.05",
        nvmlDeviceGetCurrentClocksEventReasons=lambda h: mask,
        nvmlClocksEventReasonGpuIdle=0x1, nvmlClocksEventReasonApplicationsClocksSetting=0x2,
        nvmlClocksEventReasonSwPowerCap=0x4, nvmlClocksEventReasonHwSlowdown=0x8,
        nvmlClocksEventReasonSyncBoost=0x10, nvmlClocksEventReasonSwThermalSlowdown=0x20,
        nvmlClocksEventReasonHwThermalSlowdown=0x40, nvmlClocksEventReasonHwPowerBrakeSlowdown=0x80,
        nvmlClocksEventReasonDisplayClockSetting=0x100,
        nvmlDeviceGetViolationStatus=violation,
    )


@pytest.fixture(autouse=True)
def fresh_nvml():
    nvml.reset()
    yield
    nvml.reset()


def sequence(*values):
    it = iter(values)
    return lambda: next(it)


def test_without_nvml_the_reason_is_given(monkeypatch):
    def missing():
        raise ImportError("No module named 'pynvml'")

    monkeypatch.setattr(nvml, "_import", missing)
    with pytest.raises(nvml.NvmlUnavailable, match=r"nvidia-ml-py \(module pynvml\) is not installed"):
        nvml.load()


def test_a_failing_nvml_init_is_a_reason_not_a_crash(monkeypatch):
    def init():
        raise FakeNVMLError("NVML Shared Library Not Found")

    fake = fake_nvml(sequence(0))
    fake.nvmlInit = init
    monkeypatch.setattr(nvml, "_import", lambda: fake)
    with pytest.raises(nvml.NvmlUnavailable, match="nvmlInit failed .NVML Shared Library Not Found"):
        nvml.load()
    with pytest.raises(nvml.NvmlUnavailable):  # cached: not retried per case
        nvml.load()


def test_this_machine_without_nvml_gives_a_reason():
    try:
        nvml.load()
    except nvml.NvmlUnavailable as e:
        assert "pynvml" in str(e) or "nvmlInit failed" in str(e)
    else:
        pytest.skip("NVML works on this machine")


def test_monitor_reads_and_converts_the_counters():
    mon = nvml.Monitor(fake_nvml(sequence(123_456), mask=0x4 | 0x1), handle="h")
    assert mon.energy_mj() == 123_456
    assert mon.sm_clock_mhz() == 1755 and mon.sm_clock_max_mhz() == 1980
    assert mon.power_limit_w() == 700.0  # NVML gives milliwatts
    assert mon.mem_used_mb() == 3 * 1024.0
    assert mon.driver() == "580.95.05"  # older bindings return bytes
    assert mon.throttle_reasons() == ("gpu_idle", "sw_power_cap")
    assert mon.violation_ns() == {}  # neither policy supported: nothing made up


def test_an_unsupported_energy_counter_is_a_reason():
    mon = nvml.Monitor(fake_nvml(sequence(0), energy_supported=False), handle="h")
    with pytest.raises(nvml.NvmlUnavailable, match="total-energy counter"):
        mon.energy_mj()
    assert mon.optional("energy_mj") is None


def with_monitor(monkeypatch, mon):
    monkeypatch.setattr(devices.CpuDevice, "monitor", lambda self, device: (mon, ""))


def test_energy_tracker_closed_form(monkeypatch):
    # counter 1,000,000 mJ before the samples, 1,600,000 mJ after; 2.0 s between the reads;
    # 50 calls of batch 8: 600 J, 300 W, 600 / 400 = 1.5 J per image
    with_monitor(monkeypatch, nvml.Monitor(fake_nvml(sequence(1_000_000, 1_600_000)), "h"))
    t = trackers.Energy()
    t.clock = sequence(10.0, 12.0)
    t.start(CASE)
    t.samples_begin(CASE)
    t.samples_end(CASE, 50)
    out = t.stop(CASE)
    assert out == {"energy_j": 600.0, "energy_window_s": 2.0, "power_w_mean": 300.0,
                   "energy_j_per_image": 1.5, "energy_note": ""}
    row = columns.derive({**out, "latency_ms_p50": 20.0, "batch_size": 8})  # 400 img/s
    assert row["throughput_ips_per_w"] == pytest.approx(400 / 300)


def test_energy_tracker_without_a_counter_is_empty_with_the_reason():
    t = trackers.Energy()
    t.start(CASE)  # the real CPU device: no counter
    t.samples_begin(CASE)
    t.samples_end(CASE, 10)
    out = t.stop(CASE)
    assert out["energy_j_per_image"] is None and out["power_w_mean"] is None
    assert "no energy counter" in out["energy_note"] and "cpu" in out["energy_note"]


def test_a_counter_that_does_not_advance_is_not_a_zero_energy(monkeypatch):
    with_monitor(monkeypatch, nvml.Monitor(fake_nvml(sequence(5_000, 5_000)), "h"))
    t = trackers.Energy()
    t.clock = sequence(1.0, 1.2)
    t.start(CASE)
    t.samples_begin(CASE)
    t.samples_end(CASE, 10)
    out = t.stop(CASE)
    assert out["energy_j"] is None and "did not advance" in out["energy_note"]


@pytest.mark.parametrize("mask,power_ns,throttled", [
    (0x0, (100, 100), False),  # no reason, no violation time: clean
    (0x1, (100, 100), False),  # idle is not throttling
    (0x4, (100, 100), True),  # software power cap at a read
    (0x0, (100, 250), True),  # power policy held the clocks down between the reads
])
def test_gpu_clock_tracker_flags_throttling(monkeypatch, mask, power_ns, throttled):
    fake = fake_nvml(sequence(0), mask=mask, violations={0: sequence(*power_ns)})
    with_monitor(monkeypatch, nvml.Monitor(fake, "h"))
    t = trackers.GpuClocks()
    t.start(CASE)
    t.samples_begin(CASE)
    t.samples_end(CASE, 10)
    out = t.stop(CASE)
    assert out["gpu_throttled"] is throttled and out["gpu_sm_clock_mhz"] == 1755
    assert out["gpu_throttle_reasons"] == {0x0: "none", 0x1: "gpu_idle", 0x4: "sw_power_cap"}[mask]


def test_runner_rows_carry_planted_energy(monkeypatch):
    """Through the whole case runner on CPU with a planted counter of exactly 250 W on a fake
    clock: power 250 W, and energy per image = 250 W x window / (samples x batch)."""
    from bench.core.timing import TimingConfig
    from bench.execute.base import RunSettings
    from bench.execute.case_runner import CaseRunner

    now = [100.0]

    def clock():
        now[0] += 0.5
        return now[0]

    with_monitor(monkeypatch, nvml.Monitor(fake_nvml(lambda: int(round(250.0 * now[0] * 1000))), "h"))
    monkeypatch.setattr(trackers.Energy, "clock", staticmethod(clock))
    settings = RunSettings(timing=TimingConfig(min_samples=3, max_time_s=0.2, min_time_s=0.0, warmup_max_s=1.0),
                           isolate=False, profile=False, memory_pass_steps=0)
    row = CaseRunner(settings).run(Case("resnet18", "infer", 2, 32, "contiguous", "fp32", "none", "cpu"))
    assert row["status"] == "ok", row["error"]
    # the counter is read before the clock at each read: 250 W x (0.5 s between clock reads)
    assert row["power_w_mean"] == pytest.approx(250.0)
    assert row["energy_j_per_image"] == pytest.approx(row["energy_j"] / (row["n_samples"] * 2))
    assert row["throughput_ips_per_w"] == pytest.approx(row["throughput_ips"] / 250.0)


def fake_props(uuid="5f2b1c3e-aaaa-bbbb-cccc-0123456789ab"):
    return types.SimpleNamespace(uuid=uuid, pci_domain_id=0, pci_bus_id=0x17, pci_device_id=0, name="Fake GPU",
                                 multi_processor_count=132, total_memory=80 * 2**30, major=9, minor=0)


def test_a_torch_device_finds_its_nvml_handle_by_uuid_then_pci(monkeypatch):
    import torch

    fake = fake_nvml(sequence(0))
    by_uuid, by_pci = {}, {}
    fake.nvmlDeviceGetHandleByUUID = lambda u: by_uuid[u]
    fake.nvmlDeviceGetHandleByPciBusId = lambda p: by_pci[p]
    monkeypatch.setattr(nvml, "_import", lambda: fake)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: fake_props())
    by_uuid["GPU-5f2b1c3e-aaaa-bbbb-cccc-0123456789ab"] = "handle-by-uuid"  # NVML's spelling has the prefix
    assert nvml.monitor_for("cuda:0").handle == "handle-by-uuid"
    by_uuid.clear()
    by_pci["00000000:17:00.0"] = "handle-by-pci"
    assert nvml.monitor_for("cuda:0").handle == "handle-by-pci"
    by_pci.clear()
    with pytest.raises(nvml.NvmlUnavailable, match="no NVML device matches torch's cuda:0"):
        nvml.monitor_for("cuda:0")


def test_cuda_environment_columns_from_torch_and_nvml(monkeypatch):
    import torch

    cuda = devices.backend("cuda")
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda d: fake_props())
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d: "Fake GPU")
    monkeypatch.setattr(type(cuda), "monitor", lambda self, device: (nvml.Monitor(fake_nvml(sequence(0)), "h"), ""))
    d = cuda.describe("cuda")
    assert {k: d[k] for k in ("device_name", "gpu_sm_count", "gpu_mem_total_mb", "gpu_cc", "gpu_driver",
                              "gpu_sm_clock_max_mhz", "gpu_power_limit_w")} == {
        "device_name": "Fake GPU", "gpu_sm_count": 132, "gpu_mem_total_mb": 80 * 1024.0, "gpu_cc": "9.0",
        "gpu_driver": "580.95.05", "gpu_sm_clock_max_mhz": 1980, "gpu_power_limit_w": 700.0}
    assert set(d) <= {c.name for c in columns.SCHEMA}  # every environment key is a column
    monkeypatch.setattr(type(cuda), "monitor", lambda self, device: (None, "no NVML here"))
    d = cuda.describe("cuda")
    assert d["gpu_driver"] is None and d["gpu_power_limit_w"] is None and d["gpu_sm_count"] == 132
