"""The terminal: rich renderings of bench.report.tables records, progress bars, messages.

Cell text is never parsed as rich markup (a model name or an error message may hold brackets).
"""

from __future__ import annotations

from collections.abc import Iterable

from rich import box
from rich.console import Console, Group
from rich.table import Table as RichTable
from rich.text import Text

from bench.report import tables
from bench.report.tables import Table


def console(stderr: bool = False) -> Console:
    """A rich console; when not a terminal (piped, CI logs) wide enough that tables don't wrap."""
    c = Console(stderr=stderr)
    if not c.is_terminal:
        c = Console(stderr=stderr, width=max(c.width, 220))
    return c


def render(table: Table, *, compact: bool = False):
    """A :class:`Table` as a rich renderable (with its notes under it)."""
    t = RichTable(title=Text(table.title), box=box.SIMPLE if compact else box.SIMPLE_HEAVY)
    for i, head in enumerate(table.headers):
        t.add_column(Text(head), justify="right" if i in table.right else "left")
    for cells, styles in zip(table.rows, table.styles):
        t.add_row(*[Text(c, style=styles.get(i, "")) for i, c in enumerate(cells)])
    if not table.notes:
        return t
    return Group(t, *[Text(f"  {n}", style="dim") for n in table.notes])


def show(tables: Iterable[Table], con: Console | None = None, *, compact: bool = False) -> None:
    con = con or console()
    for t in tables:
        con.print(render(t, compact=compact))


def say(text: str, style: str = "", *, stderr: bool = True) -> None:
    """One message line, as plain text in `style` (no markup, no highlighting)."""
    console(stderr=stderr).print(Text(text, style=style), soft_wrap=True)  # one line, however long


class Progress:
    """A transient progress bar on stderr: ``describe(text)`` names the current step,
    ``advance()`` counts one done. Disabled with `quiet` (or when nothing is to be done)."""

    def __init__(self, total: int, *, quiet: bool = False, description: str = "starting"):
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        self._bar = RichProgress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=console(stderr=True), transient=True, disable=quiet)
        self._task = self._bar.add_task(description, total=total)

    def describe(self, text: str) -> None:
        self._bar.update(self._task, description=text)

    def advance(self) -> None:
        self._bar.advance(self._task)

    def __enter__(self) -> Progress:
        self._bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._bar.__exit__(*exc)


CURVES_TITLE = "Throughput against batch (--find-max-batch)"
ENERGY_TITLE = "Energy over the timed samples, memory pass, clocks"


def show_results(df, baseline_model: str | None = None, *, cpu_count: int | None = None) -> None:
    """The results table, the best mode per variant (reliable rows only), the ratios to a
    baseline variant, one line for every row that is not ok, and a count of the rows whose
    timings are flagged (noisy, unsteady, busy CPU): those are marked and never ranked."""
    from collections import Counter

    from bench.core.case import Case
    from bench.results import views

    busy = lambda r: views.busy(r, cpu_count)  # noqa: E731
    shown = [tables.results(views.with_scaling(views.with_speedup(df, cpu_count)).to_dict("records"), busy)]
    best = views.best_modes(df, cpu_count)
    if not best.empty:
        shown.append(tables.best_modes(best))
    scaling = views.ddp_scaling(df)
    if not scaling.empty:
        shown.append(tables.frame(scaling, views.DDP_TITLE))
    if baseline_model:
        shown.append(tables.ratios(views.ratio_to_baseline(df, baseline_model, cpu_count), baseline_model))
    for title, extra in ((CURVES_TITLE, views.batch_curves(df)), (ENERGY_TITLE, views.energy_memory(df))):
        if not extra.empty:
            shown.append(tables.frame(extra, title))
    show(shown)
    records = df.to_dict("records")
    for line in tables.problems(records, lambda r: Case.from_row(r).label()):
        say(line, "yellow")
    timing = Counter(f for r in records if r.get("status") == "ok" for f in views.flags(r, cpu_count))
    if timing:
        say("flagged timings, marked and never ranked: " + ", ".join(f"{n} {f}" for f, n in timing.items())
            + " (`report --html` lists each row)", "yellow")
    if timing.get("busy CPU"):
        say(f"{timing['busy CPU']} CPU row(s) were measured while other work competed for the cores (load average "
            f"above the core count): their latencies are unreliable. On a shared machine use --threads 1, or rerun "
            f"when it is idle.", "yellow")


def speed_gate_text(results: list[dict], threshold: float, alpha: float) -> str:
    """The speed gate's verdicts as fixed-width text (stdout of `check --speed`)."""
    lines = [f"speed gate: fail when p < {alpha:g} and the ratio's 95% CI upper bound > {1 + threshold:.3f} "
             f"(threshold {threshold:.1%})",
             f"{'case':<52} {'base ms':>9} {'cand ms':>9} {'ratio':>7} {'95% CI':>15} {'p':>8} {'unit':>10}  verdict"]
    for r in results:
        c = r.get("comparison")
        label = r["label"]
        if not c:
            lines.append(f"{label:<52} {'':>9} {'':>9} {'':>7} {'':>15} {'':>8} {'':>10}  {r['verdict']}: {r['reason']}")
            continue
        unit = f"{c['n_base']}v{c['n_cand']} {c['unit'][:6]}"
        verdict = c["verdict"].upper() if c["verdict"] == "regression" else c["verdict"]
        lines.append(f"{label:<52} {c['base_median_ms']:>9.4g} {c['cand_median_ms']:>9.4g} {c['ratio']:>7.3f} "
                     f"[{c['ci_low']:.3f}, {c['ci_high']:.3f}] {_fmt_p(c['p_slower']):>8} {unit:>10}  "
                     f"{verdict}: {c['reason']}")
    return "\n".join(lines)


def _fmt_p(p: float) -> str:
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"
