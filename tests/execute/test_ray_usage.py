"""--executor ray without a cluster: without Ray installed, or with an address nobody answers,
it is one line and exit 2 with nothing written; --address goes with --executor ray; what a task
asks Ray for (GPUs per group, N GPUs for a data-parallel case)."""

from __future__ import annotations

import sys

import pytest

from bench.cli import main
from bench.core.case import Case
from bench.execute.base import RunSettings
from bench.execute.ray_executor import RayExecutor

TINY = ["run", "--models", "resnet18", "--batch-sizes", "1", "--image-sizes", "32", "--device", "cpu", "--quiet"]


def _one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_without_ray_installed_it_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    assert main([*TINY, "--executor", "ray", "--out", str(tmp_path / "r")]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "pip install 'resnet-bench[ray]'" in line
    assert not (tmp_path / "r").exists()


def test_an_unreachable_address_is_one_line_and_exit_2(tmp_path, capsys):
    pytest.importorskip("ray")
    import ray

    if ray.is_initialized():
        pytest.skip("this process is already connected to a Ray cluster")
    assert main([*TINY, "--executor", "ray", "--address", "127.0.0.1:1", "--out", str(tmp_path / "r")]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "--address 127.0.0.1:1" in line and "no Ray cluster answers" in line
    assert not (tmp_path / "r").exists()


def test_address_goes_with_the_ray_executor(tmp_path, capsys):
    assert main([*TINY, "--address", "auto", "--out", str(tmp_path / "r")]) == 2
    assert "--address goes with --executor ray" in capsys.readouterr().err


def test_what_a_task_asks_for():
    def case(device: str, ddp: int = 0) -> Case:
        return Case("resnet50", "train", 64, 224, "channels_last", "bf16", "none", device, ddp)

    ex = RayExecutor()
    plain = RunSettings()
    assert ex.resources([case("cuda")], plain) == {"num_gpus": 1, "num_cpus": 1}
    assert ex.resources([case("cuda", ddp=8)], plain) == {"num_gpus": 8, "num_cpus": 8}  # one task: one node
    assert ex.resources([case("cpu")], RunSettings(threads=4)) == {"num_gpus": 0, "num_cpus": 4}
    assert ex.resources([case("cpu", ddp=2)], plain) == {"num_gpus": 0, "num_cpus": 2}  # 2 ranks x 1 thread
    ex.expect({"threads": 16}, ("threads",))
    assert ex.resources([case("cpu")], plain) == {"num_gpus": 0, "num_cpus": 16}  # the run's thread count


def test_a_node_whose_software_differs_from_the_run_measures_nothing():
    """What a Ray task does on a node with another torch: its worker reports its environment
    first and is stopped; every case of the group is an error row saying what differs."""
    from bench.execute.local import run_group

    cases = [Case("resnet20", "infer", 1, 32, "contiguous", "fp32", "none", "cpu"),
             Case("resnet20", "infer", 1, 40, "contiguous", "fp32", "none", "cpu")]
    events = list(run_group(cases, RunSettings(threads=1), expect_env={"torch": "0.0-other", "device": "cpu"}))
    rows = [v for kind, v in events if kind == "row"]
    assert [kind for kind, _ in events] == ["row", "row"]  # nothing started
    assert all(r["status"] == "error" and "torch: 0.0-other ->" in r["error"] for r in rows)
    assert all(r["host"] and r["torch"] != "0.0-other" for r in rows)  # stamped with where it ran
