"""HTML: one self-contained file for a run, a comparison of runs or a speed gate.

Figures are embedded as PNG data URIs, styles inline; the page holds no script and loads
nothing (its Content-Security-Policy forbids any request but data: images), so it reads the
same offline, from an e-mail attachment or a CI artifact. Tables are
bench.report.tables.Table records, rendered here as HTML tables; every text is escaped.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
from collections.abc import Iterable, Mapping, Sequence

from bench import escape
from bench.report.tables import Table

#: Marks a page written by this module (a later --html may replace such a file, no other).
GENERATOR = "resnet-bench report"
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
#: At most this many characters of one text (a cell, a line, a title) on the page: a name of
#: 100,000 characters is cut (bench.escape.shorten), not repeated in every table.
TEXT_LIMIT = 4000

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5em auto;max-width:1400px;
color:#1b1b1b;padding:0 1em;line-height:1.4}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.82em;margin:.6em 0 1.2em}
caption{text-align:left;font-weight:600;padding:.3em 0}
th,td{border:1px solid #ddd;padding:.22em .5em;vertical-align:top}th{background:#f4f6f8;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr:nth-child(even) td{background:#fafafa}
.st-green{color:#1e7b34}.st-yellow{color:#8a6d00}.st-red,.st-bold-red{color:#b3261e}.st-bold-red{font-weight:700}
.st-dim{color:#777}.note{color:#555;font-size:.85em}
figure{margin:1em 0 2em}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#444;max-width:1100px}
ul.flagged li{margin:.1em 0}.ok{color:#1e7b34}.warn{color:#8a6d00}
code{background:#f4f6f8;padding:.1em .3em;border-radius:3px;word-break:break-all}
"""


def esc(text) -> str:
    """`text` for HTML text or a quoted attribute: shortened to TEXT_LIMIT characters, then
    ``html.escape`` (``& < > " '``)."""
    return html.escape(escape.shorten(text, TEXT_LIMIT), quote=True)


def table(t: Table, *, id: str | None = None) -> str:
    """A :class:`Table` as an HTML table: title as caption, numeric columns right-aligned, a
    cell's style (STATUS_STYLE) as a class, notes as a list under it."""
    out = [f'<table{f" id={esc(id)!r}" if id else ""}>', f"<caption>{esc(t.title)}</caption>", "<thead><tr>"]
    out += [f"<th>{esc(h)}</th>" for h in t.headers]
    out.append("</tr></thead><tbody>")
    for cells, styles in zip(t.rows, t.styles):
        tds = []
        for i, c in enumerate(cells):
            cls = [*(["num"] if i in t.right else []), *([f"st-{styles[i].replace(' ', '-')}"] if styles.get(i) else [])]
            tds.append(f'<td class="{" ".join(cls)}">{esc(c)}</td>' if cls else f"<td>{esc(c)}</td>")
        out.append("<tr>" + "".join(tds) + "</tr>")
    out.append("</tbody></table>")
    if t.notes:
        out.append('<ul class="note">' + "".join(f"<li>{esc(n)}</li>" for n in t.notes) + "</ul>")
    return "\n".join(out)


def figure(fig) -> str:
    """A bench.report.figbase.Figure as <figure>: the PNG as a data URI, its caption under it."""
    png = fig.png()
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")  # PNG IHDR
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure id="fig-{esc(fig.name)}"><img src="data:image/png;base64,{data}" width="{width}" '
            f'height="{height}" alt="{esc(fig.title)}"><figcaption><b>{esc(fig.title)}.</b> {esc(fig.caption)}'
            f"</figcaption></figure>")


def key_values(pairs: Iterable[tuple[str, object]], title: str, id: str | None = None) -> str:
    t = Table(title, ["", "value"])
    for k, v in pairs:
        t.add([k, "-" if v in (None, "") else v])
    return table(t, id=id)


def bullet_list(lines: Sequence[str], css: str = "flagged") -> str:
    return f'<ul class="{css}">' + "".join(f"<li>{esc(x)}</li>" for x in lines) + "</ul>"


def page(title: str, sections: Sequence[str]) -> str:
    """The document: head (charset, CSP, generator, styles), the title, the sections, a footer."""
    from bench import __version__

    when = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    return "\n".join([
        "<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        f'<meta name="generator" content="{GENERATOR} {esc(__version__)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>", *sections,
        f'<footer class="note">Written by resnet-bench {esc(__version__)} at {esc(when)}. One file: figures '
        f"embedded, no script, no network.</footer>", "</body></html>", ""])


def section(heading: str, body: str, id: str) -> str:
    return f'<section id="{esc(id)}"><h2>{esc(heading)}</h2>\n{body}\n</section>'


# ------------------------------------------------------------------ documents
ENV_SHOWN = (("device", "device"), ("device_name", "device name"), ("cpu_model", "CPU"), ("cpu_isa", "CPU ISA"),
             ("cpu_count", "CPUs"), ("threads", "threads"), ("torch", "torch"), ("torchvision", "torchvision"),
             ("cuda", "CUDA"), ("cudnn", "cuDNN"), ("python", "Python"), ("platform", "platform"),
             ("git_commit", "commit"), ("time_utc", "time (UTC)"))


def run_report(title: str, env: Mapping, command: str, flagged: Sequence[str], counts: Mapping[str, int],
               n_rows: int, figures: Sequence, tables: Sequence[Table], notes: Sequence[str] = ()) -> str:
    """A run: a summary of what to read with care, the figures, the tables, every flagged row
    stated plainly (status not ok, noisy, unsteady, busy CPU, output differs), the environment
    and the command."""
    if flagged:
        summary = ", ".join(f"{n} {k}" for k, n in counts.items())
        head = (f'<p class="warn">{len(flagged)} of {n_rows} row(s) are flagged ({esc(summary)}): their numbers '
                f'are shown marked and never ranked, in the tables and the figures. '
                f'<a href="#flagged">Each one is listed below.</a></p>')
        care = bullet_list(flagged)
    else:
        head = care = (f'<p class="ok">All {n_rows} row(s) are ok, steady, not noisy, not measured on a busy CPU, '
                       f"and their outputs match eager fp32.</p>")
    if notes:
        head += bullet_list(notes, "note")
    figs = "\n".join(figure(f) for f in figures) or '<p class="note">No figure: these rows hold nothing to draw.</p>'
    env_html = key_values(((label, env.get(k)) for k, label in ENV_SHOWN), "Environment", id="env")
    env_html += f"<p>Command: <code>{esc(command or '(not recorded)')}</code></p>"
    return page(title, [section("Summary", head, "summary"), section("Figures", figs, "figures"),
                        section("Tables", "\n".join(table(t) for t in tables), "tables"),
                        section("Rows to read with care", care, "flagged"),
                        section("Environment and command", env_html, "environment")])


def compare_report(title: str, runs: Sequence[str], env_table: Table, tables: Sequence[Table],
                   figures: Sequence) -> str:
    """A comparison of runs: the runs and their environments' differences, the ratio table
    (its notes say which ratios have no CI), the cases not in every run, the figure."""
    head = bullet_list([f"run {i + 1}: {r}" + (" (the base: every ratio is to this run)" if i == 0 else "")
                        for i, r in enumerate(runs)], "note")
    figs = "\n".join(figure(f) for f in figures)
    return page(title, [section("Runs", head + table(env_table, id="env"), "runs"),
                        section("Ratios per case", "\n".join(table(t) for t in tables) + figs, "tables")])


def gate_report(title: str, verdicts: str, env: Mapping, command: str, figures: Sequence) -> str:
    """A speed gate: its verdict lines, the figure of both sides, the environment."""
    body = "<pre>" + "\n".join(esc(line) for line in verdicts.split("\n")) + "</pre>"  # TEXT_LIMIT per line
    body += "\n".join(figure(f) for f in figures)
    env_html = key_values(((label, env.get(k)) for k, label in ENV_SHOWN), "Environment", id="env")
    env_html += f"<p>Command: <code>{esc(command or '(not recorded)')}</code></p>"
    return page(title, [section("Verdicts", body, "verdicts"), section("Environment and command", env_html,
                                                                        "environment")])
