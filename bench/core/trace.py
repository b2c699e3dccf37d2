"""Why a case is slow: a torch.profiler trace of a few steps, taken after the timed samples.

:func:`trace_steps` profiles a few calls of an already warmed-up step (``--trace DIR``) and
writes, for one case, under DIR:

- ``<name>.json``: the Chrome trace (open in https://ui.perfetto.dev or chrome://tracing);
- ``<name>.top.md`` and ``<name>.top.csv``: the top-k by self time -- on a GPU the kernels by
  self device time, then the operators by self CPU time; on the CPU the operators by self CPU
  time. Times are totals over the profiled steps (ms) and per call (us); ``share`` is the
  fraction of the summed self time of that table's kind (kernels, or operators).

``<name>`` is the case's label with every character outside ``[A-Za-z0-9._-]`` replaced by
``_``. The row gets ``trace_file``, ``trace_top_op`` and ``trace_top_op_share``.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

from bench.core import devices

TRACE_STEPS = 3
TOP_K = 15
_HEAD = ("rank", "name", "self_ms_total", "share", "calls", "self_us_per_call")


def file_stem(label: str) -> str:
    """A file name from a case label: ``resnet50 infer bs1 224px contiguous/fp32/none cpu`` ->
    ``resnet50_infer_bs1_224px_contiguous_fp32_none_cpu``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "case"


def top_table(averages, kind: str, k: int = TOP_K) -> list[dict[str, Any]]:
    """The top-k entries of ``prof.key_averages()`` by self time: ``kind="device"`` keeps the
    device-side entries (kernels, memcpy) by self device time, ``"cpu"`` the host operators by
    self CPU time. Microseconds in, milliseconds out."""
    def device_us(e) -> float:
        v = getattr(e, "self_device_time_total", None)
        return float(v if v is not None else getattr(e, "self_cuda_time_total", 0.0))

    if kind == "device":
        entries = [(e, device_us(e)) for e in averages if _on_device(e)]
    else:
        entries = [(e, float(e.self_cpu_time_total)) for e in averages if not _on_device(e)]
    entries = [(e, t) for e, t in entries if t > 0]
    total = sum(t for _, t in entries) or 1.0
    entries.sort(key=lambda et: -et[1])
    return [{"rank": i + 1, "name": e.key, "self_ms_total": t / 1e3, "share": t / total, "calls": int(e.count),
             "self_us_per_call": t / max(int(e.count), 1)} for i, (e, t) in enumerate(entries[:k])]


def _on_device(e) -> bool:
    dt = getattr(e, "device_type", None)
    return dt is not None and getattr(dt, "name", str(dt)).upper() not in ("CPU", "DEVICETYPE.CPU")


def trace_steps(step, device: str, label: str, out_dir: str | Path, steps: int = TRACE_STEPS,
                top: int = TOP_K) -> dict[str, Any]:
    """Profile `steps` calls of `step` on `device` (the device drained before and after) and
    write the trace and the top-k tables for the case `label` under `out_dir`; the row's
    trace columns."""
    from torch.profiler import ProfilerActivity, profile

    dev = devices.backend(device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = file_stem(label)
    dev.synchronize(device)
    with profile(activities=[getattr(ProfilerActivity, a) for a in dev.profiler_activities]) as prof:
        for _ in range(steps):
            step()
        dev.synchronize(device)
    trace = out / f"{stem}.json"
    prof.export_chrome_trace(str(trace))
    averages = prof.key_averages()
    kinds = ["device", "cpu"] if "CUDA" in dev.profiler_activities else ["cpu"]
    tables = {kind: top_table(averages, kind, top) for kind in kinds}
    (out / f"{stem}.top.csv").write_text(_csv(tables))
    (out / f"{stem}.top.md").write_text(_markdown(label, steps, tables))
    first = next((t[0] for t in tables.values() if t), None)
    return {"trace_file": str(trace), "trace_top_op": first["name"] if first else None,
            "trace_top_op_share": first["share"] if first else None}


_TITLES = {"device": "Kernels by self device time", "cpu": "Operators by self CPU time"}


def _csv(tables: dict[str, list[dict]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(("table",) + _HEAD)
    for kind, rows in tables.items():
        for r in rows:
            w.writerow((kind,) + tuple(r[h] for h in _HEAD))
    return buf.getvalue()


def _markdown(label: str, steps: int, tables: dict[str, list[dict]]) -> str:
    lines = [f"# {label}", "", f"torch.profiler, {steps} steps after the timed samples; totals over those steps.", ""]
    for kind, rows in tables.items():
        lines += [f"## {_TITLES[kind]}", "", "| # | name | self ms | share | calls | self us/call |", "|---|---|---|---|---|---|"]
        for r in rows:
            name = r["name"] if len(r["name"]) <= 120 else r["name"][:117] + "..."
            lines.append(f"| {r['rank']} | {name.replace('|', '/')} | {r['self_ms_total']:.3f} | {r['share']:.1%} | "
                         f"{r['calls']} | {r['self_us_per_call']:.1f} |")
        lines.append("")
    return "\n".join(lines)
