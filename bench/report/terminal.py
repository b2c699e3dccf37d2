"""The terminal: rich renderings of bench.report.tables records, progress bars, messages.

Cell text is never parsed as rich markup (a model name or an error message may hold brackets),
and every text we did not write reaches the terminal through bench.escape.terminal:
control characters (ESC, BEL, CSI, newlines) are shown as escapes, never sent raw.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich import box
from rich.console import Console, Group
from rich.table import Table as RichTable
from rich.text import Text

from bench import escape
from bench.report import tables
from bench.report.tables import Table


class _Console(Console):
    """rich's Console, but a closed pipe is a BrokenPipeError for bench.cli.main to end quietly
    (rich's own answer is SystemExit(1): `report | head` would fail)."""

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError()


def console(stderr: bool = False) -> Console:
    """A rich console; when not a terminal (piped, CI logs) wide enough that tables don't wrap."""
    c = _Console(stderr=stderr)
    if not c.is_terminal:
        c = _Console(stderr=stderr, width=max(c.width, 220))
    return c


def render(table: Table, *, compact: bool = False):
    """A :class:`Table` as a rich renderable (with its notes under it); title, headers, cells
    and notes escaped (bench.escape.terminal)."""
    t = RichTable(title=Text(escape.terminal(table.title)), box=box.SIMPLE if compact else box.SIMPLE_HEAVY)
    for i, head in enumerate(table.headers):
        t.add_column(Text(escape.terminal(head)), justify="right" if i in table.right else "left")
    for cells, styles in zip(table.rows, table.styles):
        t.add_row(*[Text(escape.terminal(c), style=styles.get(i, "")) for i, c in enumerate(cells)])
    if not table.notes:
        return t
    return Group(t, *[Text(f"  {escape.terminal(n)}", style="dim") for n in table.notes])


def show(tables: Iterable[Table], con: Console | None = None, *, compact: bool = False) -> None:
    con = con or console()
    for t in tables:
        con.print(render(t, compact=compact))


def say(text: str, style: str = "", *, stderr: bool = True) -> None:
    """One message line, as plain text in `style` (no markup, no highlighting, control
    characters and newlines shown as escapes: bench.escape.terminal)."""
    # soft_wrap: one line, however long
    console(stderr=stderr).print(Text(escape.terminal(text), style=style), soft_wrap=True)


class Progress:
    """A transient progress bar on stderr: ``describe(text)`` names the current step,
    ``advance()`` counts one done. Disabled with `quiet` (or when nothing is to be done)."""

    def __init__(self, total: int, *, quiet: bool = False, description: str = "starting"):
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        self._bar = RichProgress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=console(stderr=True), transient=True, disable=quiet)
        self._task = self._bar.add_task(escape.terminal(description), total=total)

    def describe(self, text: str) -> None:
        self._bar.update(self._task, description=escape.terminal(text))

    def advance(self) -> None:
        self._bar.advance(self._task)

    def restart(self, total: int, text: str) -> None:
        """Count again from zero, to `total` (a new round)."""
        self._bar.reset(self._task, total=total, description=escape.terminal(text))

    def __enter__(self) -> Progress:
        self._bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._bar.__exit__(*exc)


CURVES_TITLE = "Throughput against batch (--find-max-batch)"
ENERGY_TITLE = "Energy over the timed samples, memory pass, clocks"


def show_results(analysis) -> None:
    """A bench.results.analysis.Analysis on the terminal: the results table, the best mode per
    variant (trusted speedups only), the ratios to a baseline variant, the extra tables, one line
    for every row that is not ok, and a count of the flags the rows carry."""
    from collections import Counter

    from bench.core.case import Case
    from bench.results import views

    cpu_count = analysis.cpu_count
    records = analysis.records
    shown = [tables.results(records, lambda r: views.busy(r, cpu_count))]
    if not analysis.best.empty:
        shown.append(tables.best_modes(analysis.best))
    if not analysis.ddp.empty:
        shown.append(tables.frame(analysis.ddp, views.DDP_TITLE))
    if analysis.ratios is not None:
        shown.append(tables.ratios(analysis.ratios, analysis.baseline))
    if not analysis.stages.empty:
        shown.append(tables.stages(analysis.stages))
    if not analysis.stage_diff.empty:
        shown.append(tables.stage_diff(analysis.stage_diff))
    for title, extra in ((CURVES_TITLE, analysis.curves), (ENERGY_TITLE, analysis.energy)):
        if not extra.empty:
            shown.append(tables.frame(extra, title))
    show(shown)
    for line in tables.problems(records, lambda r: Case.from_row(r).label()):
        say(line, "yellow")
    ok = [r for r in records if r.get("status") == "ok"]
    timing = Counter(f for r in ok for f in views.blocking(r, cpu_count))
    if timing:
        say("flagged timings, marked and never ranked: " + ", ".join(f"{n} {f}" for f, n in timing.items())
            + " (`report --html` lists each row)", "yellow")
    single = [r for r in ok if views.n_rounds(r) < 2 and "busy CPU" in views.flags(r, cpu_count)]
    if single:
        say(f"{len(single)} CPU row(s) of a single round were measured while other work competed for the cores "
            f"(load average above the core count): without rounds their latencies are unreliable; measure in "
            f"rounds (the default) to compare them.", "yellow")


def speed_gate_text(results: list[dict], threshold: float, alpha: float) -> str:
    """The speed gate's verdicts as fixed-width text (stdout of `check --speed`); the labels,
    verdicts and reasons (from a gate file) escaped (bench.escape.terminal)."""
    lines = [f"speed gate: fail when p < {alpha:g} and the ratio's 95% CI upper bound > {1 + threshold:.3f} "
             f"(threshold {threshold:.1%})",
             f"{'case':<52} {'base ms':>9} {'cand ms':>9} {'ratio':>7} {'95% CI':>15} {'p':>8} {'unit':>10}  verdict",
             "(paired rounds: ms = the median over rounds of each round's 10th percentile; saved baselines: "
             "the medians)"]
    for r in results:
        c = r.get("comparison")
        label = escape.terminal(r["label"])
        if not c:
            lines.append(f"{label:<52} {'':>9} {'':>9} {'':>7} {'':>15} {'':>8} {'':>10}  "
                         f"{escape.terminal(r['verdict'])}: {escape.terminal(r['reason'])}")
            continue
        unit = escape.terminal(f"{c['n_base']}v{c['n_cand']} {c['unit'][:6]}")
        verdict = escape.terminal(c["verdict"].upper() if c["verdict"] == "regression" else c["verdict"])
        lines.append(f"{label:<52} {c['base_median_ms']:>9.4g} {c['cand_median_ms']:>9.4g} {c['ratio']:>7.3f} "
                     f"[{c['ci_low']:.3f}, {c['ci_high']:.3f}] {_fmt_p(c['p_slower']):>8} {unit:>10}  "
                     f"{verdict}: {escape.terminal(c['reason'])}")
    return "\n".join(lines)


def _fmt_p(p: float) -> str:
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"
