"""The Ray executor on one local Ray cluster (shared by this module, 2 CPUs and 2 fake GPUs):
one GPU per group, rows streamed back as they finish, a crashing and a hanging group become
the local executor's rows while the others go on, no retries, a killed driver's run resumes,
the cluster listens on loopback only."""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'resnet-bench[ray]'")

from _cli import FAST, REPO, consistent, env_with_plugins  # noqa: E402
from bench.core import env as E  # noqa: E402
from bench.core.case import Case  # noqa: E402
from bench.core.timing import TimingConfig  # noqa: E402
from bench.execute.base import Events, RunSettings  # noqa: E402
from bench.execute.ray_executor import LOOPBACK_ENV, RayExecutor  # noqa: E402
from bench.store import load  # noqa: E402

TIMING = TimingConfig(max_time_s=0.3, min_time_s=0.3, min_samples=3, warmup_max_s=1.0)


def _ray_temp_dir() -> str:
    return tempfile.mkdtemp(prefix="rb-ray-", dir="/tmp")  # short: Ray's socket paths must stay < 108 chars


@pytest.fixture(scope="module")
def cluster():
    """One local cluster for the module: 2 CPU slots and 2 fake GPUs (Ray only counts them)."""
    before = os.environ.get(LOOPBACK_ENV)
    tmp = _ray_temp_dir()
    ex = RayExecutor("local", init_options={"num_cpus": 2, "num_gpus": 2, "_temp_dir": tmp})
    ex.connect()
    yield ex
    ex.close()
    shutil.rmtree(tmp, ignore_errors=True)
    if before is None:
        os.environ.pop(LOOPBACK_ENV, None)
    else:
        os.environ[LOOPBACK_ENV] = before


def _case(model: str, size: int = 32, ddp: int = 0) -> Case:
    return Case(model, "train" if ddp else "infer", 1, size, "contiguous", "fp32", "none", "cpu", ddp)


def _collect():
    got: list[tuple[float, dict]] = []
    return got, Events(row=lambda r: got.append((time.monotonic(), r)))


@pytest.mark.slow
def test_one_gpu_per_group_rows_stream_as_they_finish_crash_and_hang_are_rows(cluster, monkeypatch):
    monkeypatch.setenv("RESNET_BENCH_PLUGINS", "tests.fixtures.faulty")
    monkeypatch.setattr(cluster, "gpus_per_group", 1)
    # 20 s: the resnet18 group (a worker that imports torch, profiles, measures twice) must finish
    # inside the hang's limit even on a loaded 2-core runner, for the order asserted below
    settings = RunSettings(timing=TIMING, threads=1, case_timeout_s=20)
    cluster.expect(E.collect("cpu", 1), E.CLUSTER_KEYS)
    cases = [_case("test_hang"), _case("resnet18", 32), _case("resnet18", 40), _case("test_abort"),
             _case("test_kill_task", 32), _case("test_kill_task", 40)]
    got, events = _collect()
    cluster.run(cases, settings, events)

    rows = [r for _, r in got]
    assert sorted(Case.from_row(r).key() for r in rows) == sorted(c.key() for c in cases)  # each once: no retries
    by = {(r["model"], r["image_size"]): r for r in rows}
    hang, abort = by[("test_hang", 32)], by[("test_abort", 32)]
    ok = [by[("resnet18", 32)], by[("resnet18", 40)]]
    # the local executor's rows, made by the same code in the task
    assert hang["status"] == "timeout" and hang["error"] == "no result within --case-timeout 20 s; process killed"
    assert abort["status"] == "crashed" and "killed by signal SIGABRT" in abort["error"]
    # the task's own process died: that case crashed, and the group's next case went to a new
    # task (where it killed that one too), not dropped and not retried
    for size in (32, 40):
        killed = by[("test_kill_task", size)]
        assert killed["status"] == "crashed" and killed["error"].startswith("Ray task died"), killed
    assert all(r["status"] == "ok" for r in ok)
    # one fake GPU per group: Ray's CUDA_VISIBLE_DEVICES reached the measuring process
    assert all(r["cuda_visible_devices"] in ("0", "1") and r["host"] == platform.node() for r in rows)
    assert hang["cuda_visible_devices"] != ok[0]["cuda_visible_devices"]  # they ran at the same time
    assert ok[0]["cuda_visible_devices"] == ok[1]["cuda_visible_devices"]  # one group, one task
    # streamed: the hang group was submitted first but finished last; within a group, a row
    # arrives while the next case is still being measured (its samples alone take >= 0.3 s)
    order = [r["model"] for r in rows]
    assert order.index("resnet18") < order.index("test_hang")
    (t32, _), (t40, _) = [(t, r) for t, r in got if r["model"] == "resnet18"]
    assert t40 - t32 >= 0.25


def test_a_case_no_node_can_hold_is_skipped_at_once(cluster, monkeypatch):
    monkeypatch.setattr(cluster, "gpus_per_group", 1)
    got, events = _collect()
    t0 = time.monotonic()
    cluster.run([_case("resnet20", ddp=4)], RunSettings(timing=TIMING, threads=1), events)
    ((_, row),) = got
    assert row["status"] == "skipped" and "needs 4 GPU(s)" in row["error"] and row["ddp"] == 4
    assert time.monotonic() - t0 < 10


@pytest.mark.slow
def test_a_driver_without_the_device_takes_the_environment_from_a_node_with_it(cluster, monkeypatch):
    from bench.core import devices

    monkeypatch.setattr(type(devices.backend("cpu")), "available", lambda self: False)  # only in this process
    env = cluster.environment("cpu", 1)
    assert env["device"] == "cpu" and env["threads"] == 1 and env["host"] == platform.node()
    assert env["torch"] and env["git_commit"] == E.git_commit()


def test_the_local_cluster_listens_on_loopback_only(cluster):
    import psutil

    listening = []
    for p in psutil.Process().children(recursive=True):
        try:
            conns = getattr(p, "net_connections", p.connections)(kind="inet")
        except psutil.Error:
            continue
        listening += [(p.name(), c.laddr.ip) for c in conns if c.status == psutil.CONN_LISTEN]
    assert listening, "the cluster's servers run as children of this process"
    assert all(_loopback(ip) for _, ip in listening), listening


def _loopback(ip: str) -> bool:
    import ipaddress

    addr = ipaddress.ip_address(ip)
    return addr.is_loopback or bool(getattr(addr, "ipv4_mapped", None) and addr.ipv4_mapped.is_loopback)


@pytest.mark.slow
def test_a_killed_driver_keeps_its_rows_and_the_run_resumes(tmp_path, cluster):
    from bench.cli import main

    out, raytmp = tmp_path / "run", _ray_temp_dir()
    args = ["run", "--executor", "ray", "--models", "resnet20", "--image-sizes", "32,40,48",
            "--batch-sizes", "1", "--layouts", "contiguous", "--precisions", "fp32", "--compile", "none",
            "--device", "cpu", "--threads", "1", "--out", str(out), *FAST]
    proc = subprocess.Popen([sys.executable, "-m", "bench", *args], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env={**env_with_plugins(), "RAY_TMPDIR": raytmp})
    log = out / "rows.jsonl"
    deadline = time.monotonic() + 240
    while not (log.exists() and log.read_text().count("\n") >= 1):
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_before = len(load.load_results(log).rows)
    assert 1 <= n_before < 3
    try:  # the cluster and the measuring processes die with their driver
        _wait_gone(raytmp)
    finally:
        shutil.rmtree(raytmp, ignore_errors=True)

    # the saved executor (ray) continues on this module's cluster, where the driver is now this process
    assert main(["run", "--resume", str(out), "--quiet"]) == 0
    rows = consistent(out)
    doc = json.loads((out / "results.json").read_text())
    assert sorted(Case.from_row(r).key() for r in rows) == sorted(
        Case.from_dict(c).key() for c in doc["settings"]["planned_cases"])
    assert len(rows) == 3 and {r["status"] for r in rows} == {"ok"}
    assert doc["settings"]["executor"] == "ray" and doc["settings"]["env_scope"] == "cluster"
    # a run begun on ray resumes on the local executor too
    assert main(["run", "--resume", str(out), "--executor", "local", "--retry-failed", "--quiet"]) == 0


def _wait_gone(raytmp: str, timeout: float = 30) -> None:
    """No raylet, GCS, task or measuring process of the killed driver's cluster is left (Ray's
    dashboard and runtime-env agents notice their raylet is gone on their own schedule)."""
    import psutil

    def left() -> list[str]:
        found = []
        for p in psutil.process_iter(["name", "cmdline"]):
            cmd = " ".join(p.info["cmdline"] or [])
            if raytmp in cmd and not any(a in cmd for a in ("DashboardAgent", "RuntimeEnvAgent", "agent")):
                found.append(cmd[:200])
        return found

    deadline = time.monotonic() + timeout
    while left() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left(), left()
