"""Markdown: results.md, validation.md, and any bench.report.tables record as a pipe table.

Every text we did not write (names, cells, notes, environment values, the command) goes
through bench.escape.markdown (or markdown_code for the command): it cannot split a
table row, open a code span, a link or an HTML tag, nor reach a terminal as control codes.
"""

from __future__ import annotations

from collections.abc import Sequence

from bench import escape
from bench.report.tables import Table


def render(table: Table, *, title: bool = True) -> str:
    """A :class:`Table` as a Markdown pipe table, notes as a list under it; title, headers,
    cells and notes escaped (bench.escape.markdown)."""
    md = escape.markdown
    lines = [md(table.title), ""] if title and table.title else []
    lines.append("| " + " | ".join(md(h) for h in table.headers) + " |")
    lines.append("|" + "|".join("---" for _ in table.headers) + "|")
    lines += ["| " + " | ".join(md(c) for c in row) + " |" for row in table.rows]
    if table.notes:
        lines += [""] + [f"- {md(n)}" for n in table.notes]
    return "\n".join(lines) + "\n"


def _frame(df):
    """`df` with its text cells and column names escaped (bench.escape.markdown), for
    DataFrame.to_markdown; numbers are left to its floatfmt."""
    out = df.copy()
    for i in range(out.shape[1]):
        if out.iloc[:, i].dtype.kind == "O":
            out.isetitem(i, out.iloc[:, i].map(lambda v: escape.markdown(v) if isinstance(v, str) else v))
    out.columns = [escape.markdown(c) for c in out.columns]
    return out


def environment_line(env: dict) -> str:
    """The run's machine in one Markdown line, escaped (bench.escape.markdown)."""
    gpu = ""
    if env.get("gpu_sm_count"):
        gpu = (f" [{env.get('gpu_sm_count')} SMs, {env.get('gpu_mem_total_mb') or 0:.0f} MiB, compute capability "
               f"{env.get('gpu_cc')}, driver {env.get('gpu_driver') or '-'}, max SM clock "
               f"{env.get('gpu_sm_clock_max_mhz') or '-'} MHz, power limit {env.get('gpu_power_limit_w') or '-'} W]")
    return escape.markdown(
        f"Device: {env.get('device_name')} ({env.get('device')}){gpu}, torch {env.get('torch')}, "
        f"CPU ISA {env.get('cpu_isa') or '-'}, CUDA {env.get('cuda') or '-'}, cuDNN {env.get('cudnn') or '-'}, "
        f"threads {env.get('threads')}, commit {env.get('git_commit')}, {env.get('time_utc')}")


def results_markdown(analysis) -> str:
    """results.md from a bench.results.analysis.Analysis: the environment and the command, the
    DISPLAY columns with raw values (4 significant digits; speedups with their intervals, an
    untrusted one marked), then the best mode per variant, the ratios to the baseline variant
    and the extra tables."""
    from bench.report import tables
    from bench.results import columns, views

    view = analysis.frame.copy()
    env, command = analysis.env, analysis.command
    lines = []
    if env:
        lines += [environment_line(env), ""]
    if command:
        lines += [f"Command: {escape.markdown_code(command)}", ""]
    if view.empty:
        return "\n".join(lines + ["(no rows)"]) + "\n"
    cols = [c.name for c in columns.shown("markdown", view.to_dict("records")) if c.name in view.columns]
    marked = ~view["speedup_trusted"] & view["speedup_vs_eager"].notna()
    view["speedup_vs_eager"] = [tables.speedup_cell(r) for r in view.to_dict("records")]
    lines.append(_frame(view[cols]).to_markdown(index=False, floatfmt=".4g"))
    if marked.any():
        lines += ["", escape.markdown(tables.UNTRUSTED_NOTE)]
    if not analysis.best.empty:
        lines += ["", "Best mode per variant (trusted speedups only; over eager fp32 contiguous, paired by round, "
                      "95% CI):", "", render(tables.best_modes(analysis.best), title=False)]
    if analysis.ratios is not None:
        lines += ["", render(tables.ratios(analysis.ratios, analysis.baseline))]
    if not analysis.stages.empty:
        lines += ["", render(tables.stages(analysis.stages))]
    if not analysis.stage_diff.empty:
        lines += ["", render(tables.stage_diff(analysis.stage_diff))]
    for title, extra in (("Throughput against batch (--find-max-batch)", analysis.curves),
                         ("Energy over the timed samples, memory pass, clocks", analysis.energy)):
        if not extra.empty:
            lines += ["", f"{title}:", "", _frame(extra).to_markdown(index=False, floatfmt=".4g")]
    if not analysis.ddp.empty:
        lines += ["", f"{views.DDP_TITLE}:", "", _frame(analysis.ddp).to_markdown(index=False, floatfmt=".4g")]
    return "\n".join(lines) + "\n"


def _load(v) -> str:
    return " / ".join(f"{x:.2f}" for x in v) if v else "-"


def validation_markdown(doc: dict, tables: dict[str, Table], failures: Sequence[str]) -> str:
    """validation.md: how it was measured, one table per check, the result and what failed; the
    command, environment values, warnings and failures escaped (bench.escape)."""
    md = escape.markdown
    env, s = doc["environment"], doc["settings"]
    la = doc.get("load_average", {})
    lines = [
        "# resnet-bench validate", "",
        f"Command: {escape.markdown_code(doc['command'])}", "",
        md(f"Machine: {env.get('device_name')} ({env.get('device')}), {env.get('cpu_count')} CPUs, "
           f"threads {s['threads']}; torch {env.get('torch')}, torchvision {env.get('torchvision')}, "
           f"CUDA {env.get('cuda') or '-'}, Python {env.get('python')}; commit {env.get('git_commit')}; "
           f"{env.get('time_utc')}"), "",
        f"Load average (1/5/15 min) at start: {_load(la.get('start'))}; at end: {_load(la.get('end'))}. "
        f"Wall time {doc.get('wall_s', 0):.0f} s.", "",
        *[f"Warning: {md(w)}\n" for w in doc.get("warnings", [])],
        f"Rounds: {s['rounds']} per side, interleaved (A B, B A, ...), {s['round_time_s']:g} s each, after a "
        f"warm-up until steady (at most {s['warmup_s']:g} s). ms = median of a side's round medians; ratio = "
        f"median of the paired round ratios ours_i/ref_i (ratio of the two medians in the CSV as "
        f"ratio_of_medians); CI = 95% bootstrap over rounds, pairs kept; spread = IQR/median of "
        f"a side's round medians. Verdict: pass when |ratio - 1| <= {s['tolerance']:g}.", "",
    ]
    for check, table in tables.items():
        lines += [f"## {md(check)}", "", render(table)]
    lines.append(f"Result: {'PASS' if doc['passed'] else 'FAIL'}")
    lines += [f"- {md(f)}" for f in failures]
    return "\n".join(lines) + "\n"
