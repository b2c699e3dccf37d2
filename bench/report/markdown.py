"""Markdown: results.md, validation.md, and any bench.report.tables record as a pipe table."""

from __future__ import annotations

from collections.abc import Sequence

from bench.report.tables import Table


def render(table: Table, *, title: bool = True) -> str:
    """A :class:`Table` as a Markdown pipe table (cells' `|` escaped), notes as a list under it."""
    lines = [table.title, ""] if title and table.title else []
    lines.append("| " + " | ".join(table.headers) + " |")
    lines.append("|" + "|".join("---" for _ in table.headers) + "|")
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in table.rows]
    if table.notes:
        lines += [""] + [f"- {n}" for n in table.notes]
    return "\n".join(lines) + "\n"


def environment_line(env: dict) -> str:
    gpu = ""
    if env.get("gpu_sm_count"):
        gpu = (f" [{env.get('gpu_sm_count')} SMs, {env.get('gpu_mem_total_mb') or 0:.0f} MiB, compute capability "
               f"{env.get('gpu_cc')}, driver {env.get('gpu_driver') or '-'}, max SM clock "
               f"{env.get('gpu_sm_clock_max_mhz') or '-'} MHz, power limit {env.get('gpu_power_limit_w') or '-'} W]")
    return (f"Device: {env.get('device_name')} ({env.get('device')}){gpu}, torch {env.get('torch')}, "
            f"CPU ISA {env.get('cpu_isa') or '-'}, CUDA {env.get('cuda') or '-'}, cuDNN {env.get('cudnn') or '-'}, "
            f"threads {env.get('threads')}, commit {env.get('git_commit')}, {env.get('time_utc')}")


def results_markdown(df, env: dict | None = None, command: str | None = None) -> str:
    """results.md: the environment and the command, the DISPLAY columns with raw values
    (4 significant digits; a speedup from a flagged row marked), then the best mode per variant
    among the reliable rows."""
    from bench.report import tables
    from bench.results import columns, views

    cpu_count = (env or {}).get("cpu_count")
    view = views.with_scaling(views.with_speedup(df, cpu_count))
    cols = [c.name for c in columns.shown("markdown", view.to_dict("records")) if c.name in view.columns]
    marked = ~view["speedup_trusted"] & view["speedup_vs_eager"].notna()
    if marked.any():  # text cells: the number and its mark
        view["speedup_vs_eager"] = [tables.speedup_cell(r) for r in view.to_dict("records")]
    lines = []
    if env:
        lines += [environment_line(env), ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    lines.append(view[cols].to_markdown(index=False, floatfmt=".4g"))
    if marked.any():
        lines += ["", tables.UNTRUSTED_NOTE]
    best = views.best_modes(df, cpu_count)
    if not best.empty:
        lines += ["", "Best mode per variant (reliable rows only; speedup over eager fp32 contiguous):", "",
                  render(tables.best_modes(best), title=False)]
    for title, extra in (("Throughput against batch (--find-max-batch)", views.batch_curves(df)),
                         ("Energy over the timed samples, memory pass, clocks", views.energy_memory(df))):
        if not extra.empty:
            lines += ["", f"{title}:", "", extra.to_markdown(index=False, floatfmt=".4g")]
    scaling = views.ddp_scaling(df)
    if not scaling.empty:
        lines += ["", f"{views.DDP_TITLE}:", "", scaling.to_markdown(index=False, floatfmt=".4g")]
    return "\n".join(lines) + "\n"


def _load(v) -> str:
    return " / ".join(f"{x:.2f}" for x in v) if v else "-"


def validation_markdown(doc: dict, tables: dict[str, Table], failures: Sequence[str]) -> str:
    """validation.md: how it was measured, one table per check, the result and what failed."""
    env, s = doc["environment"], doc["settings"]
    la = doc.get("load_average", {})
    lines = [
        "# resnet-bench validate", "",
        f"Command: `{doc['command']}`", "",
        f"Machine: {env.get('device_name')} ({env.get('device')}), {env.get('cpu_count')} CPUs, "
        f"threads {s['threads']}; torch {env.get('torch')}, torchvision {env.get('torchvision')}, "
        f"CUDA {env.get('cuda') or '-'}, Python {env.get('python')}; commit {env.get('git_commit')}; "
        f"{env.get('time_utc')}", "",
        f"Load average (1/5/15 min) at start: {_load(la.get('start'))}; at end: {_load(la.get('end'))}. "
        f"Wall time {doc.get('wall_s', 0):.0f} s.", "",
        *[f"Warning: {w}\n" for w in doc.get("warnings", [])],
        f"Rounds: {s['rounds']} per side, interleaved (A B, B A, ...), {s['round_time_s']:g} s each, after a "
        f"warm-up until steady (at most {s['warmup_s']:g} s). ms = median of a side's round medians; ratio = "
        f"median of the paired round ratios ours_i/ref_i (ratio of the two medians in the CSV as "
        f"ratio_of_medians); CI = 95% bootstrap over rounds, pairs kept; spread = IQR/median of "
        f"a side's round medians. Verdict: pass when |ratio - 1| <= {s['tolerance']:g}.", "",
    ]
    for check, table in tables.items():
        lines += [f"## {check}", "", render(table)]
    lines.append(f"Result: {'PASS' if doc['passed'] else 'FAIL'}")
    lines += [f"- {f}" for f in failures]
    return "\n".join(lines) + "\n"
