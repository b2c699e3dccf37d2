#!/usr/bin/env python
"""Summarize a GPU session (tools/gpu_session.sh) as Markdown: the machine, every step with its
command, exit code and wall time, the pytest outcome, and per run directory the rows measured
against the rows planned, compile time, the best throughput per case with its energy, memory
and clocks, the throughput-vs-batch curves of a max-batch search, and the top kernel of each
trace.

    python tools/gpu_summary.py SESSION_DIR > SESSION_DIR/session.md

SESSION_DIR holds ``steps.tsv`` (step, seconds, exit code, command; written by the script),
``<step>.log`` files and the run directories the steps wrote. Works on CPU runs too.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.results import views  # noqa: E402
from bench.store.load import load_results  # noqa: E402

TIMEBOX = {124: "time box reached (SIGTERM)", 143: "time box reached (SIGTERM)", 137: "killed"}
BEST = ["model", "workload", "batch_size", "layout", "precision", "compile", "latency_ms_p50", "throughput_ips",
        "compile_s", "energy_j_per_image", "power_w_mean", "throughput_ips_per_w", "mem_peak_allocated_mb",
        "mem_peak_reserved_mb", "nvml_mem_used_mb", "gpu_sm_clock_mhz", "gpu_throttled"]


def _md(df: pd.DataFrame) -> str:
    return df.to_markdown(index=False, floatfmt=".4g") if not df.empty else "(none)"


def steps(session: Path) -> list[str]:
    f = session / "steps.tsv"
    if not f.is_file():
        return []
    out = ["| step | wall s | exit | command |", "|---|---|---|---|"]
    for line in f.read_text().splitlines():
        name, secs, rc, cmd = (line.split("\t") + ["", "", "", ""])[:4]
        note = TIMEBOX.get(int(rc), "") if rc.lstrip("-").isdigit() else ""
        out.append(f"| {name} | {secs} | {rc}{' (' + note + ')' if note else ''} | `{cmd}` |")
    return out


def run_dir(d: Path) -> list[str]:
    res = load_results(d)
    df = res.frame()
    planned = len(res.settings.get("planned_cases") or [])
    ok = df[df["status"].isin(["ok", "ok-reduced"])]
    lines = [f"### {d.name}", "", f"Command: `{res.command}`", "",
             f"Rows: {len(df)} of {planned} planned ({len(ok)} ok; statuses: "
             f"{', '.join(f'{k} {v}' for k, v in df['status'].value_counts().items())}).",
             f"Compile time (sum of compile_s): {pd.to_numeric(df['compile_s'], errors='coerce').sum():.1f} s; "
             f"first calls (sum of first_call_s): {pd.to_numeric(df['first_call_s'], errors='coerce').sum():.1f} s.", ""]
    if not ok.empty:
        ok = ok.assign(throughput_ips=pd.to_numeric(ok["throughput_ips"]))
        best = ok.loc[ok.groupby(["model", "workload", "batch_size", "image_size"])["throughput_ips"].idxmax()]
        lines += ["Best mode per case:", "", _md(best[[c for c in BEST if c in best.columns]]), ""]
    curves = views.batch_curves(df)
    if not curves.empty:
        lines += ["Throughput against batch:", "", _md(curves), ""]
    if "trace_top_op" in df.columns and df["trace_top_op"].notna().any():
        t = df[df["trace_top_op"].notna()][["model", "batch_size", "precision", "compile", "trace_top_op",
                                             "trace_top_op_share", "trace_file"]]
        t = t.assign(trace_file=t["trace_file"].map(lambda p: Path(p).name))
        lines += ["Top kernel (GPU) or operator (CPU) of each trace:", "", _md(t), ""]
    bad = df[~df["status"].isin(["ok", "ok-reduced"])]
    if not bad.empty:
        lines += ["Not ok:", "", _md(bad[["model", "batch_size", "layout", "precision", "compile", "status",
                                          "error"]]), ""]
    return lines


def main(session: Path) -> str:
    lines = ["# GPU session", ""]
    smi = session / "nvidia-smi.csv"
    if smi.is_file():
        lines += ["nvidia-smi:", "", "```", smi.read_text().strip(), "```", ""]
    env = session / "env.txt"
    if env.is_file():
        lines += ["Environment: " + env.read_text().strip(), ""]
    lines += ["## Steps", ""] + steps(session) + [""]
    log = session / "pytest-gpu.log"
    if log.is_file():
        tail = [ln for ln in log.read_text().splitlines() if ln.strip()][-1:]
        lines += ["## pytest -m gpu", "", f"`{tail[0] if tail else '(no output)'}`", ""]
    runs = sorted(p.parent for p in session.glob("*/rows.jsonl"))  # a time-boxed run killed midway has its log
    if runs:
        lines += ["## Runs", ""]
        for d in runs:
            lines += run_dir(d)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if len(sys.argv) != 2 or not Path(sys.argv[1]).is_dir():
        sys.exit("usage: gpu_summary.py SESSION_DIR")
    sys.stdout.write(main(Path(sys.argv[1])))
