"""Every table resnet-bench shows, as format-neutral :class:`Table` records of text cells.

A table is built here once (which columns, which headers, how each cell reads) and rendered
by a format module: bench.report.terminal (rich) or bench.report.markdown. A new report format
renders these records; a new table is one builder here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.core.case import Case
from bench.core.stats import CONFIDENCE

#: Status (or verdict) -> rich style; the terminal colours a row's last status cell with it.
STATUS_STYLE = {"ok": "green", "ok-reduced": "yellow", "skipped": "dim", "oom": "red", "timeout": "red",
                "crashed": "bold red", "error": "red", "pass": "green", "fail": "bold red"}


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    right: set[int] = field(default_factory=set)  # indices of right-aligned (numeric) columns
    styles: list[dict[int, str]] = field(default_factory=list)  # per row: column index -> style
    notes: list[str] = field(default_factory=list)  # lines under the table

    def add(self, cells: Sequence[str], styles: dict[int, str] | None = None) -> None:
        self.rows.append([str(c) for c in cells])
        self.styles.append(styles or {})


# ------------------------------------------------------------------ cells
def _missing(value: Any) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return True
    try:
        import pandas as pd

        return value is pd.NA
    except ImportError:  # pragma: no cover
        return False


def fmt(value: Any, digits: int = 4) -> str:
    """A number or value as a cell: 4 significant digits, thousands separators for integers and
    large floats, yes/NO for flags, - for missing."""
    if _missing(value):
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


def percent(value: Any) -> str:
    return f"{value:.1%}" if isinstance(value, (int, float)) and not _missing(value) else "-"


_CELL: dict[str, Callable[[Any], str]] = {"giga": giga, "percent": percent, "auto": fmt, "status": str}


def mode_text(r: dict) -> str:
    """A row's mode in words: ``channels_last fp32 default``, with its backend when not pytorch."""
    backend = r.get("backend")
    tail = f" {backend}" if isinstance(backend, str) and backend and backend != "pytorch" else ""
    return f"{r['layout']} {r['precision']} {r['compile']}{tail}"


# ------------------------------------------------------------------ results
def status_text(row: dict, busy: bool) -> str:
    """A row's status with the flags that make its numbers unreliable."""
    text = str(row.get("status"))
    if row.get("noisy") is True:
        text += " (noisy)"
    if row.get("steady") is False:
        text += " (unsteady)"
    if busy:
        text += " (busy CPU)"
    if row.get("output_ok") is False:
        text += " (output differs!)"
    return text


#: Marks a number that a flagged row gave (bench.results.views.flags): shown, never ranked.
UNTRUSTED = "?"
UNTRUSTED_NOTE = (f"{UNTRUSTED} = not ranked: this row or the one it is divided by is flagged (unsteady, not ok, "
                  "output differs; with one round also noisy or busy CPU), or the ratio's 95% CI is wider than +-5%")


def ratio_cell(value: Any, low: Any = None, high: Any = None, trusted: bool = True) -> str:
    """A paired ratio as people read it: ``1.91x [1.85, 1.97]`` (95% CI), ``1.91x`` without an
    interval (one round), with the untrusted mark when it may not be ranked."""
    if _missing(value):
        return "-"
    text = f"{value:.2f}x" if abs(value) < 100 else f"{value:,.0f}x"
    if not (_missing(low) or _missing(high)) and low != high:
        text += f" [{low:.2f}, {high:.2f}]"
    return text + ("" if trusted else UNTRUSTED)


def speedup_cell(row: dict) -> str:
    """`speedup_vs_eager` with its interval, and the untrusted mark when the row or its
    reference is flagged or the interval is wide."""
    return ratio_cell(row.get("speedup_vs_eager"), row.get("speedup_vs_eager_ci_low"),
                      row.get("speedup_vs_eager_ci_high"), bool(row.get("speedup_trusted", True)))


def results(rows: Iterable[dict], busy: Callable[[dict], bool], title: str = "Results") -> Table:
    """The results table: DISPLAY's terminal columns (bench.results.columns). Rows from
    bench.results.views.with_speedup: an untrusted speedup is marked."""
    from bench.results import columns

    rows = list(rows)
    cols = columns.shown("terminal", rows)
    t = Table(title, [c.header or c.name for c in cols],
              right={i for i, c in enumerate(cols) if c.fmt in ("auto", "giga", "percent")
                     and c.name not in ("model", "workload", "layout", "precision", "compile")})
    for r in rows:
        cells, styles = [], {}
        for i, c in enumerate(cols):
            if c.fmt == "status":
                cells.append(status_text(r, busy(r)))
                styles[i] = STATUS_STYLE.get(str(r.get(c.name)), "")
            elif c.name == "speedup_vs_eager":
                cells.append(speedup_cell(r))
            else:
                cells.append(_CELL[c.fmt](r.get(c.name)))
        t.add(cells, styles)
    if any(c.endswith(UNTRUSTED) for row in t.rows for c in row):
        t.notes.append(UNTRUSTED_NOTE)
    return t


def best_modes(best, title: str = "Best mode per variant (trusted speedups only; over eager fp32 contiguous, "
                                  "paired by round, 95% CI)") -> Table:
    """bench.results.views.best_modes as a table: the winner among trusted speedups, its
    interval and rounds, and why anything faster was not ranked."""
    t = Table(title, ["model", "work", "bs", "px", "device", "best mode", "p50 ms", "img/s", "x eager", "rounds",
                      "note"], right={2, 3, 6, 7, 8, 9})
    for r in best.to_dict("records"):
        mode = "-" if _missing(r.get("layout")) else mode_text(r)
        t.add([r["model"], r["workload"], fmt(r["batch_size"]), fmt(r["image_size"]), r["device"], mode,
               fmt(r.get("latency_ms_p50")), fmt(r.get("throughput_ips")),
               ratio_cell(r.get("speedup_vs_eager"), r.get("speedup_vs_eager_ci_low"), r.get("speedup_vs_eager_ci_high")),
               fmt(r.get("rounds")), r.get("note") or ""],
              {10: "yellow"} if r.get("note") else {})
    return t


def ratios(view, baseline: str) -> Table:
    """bench.results.views.ratio_to_baseline as a table: each ratio paired by round with its
    95% CI; an untrusted ratio is marked."""
    name = f"latency_ratio_to_{baseline}"
    t = Table(f"Latency ratio to {baseline} (> 1 = slower; paired by round, 95% CI)",
              ["model", "work", "bs", "px", "mode", "device", "p50 ms", f"/ {baseline}", "rounds", "note"],
              right={2, 3, 6, 7, 8})
    for r in view.to_dict("records"):
        t.add([r["model"], r["workload"], fmt(r["batch_size"]), fmt(r["image_size"]),
               mode_text(r), r["device"], fmt(r.get("latency_ms_p50")),
               ratio_cell(r.get(name), r.get(f"{name}_ci_low"), r.get(f"{name}_ci_high"), bool(r.get("trusted", True))),
               fmt(r.get(f"{name}_rounds")), r.get("note") or ""])
    return t


STAGES_TITLE = ("Time per stage (stage pass, eager; ms and share of the step, achieved GMAC/s and % of the device's "
                "measured peak)")


def stages(table, title: str = STAGES_TITLE) -> Table:
    """bench.results.stages.stage_table as a table: per case, each stage's ms (share) and GMAC/s
    (% of peak), the residue."""
    from bench.core.profile import STAGES

    t = Table(title, ["model", "bs", "px", "mode", *STAGES, "residue", "step ms"], right=set(range(1, 11)))
    for r in table.to_dict("records"):
        cells = []
        for s in STAGES:
            ms, share, gm, pk = (r.get(f"{s} ms"), r.get(f"{s} share"), r.get(f"{s} GMAC/s"), r.get(f"{s} % peak"))
            if _missing(ms):
                cells.append("-")
                continue
            text = f"{ms:.3g} ({share:.0%})"
            if not _missing(gm):
                text += f" {gm:.3g} G/s" + ("" if _missing(pk) else f" {pk:.0%}")
            cells.append(text)
        residue = "-" if _missing(r.get("residue ms")) else f"{r['residue ms']:.2g} ({r['residue share']:.0%})"
        t.add([r["model"], fmt(r["batch_size"]), fmt(r["image_size"]),
               mode_text(r), *cells, residue, fmt(r.get("step ms (stage pass)"))])
    return t


def stage_diff(diff) -> Table:
    """bench.results.stages.stage_diff as lines: each variant's difference, stage by stage."""
    t = Table("Against the baseline variant, stage by stage (stage pass, ms per step)", ["case", "explained"])
    for r in diff.to_dict("records"):
        t.add([f"bs{r['batch_size']} {r['image_size']}px {r['layout']} {r['precision']} {r['compile']}", r["explained"]])
    return t


def frame(df, title: str) -> Table:
    """Any DataFrame, every column, cells by :func:`fmt`."""
    t = Table(title, [str(c) for c in df.columns])
    for r in df.itertuples(index=False):
        t.add([fmt(v) for v in r])
    return t


def problems(rows: Iterable[dict], labels: Callable[[dict], str]) -> list[str]:
    """One line per row whose status is not ok: label, status, error."""
    return [f"{labels(r)}: {r['status']}: {r.get('error') or ''}" for r in rows if r.get("status") != "ok"]


def flagged(rows: Iterable[dict], labels: Callable[[dict], str]) -> list[str]:
    """One line per flagged row (rows carrying `flags`, bench.results.views.with_flags): label,
    flags, and the error when there is one."""
    return [f"{labels(r)}: {r['flags']}" + (f": {r['error']}" if r.get("error") and not _missing(r["error"]) else "")
            for r in rows if r.get("flags")]


# ------------------------------------------------------------------ registry and profile
def registry(rows: Iterable[dict]) -> Table:
    t = Table("resnet_impl registry", ["name", "block", "depth", "stride", "stem", "shortcut", "groups x width",
                                       "params", "what it is"], right={2, 7})
    for r in rows:
        t.add([r["name"], r["block"], str(r["depth"]), r["stride"], r["stem"], r["shortcut"], r["groups_x_width"],
               f"{r['params']:,}", r.get("description", "")])
    return t


def profile(rows: list[dict]) -> list[Table]:
    """Totals per model, then (when the rows have them) params / MACs per stage."""
    from bench.core.profile import STAGES

    t = Table("Profile (per image; MACs = conv+linear multiply-accumulates, FLOPs = 2 x MACs)",
              ["model", "image px", "params (M)", "GMACs", "GFLOPs", "GMACs incl. BN", "activations (M)",
               "FlopCounterMode agrees"], right={1, 2, 3, 4, 5, 6})
    for r in rows:
        t.add([r["model"], str(r["image_size"]), mega(r["params"]), giga(r["macs"]), giga(r["flops"]),
               giga(r.get("macs_all")), mega(r["activations"]), fmt(r.get("counters_agree"))])
    tables = [t]
    if rows and all(f"macs_{s}" in rows[0] for s in STAGES):
        t2 = Table("Per stage: params (M) / GMACs", ["model", *STAGES], right=set(range(1, len(STAGES) + 1)))
        for r in rows:
            t2.add([r["model"], *[f"{mega(r[f'params_{s}'])} / {giga(r[f'macs_{s}'])}" for s in STAGES]])
        tables.append(t2)
    return tables


# ------------------------------------------------------------------ validation
def _ci_cell(r: dict) -> str:
    if r.get("ci_low") is None:
        return "-"
    return f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}] {r['ci']}"


def validation(check: str, rows: list[dict], title: str) -> Table:
    """A `validate` check's rows (bench.validate): ratios ours / reference with their CIs; the
    distinct skip/error messages become numbered notes under the table."""
    def note_of(r: dict) -> str:
        return f"{r['status']}: {r.get('error') or ''}"

    notes: dict[str, int] = {}
    for r in rows:
        if r.get("status") != "ok":
            notes.setdefault(note_of(r), len(notes) + 1)

    def verdict(r: dict) -> str:
        if r.get("status") != "ok":
            return f"{r['status']} (note {notes[note_of(r)]})"
        return r["verdict"]

    ratio = [("ours ms", lambda r: fmt(r.get("ours_ms"))),
             ("Timer ms" if check == "harness" else "torchvision ms", lambda r: fmt(r.get("ref_ms"))),
             ("ratio (paired)", lambda r: fmt(r.get("ratio"), 4)),
             (f"{CONFIDENCE:.0%} CI (vs band)", _ci_cell),
             ("ours spread", lambda r: percent(r.get("ours_spread"))),
             ("ref spread", lambda r: percent(r.get("ref_spread"))),
             ("rounds", lambda r: fmt(r.get("rounds")))]
    if check == "harness":
        views = [("path", lambda r: r["path"]),
                 ("case", lambda r: f"{Case.from_row({**r, 'workload': 'infer'}).label()} {r['threads']} thr")] + ratio + [
                 ("samples ours/Timer", lambda r: f"{fmt(r.get('ours_samples'))}/{fmt(r.get('ref_samples'))}")]
    else:
        views = [("layout", lambda r: r["layout"]), ("precision", lambda r: r["precision"]),
                 ("compile", lambda r: r["compile"])] + ratio + [
                 ("out max abs diff", lambda r: fmt(r.get("max_abs_diff"), 3)),
                 ("page faults/call ours/tv", lambda r: (f"{r['ours_faults_per_call']:.0f}/{r['ref_faults_per_call']:.0f}"
                                                         if r.get("ours_faults_per_call") is not None else "-")),
                 ("first call s ours/tv", lambda r: (f"{r['ours_first_call_s']:.2f}/{r['ref_first_call_s']:.2f}"
                                                     if r.get("ours_first_call_s") is not None else "-"))]
    views.append(("verdict", verdict))
    text_cols = {"path", "case", "layout", "precision", "compile", "verdict"}
    t = Table(title, [h for h, _ in views], right={i for i, (h, _) in enumerate(views) if h not in text_cols},
              notes=[f"note {i}: {text}" for text, i in notes.items()])
    for r in rows:
        key = r.get("verdict") if r.get("status") == "ok" else r.get("status")
        t.add([cell(r) for _, cell in views], {len(views) - 1: STATUS_STYLE.get(str(key), "")})
    return t
