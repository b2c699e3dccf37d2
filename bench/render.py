"""Rendering only: rich tables for the terminal. Nothing here measures or computes."""

from __future__ import annotations

import math
from typing import Any, Iterable

import pandas as pd
from rich import box
from rich.console import Console
from rich.table import Table

from bench.runner import busy

STATUS_STYLE = {"ok": "green", "ok-reduced": "yellow", "skipped": "dim", "oom": "red",
                "timeout": "red", "crashed": "bold red", "error": "red"}


def fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def giga(value: Any) -> str:
    try:
        return f"{float(value) / 1e9:.3f}"
    except (TypeError, ValueError):
        return "-"


def mega(value: Any) -> str:
    try:
        return f"{float(value) / 1e6:.2f}"
    except (TypeError, ValueError):
        return "-"


def registry_table(rows: Iterable[dict]) -> Table:
    t = Table(title="resnet_impl registry", box=box.SIMPLE_HEAVY)
    for col, just in [("name", "left"), ("block", "left"), ("depth", "right"), ("stride", "left"),
                      ("stem", "left"), ("shortcut", "left"), ("groups x width", "left"), ("params", "right")]:
        t.add_column(col, justify=just)
    for r in rows:
        t.add_row(r["name"], r["block"], str(r["depth"]), r["stride"], r["stem"], r["shortcut"],
                  r["groups_x_width"], f"{r['params']:,}")
    return t


def profile_table(rows: list[dict]) -> Table:
    t = Table(title="Profile (per image; MACs = conv+linear multiply-accumulates, FLOPs = 2 x MACs)",
              box=box.SIMPLE_HEAVY)
    cols = [("model", "left"), ("image px", "right"), ("params (M)", "right"), ("GMACs", "right"),
            ("GFLOPs", "right"), ("GMACs incl. BN", "right"), ("activations (M)", "right"),
            ("FlopCounterMode agrees", "left")]
    for c, j in cols:
        t.add_column(c, justify=j)
    for r in rows:
        t.add_row(r["model"], str(r["image_size"]), mega(r["params"]), giga(r["macs"]), giga(r["flops"]),
                  giga(r.get("macs_all")), mega(r["activations"]), fmt(r.get("counters_agree")))
    stages = ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
    if rows and all(f"macs_{s}" in rows[0] for s in stages):
        t2 = Table(title="Per stage: params (M) / GMACs", box=box.SIMPLE)
        t2.add_column("model")
        for s in stages:
            t2.add_column(s, justify="right")
        for r in rows:
            t2.add_row(r["model"], *[f"{mega(r[f'params_{s}'])} / {giga(r[f'macs_{s}'])}" for s in stages])
        grid = Table.grid()
        grid.add_row(t)
        grid.add_row(t2)
        return grid
    return t


RESULT_COLUMNS = [
    ("model", "model"), ("workload", "work"), ("batch_size", "bs"), ("image_size", "px"),
    ("layout", "layout"), ("precision", "prec"), ("compile", "compile"), ("status", "status"),
    ("latency_ms_p50", "p50 ms"), ("latency_ms_p90", "p90 ms"), ("latency_rel_iqr", "IQR/med"),
    ("throughput_ips", "img/s"), ("speedup_vs_eager", "x eager"), ("compile_s", "compile s"),
    ("macs", "GMACs"), ("peak_mem_mb", "peak MB"), ("max_rel_diff", "out rel diff"),
]


def results_table(df: pd.DataFrame, title: str = "Results") -> Table:
    t = Table(title=title, box=box.SIMPLE_HEAVY)
    for _, head in RESULT_COLUMNS:
        t.add_column(head, justify="left" if head in ("model", "work", "layout", "prec", "compile", "status") else "right")
    for r in df.to_dict("records"):
        cells = []
        for col, _ in RESULT_COLUMNS:
            v = r.get(col)
            if col == "macs":
                cells.append(giga(v))
            elif col == "status":
                text = str(v)
                if r.get("noisy") is True:
                    text += " (noisy)"
                if busy(r):
                    text += " (busy CPU)"
                if r.get("output_ok") is False:
                    text += " (output differs!)"
                cells.append(f"[{STATUS_STYLE.get(str(v), '')}]{text}[/]")
            elif col == "latency_rel_iqr" and isinstance(v, float) and not math.isnan(v):
                cells.append(f"{v:.1%}")
            else:
                cells.append(fmt(v))
        t.add_row(*cells)
    return t


def error_lines(df: pd.DataFrame) -> list[str]:
    bad = df[~df["status"].isin(["ok"])]
    out = []
    for r in bad.to_dict("records"):
        out.append(f"{r['model']} {r['workload']} bs{r['batch_size']} {r['image_size']}px "
                   f"{r['layout']}/{r['precision']}/{r['compile']}: {r['status']}: {r.get('error') or ''}")
    return out


def frame_table(df: pd.DataFrame, title: str) -> Table:
    t = Table(title=title, box=box.SIMPLE)
    for c in df.columns:
        t.add_column(str(c))
    for r in df.itertuples(index=False):
        t.add_row(*[fmt(v) for v in r])
    return t


def console(stderr: bool = False) -> Console:
    """A rich console; when not a terminal (piped, CI logs) wide enough that tables don't wrap."""
    c = Console(stderr=stderr)
    if not c.is_terminal:
        c = Console(stderr=stderr, width=max(c.width, 220))
    return c
