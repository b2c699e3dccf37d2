"""What each report holds, independent of its format: the tables and figures of a run, of a
comparison of runs and of a speed gate, put together for bench.report.html (and, for a
comparison, for the terminal, Markdown, CSV and JSON)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from bench.core.case import Case
from bench.report import tables
from bench.report.tables import Table, fmt

# ------------------------------------------------------------------ a run


def run_tables(analysis) -> list[Table]:
    """Results (speedups with their intervals, untrusted ones marked), best mode per variant
    among trusted speedups, and latency ratios to the baseline variant (the analysis's, else
    the first model when there are several)."""
    from bench.results import views

    cpu_count = analysis.cpu_count
    out = [tables.results(analysis.records, lambda r: views.busy(r, cpu_count))]
    if not analysis.best.empty:
        out.append(tables.best_modes(analysis.best))
    ratios, baseline = analysis.ratios, analysis.baseline
    if ratios is None and not analysis.frame.empty:
        models = list(dict.fromkeys(analysis.frame["model"]))
        if len(models) > 1:
            baseline = models[0]
            ratios = views.ratio_to_baseline(analysis.frame, baseline, cpu_count)
    if ratios is not None:
        out.append(tables.ratios(ratios, baseline))
    if not analysis.stages.empty:
        out.append(tables.stages(analysis.stages))
    if not analysis.stage_diff.empty:
        out.append(tables.stage_diff(analysis.stage_diff))
    return out


def run_html(analysis, title: str, *, figures: Sequence = (), notes: Sequence[str] = ()) -> str:
    from bench.report import html

    records = analysis.records
    flagged = tables.flagged(records, lambda r: Case.from_row(r).label())
    counts = Counter(f for r in records for f in r["flags"].split(", ") if f)
    return html.run_report(title, analysis.env, analysis.command, flagged, dict(counts), len(records), figures,
                           run_tables(analysis), [*analysis.notes, *notes])


# ------------------------------------------------------------------ a comparison of runs
def _ratio_cell(c: Mapping) -> str:
    if c.get("ratio") is None:
        return "-"
    mark = tables.UNTRUSTED if c.get("flags") or c.get("base_flags") else ""
    return f"{c['ratio']:.3f}{mark}"


def _ci_cell(c: Mapping) -> str:
    if c.get("ci_low") is None:
        return "no samples" if c.get("method") == "medians" else "-"
    return f"[{c['ci_low']:.3f}, {c['ci_high']:.3f}]"


def compare_tables(cmp: Mapping) -> list[Table]:
    """The environments side by side (differences marked), one line per shared case and later
    run (ratio to the first run, its 95% CI, the change it shows), the cases not in every run."""
    runs = cmp["runs"]
    from bench.results.compare import ENV_FIELDS

    differ = {d["field"] for d in cmp["env_differences"]}
    env = Table("Environments" + (f" ({len(differ)} difference(s) marked)" if differ else " (no difference)"),
                ["", *runs, "differs"])
    for k, label in ENV_FIELDS.items():
        env.add([label, *[fmt(e.get(k)) for e in cmp["environments"]], "DIFFERS" if k in differ else ""],
                {len(runs) + 1: "yellow"} if k in differ else {})
    many = len(runs) > 2  # name the run on each line only when there are several
    head = (["case"] + ["run"] * many + ["base p50 ms", ("run" if many else runs[1]) + " p50 ms", "ratio", "95% CI",
                                          "change", "note"])
    ratios = Table(f"Latency ratio to the base, {runs[0]}, per case (> 1 = slower; 95% CI over the rounds where both "
                   "runs have 3 or more, else over the one process's samples)",
                   head, right={1 + many, 2 + many, 3 + many})
    style = {"slower": "red", "faster": "green"}
    for c in cmp["cases"]:
        note = "; ".join(p for p in (c["status"] if c["status"] != "ok" else "",
                                     f"base: {c['base_flags']}" if c.get("base_flags") else "",
                                     f"run: {c['flags']}" if c.get("flags") else "",
                                     f"stage pass: {c['explained']}" if c.get("explained") else "") if p)
        ratios.add([c["label"]] + [c["run"]] * many + [fmt(c.get("base_ms")), fmt(c.get("ms")), _ratio_cell(c),
                                                       _ci_cell(c), c.get("change") or "-", note],
                   {5 + many: style.get(c.get("change"), "")})
    if any(_ratio_cell(c).endswith(tables.UNTRUSTED) for c in cmp["cases"]):
        ratios.notes.append(f"{tables.UNTRUSTED} = a side's row is flagged (noisy, unsteady, busy CPU, not ok): the "
                            "ratio is shown, not to be trusted")
    ratios.notes += list(cmp.get("notes", []))
    out = [env, ratios]
    if cmp["only_in"]:
        only = Table("Cases not in every run (listed, not compared)", ["case", "in", "missing from"])
        for o in cmp["only_in"]:
            only.add([o["label"], ", ".join(o["runs"]), ", ".join(r for r in runs if r not in o["runs"])])
        out.append(only)
    return out


def compare_records(cmp: Mapping) -> list[dict]:
    """One flat record per shared case and later run, then one per case not in every run
    (``status`` "only in: ..."): the CSV's rows."""
    out = [{k: v for k, v in c.items() if k != "case"} for c in cmp["cases"]]
    for o in cmp["only_in"]:
        out.append({k: v for k, v in o.items() if k not in ("case", "runs")} | {"status": "only in: " + ", ".join(o["runs"])})
    return out


def compare_html(cmp: Mapping, figures: Sequence = ()) -> str:
    from bench.report import html

    return html.compare_report("resnet-bench compare: " + " vs ".join(cmp["runs"]), cmp["runs"],
                               *_split(compare_tables(cmp)), figures)


def _split(ts: list[Table]) -> tuple[Table, list[Table]]:
    return ts[0], ts[1:]


# ------------------------------------------------------------------ a speed gate
def gate_html(doc: Mapping, verdicts: str, source: str, figures: Sequence = ()) -> str:
    from bench.report import html

    return html.gate_report(f"resnet-bench speed gate: {source}", verdicts, doc.get("environment") or {},
                            doc.get("command") or "", figures)
