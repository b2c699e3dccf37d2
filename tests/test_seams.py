"""The house: each kind of change has one place. A toy mode, a toy column and a toy executor,
each added in a few lines through its one seam, show up in a real sweep's rows; the package
has no import circle and no oversized module; the proof tool still runs."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli import main
from bench.core import modes
from bench.execute import register_executor
from bench.execute import _EXECUTORS
from bench.execute.base import Executor
from bench.execute.inline import InlineExecutor
from bench.results import columns

REPO = Path(__file__).resolve().parents[1]
TINY = ["run", "--models", "resnet18", "--batch-sizes", "1", "--image-sizes", "32", "--threads", "1",
        "--device", "cpu", "--max-time", "0.2", "--min-samples", "3", "--max-warmup", "0.5", "--quiet",
        "--format", "json", "--rounds", "1"]


def sweep(tmp_path, *flags: str) -> list[dict]:
    out = tmp_path / "run"
    rc = main([*TINY, "--out", str(out), *flags])
    assert rc == 0
    return [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]


@pytest.fixture
def toy_mode():
    # a precision: bf16 autocast with a looser tolerance, under a new name
    modes.register(modes.Precision("toy16", "bfloat16", tf32=False, tolerance=0.2, requires=("bf16_autocast",)))
    yield "toy16"
    modes.unregister("precision", "toy16")


@pytest.fixture
def toy_column():
    columns.register(columns.Column("latency_us_p50", "us", "median latency in microseconds",
                                    derive=lambda r: r["latency_ms_p50"] * 1e3 if "latency_ms_p50" in r else None),
                     display=True)
    yield "latency_us_p50"
    columns.unregister("latency_us_p50")


@pytest.fixture
def toy_executor():
    class Toy(Executor):
        name = "toy"

        def run(self, cases, settings, events):
            InlineExecutor().run(cases, settings, type(events)(row=lambda r: events.row({**r, "ran_by": "toy"})))

    register_executor("toy", Toy)
    yield "toy"
    del _EXECUTORS["toy"]


def test_a_toy_mode_is_measured_and_checked_like_any_other(tmp_path, toy_mode, capsys):
    rows = sweep(tmp_path, "--no-isolate", "--precisions", f"fp32,{toy_mode}")
    toy = [r for r in rows if r["precision"] == toy_mode]
    assert len(toy) == 1 and toy[0]["status"] == "ok"
    assert toy[0]["output_ok"] is True and 0 < toy[0]["max_rel_diff"] < 0.2  # bf16 numerics, its own tolerance


def test_a_toy_column_is_derived_stored_and_shown(tmp_path, toy_column, capsys):
    rows = sweep(tmp_path, "--no-isolate")
    assert rows[0]["latency_us_p50"] == pytest.approx(rows[0]["latency_ms_p50"] * 1e3)
    header = (tmp_path / "run" / "results.csv").read_text().splitlines()[0].split(",")
    assert toy_column in header and header.index(toy_column) < header.index("params_stem")  # a schema column, not an extra
    assert toy_column in (tmp_path / "run" / "results.md").read_text()


def test_a_toy_executor_runs_the_sweep(tmp_path, toy_executor, capsys):
    rows = sweep(tmp_path, "--executor", toy_executor)
    assert rows and all(r["ran_by"] == "toy" and r["status"] == "ok" for r in rows)
    doc = json.loads((tmp_path / "run" / "results.json").read_text())
    assert doc["settings"]["executor"] == "toy"


def test_an_unknown_executor_is_a_usage_error(tmp_path, capsys):
    assert main([*TINY, "--out", str(tmp_path / "r"), "--executor", "nosuch"]) == 2
    assert "invalid choice" in capsys.readouterr().err


# ---------------------------------------------------------------- structure
def _imports(path: Path, mods: dict[str, Path]) -> set[str]:
    """bench modules imported anywhere in `path` (module level or inside functions);
    ``from pkg import sub`` is an import of pkg.sub when that is a module, else of pkg."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("bench")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bench"):
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                out.add(sub if sub in mods else node.module)
    return out


def _modules() -> dict[str, Path]:
    mods = {}
    for p in (REPO / "bench").rglob("*.py"):
        parts = p.relative_to(REPO).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return mods


def test_no_import_circle_between_bench_modules():
    mods = _modules()
    graph = {m: {i for i in _imports(p, mods) if i in mods and i != m} for m, p in mods.items()}
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for n in graph[m]:
            if state.get(n) == 1:
                raise AssertionError("import circle: " + " -> ".join(stack[stack.index(n):] + [n]))
            if n not in state:
                visit(n, stack + [n])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])


def test_no_module_is_oversized():
    big = {m: len(p.read_text().splitlines()) for m, p in _modules().items()}
    assert max(big.values()) <= 400, sorted(big.items(), key=lambda kv: -kv[1])[:3]


def test_the_speed_gate_proof_tool_still_summarizes(tmp_path):
    out = tmp_path / "speed_gate"
    shutil.copytree(REPO / "results" / "speed_gate", out)
    r = subprocess.run([sys.executable, str(REPO / "tools" / "speed_gate_proof.py"), "--summarize",
                        "--out-dir", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    text = (out / "summary.md").read_text()
    assert "## Rates" in text and "re-decided with other settings" in text  # from the raw samples
