"""Text we did not write (a plugin's model name, a results file's cells, an error message) reaches
every output escaped for that output (bench.escape): no control code reaches a terminal,
no formula a spreadsheet, no markup a Markdown table, no mathtext matplotlib; a name of 100,000
characters costs no more than a short one."""

from __future__ import annotations

import io
import time

import numpy as np
import pandas as pd
import pytest

from bench.results.analysis import analyse
from bench import escape
from bench.report import markdown, tables, terminal

OSC_TITLE = "\x1b]0;pwned\x07"
CLEAR = "\x1b[2J\x1b[H"
RED = "\x1b[31m"
C1_CSI = "\x9b31m"
HOSTILE = f"resnet{OSC_TITLE}{CLEAR}{RED}50{C1_CSI}\b\x7f\r\nrm | `x` <img src=x onerror=alert(1)> *b* [l](http://e)"
#: What no output may carry raw: ESC, BEL, C1 CSI, backspace, DEL, CR.
RAW = ("\x1b", "\x07", "\x9b", "\b", "\x7f", "\r")


def no_raw_control(text: str) -> bool:
    return not any(c in text for c in RAW)


# ---------------------------------------------------------------- terminal
@pytest.mark.parametrize("raw,shown", [
    ("\x1b[2J", "\\x1b[2J"), (OSC_TITLE, "\\x1b]0;pwned\\x07"), ("a\x07b", "a\\x07b"), (C1_CSI, "\\x9b31m"),
    ("one\ntwo", "one\\ntwo"), ("cr\rlf", "cr\\rlf"), ("tab\t", "tab\\t"), ("bs\b", "bs\\x08"), ("del\x7f", "del\\x7f"),
    ("nul\x00", "nul\\x00"), ("\x85next-line", "\\x85next-line"), ("\u202eevil", "\\u202eevil"),
    ("line\u2028sep", "line\\u2028sep")])
def test_terminal_shows_every_control_character(raw, shown):
    assert escape.terminal(raw) == shown


def test_terminal_keeps_printable_text_and_is_stable():
    for s in ("resnet50d", "wide_resnet50_2 [x]", "é 日本語 ✓ 🙂", "C:\\runs\\a", ""):
        assert escape.terminal(s) == s
    once = escape.terminal(HOSTILE)
    assert no_raw_control(once) and "\n" not in once and escape.terminal(once) == once
    assert escape.terminal(3.5) == "3.5"


# ---------------------------------------------------------------- Markdown
def test_markdown_escapes_what_markdown_and_html_read():
    assert escape.markdown("a|b") == "a\\|b"
    assert escape.markdown("`x`") == "\\`x\\`"
    assert escape.markdown("<b>") == "\\<b\\>"
    assert escape.markdown("*[x]*\\") == "\\*\\[x\\]\\*\\\\"
    assert escape.markdown("_x_ a_b") == "\\_x\\_ a_b"  # only where `_` could open or close emphasis
    assert escape.markdown("$\\foo{$ &lt;") == "\\$\\\\foo{\\$ \\&lt;"  # no math (GitHub), no entity
    assert escape.markdown("one\ntwo") == "one\\\\ntwo"  # terminal's \n, its backslash escaped: reads "\n"
    assert escape.markdown("channels_last bf16") == "channels_last bf16"
    assert no_raw_control(escape.markdown(HOSTILE)) and "\n" not in escape.markdown(HOSTILE)


def test_markdown_cell_parses_as_one_plain_text_cell():
    markdown_it = pytest.importorskip("markdown_it")  # rich's own dependency
    md = markdown_it.MarkdownIt("commonmark").enable("table").enable("strikethrough")
    nasty = HOSTILE + " ~~s~~ &lt; a\\|b _e_ __s__ ![i](x)"
    doc = f"| a | b |\n|---|---|\n| {escape.markdown(nasty)} | 2 |\n"
    tokens = md.parse(doc)
    cells = [t for t in tokens if t.type == "inline"]
    assert len(cells) == 4  # two headers, two cells: no `|` split the row, no newline ended it
    assert [c.type for c in cells[2].children] == ["text"]  # no code, link, image, emphasis, html, entity
    assert cells[2].children[0].content == escape.terminal(nasty)  # reads as the terminal shows it


def test_markdown_code_span_cannot_be_closed():
    markdown_it = pytest.importorskip("markdown_it")
    md = markdown_it.MarkdownIt("commonmark")
    for cmd in ("resnet-bench run --models a,b", "x ` y `` z", "`lead", "trail`", " spaced ", "a\n\n# heading"):
        tokens = md.parse(f"Command: {escape.markdown_code(cmd)}\n")
        (inline,) = [t for t in tokens if t.type == "inline"]
        kinds = [c.type for c in inline.children]
        assert kinds == ["text", "code_inline"], (cmd, kinds)
        assert inline.children[1].content == escape.terminal(cmd)


# ---------------------------------------------------------------- CSV
@pytest.mark.parametrize("cell", ["=HYPERLINK(\"http://e\",\"x\")", "=cmd|' /C calc'!A0", "+SUM(A1)",
                                  "-2+3+cmd|' /C calc'!A0", "@SUM(A1)", "\t=1+1", "\r=1+1"])
def test_csv_formula_cells_get_a_quote(cell):
    assert escape.csv_cell(cell) == "'" + cell
    assert escape.csv_unescape(escape.csv_cell(cell)) == cell


@pytest.mark.parametrize("value", ["resnet50", "-1.5", "+3", "1e-3", "'quoted", "''", "'=x", "''@y", "",
                                   -1.5, -3, 0, None, float("nan"), True])
def test_csv_round_trip_and_numbers_stay_numbers(value):
    out = escape.csv_cell(value)
    if not isinstance(value, str):
        assert out is value
    elif value in ("-1.5", "+3", "1e-3"):
        assert out == value  # a plain number is no formula
    back = escape.csv_unescape(out)
    assert back is value if not isinstance(value, str) else back == value


def test_csv_frame_quotes_text_and_keeps_numbers(tmp_path):
    df = pd.DataFrame({"model": ["=HYPERLINK(\"x\")", "resnet50", "@evil", "'=already"],
                       "latency_ms_p50": [-1.5, 2.0, 3.0, np.nan], "batch_size": [1, -2, 3, 4],
                       "error": [None, "-x", "+1", "\tx"]})
    out = escape.csv_frame(df)
    assert list(out["model"]) == ["'=HYPERLINK(\"x\")", "resnet50", "'@evil", "''=already"]
    assert list(out["error"])[1:] == ["'-x", "+1", "'\tx"] and pd.isna(out["error"][0])
    assert out["latency_ms_p50"].dtype.kind == "f" and out["batch_size"].dtype.kind == "i"
    assert out["latency_ms_p50"][0] == -1.5 and df["model"][0] == "=HYPERLINK(\"x\")"  # the input is not changed
    path = tmp_path / "r.csv"
    path.write_text(out.to_csv(index=False))
    assert not any(line.startswith(("=", "+", "@")) for line in path.read_text().splitlines())
    back = pd.read_csv(path)
    assert back["latency_ms_p50"][0] == -1.5 and back["batch_size"][1] == -2  # read back as numbers
    assert [escape.csv_unescape(v) for v in back["model"]] == list(df["model"])  # what bench.store.load should do


def test_csv_frame_quotes_hostile_column_names():
    out = escape.csv_frame(pd.DataFrame({"=x": ["a"], "ok": [1]}))
    assert list(out.columns) == ["'=x", "ok"]


# ---------------------------------------------------------------- matplotlib
def test_mathtext_escapes_dollars_and_shortens():
    assert escape.mathtext("$\\foo{$") == "\\$\\foo{\\$"
    assert escape.mathtext("a\nb\x1b") == "a\\nb\\x1b"
    long = escape.mathtext("m" * 100_000)
    assert len(long) == 80 and long.endswith(escape.ELLIPSIS)
    assert len(escape.mathtext("m" * 100_000, limit=10)) == 10
    assert escape.mathtext("resnet50 channels_last/bf16") == "resnet50 channels_last/bf16"


@pytest.mark.parametrize("name", ["$\\foo{$", "$x$ and $\\frac{1}{$", "$", "\\$x$", "a\\", "$$", "\x1b[31m$\\sqrt{2}$"])
def test_mathtext_draws_as_written_without_error(name):
    pytest.importorskip("matplotlib")
    from bench.report import figbase

    fig, (ax,) = figbase.new_figure(3, 2)
    label = escape.mathtext(name)
    text = ax.set_title(label)
    ax.set_yticks([0], [label])
    fig.canvas.draw()  # mathtext would be parsed here
    assert text._preprocess_math(text.get_text()) == (escape.terminal(name), False)  # plain text, read as written


def test_unescaped_mathtext_does_fail():
    """The hazard is real: the raw name, drawn, fails to parse (so the escaping is what saves it)."""
    pytest.importorskip("matplotlib")
    from bench.report import figbase

    fig, (ax,) = figbase.new_figure(3, 2)
    ax.set_title("$\\foo{$")
    with pytest.raises(ValueError):
        fig.canvas.draw()


def test_shorten():
    assert escape.shorten("abc", 3) == "abc" and escape.shorten("abcd", 3) == "ab" + escape.ELLIPSIS
    assert escape.shorten(12345, 4) == "123" + escape.ELLIPSIS


# ---------------------------------------------------------------- renderers
def hostile_table() -> tables.Table:
    t = tables.Table(f"Results for {HOSTILE}", ["model", f"/ {HOSTILE}", "p50 ms"], right={2})
    t.add([HOSTILE, "x", "1.5"], {0: "red"})
    t.add(["resnet50", HOSTILE, "2"])
    t.notes.append(f"note: {HOSTILE}")
    return t


def test_a_hostile_table_through_the_terminal():
    from rich.console import Console

    buf = io.StringIO()
    terminal.show([hostile_table()], Console(file=buf, width=400))
    out = buf.getvalue()
    assert no_raw_control(out)
    assert "resnet\\x1b]0;pwned\\x07" in out  # shown, not dropped
    # one table line per row: no newline inside a cell
    assert sum("rm | `x`" in line for line in out.splitlines()) == 5  # title, header, two cells, the note


def test_a_hostile_table_through_markdown():
    out = markdown.render(hostile_table())
    assert no_raw_control(out)
    lines = out.splitlines()
    table = [ln for ln in lines if ln.startswith("|")]
    assert len(table) == 4
    for ln in table:  # three columns: four unescaped pipes a line
        assert len(ln.replace("\\|", "")) - len(ln.replace("\\|", "").replace("|", "")) == 4
    assert out.count("<img") == out.count("\\<img") > 0 and "`x`" not in out


def test_messages_progress_and_gate_text_are_escaped(capsys):
    terminal.say(f"warning: {HOSTILE}", "yellow")
    err = capsys.readouterr().err
    assert no_raw_control(err) and err.count("\n") == 1
    with terminal.Progress(2, quiet=True, description=HOSTILE) as p:
        assert no_raw_control(p._bar.tasks[0].description)
        p.describe("case " + OSC_TITLE)
        assert p._bar.tasks[0].description == "case \\x1b]0;pwned\\x07"
    text = terminal.speed_gate_text([{"label": HOSTILE, "verdict": "skipped" + CLEAR, "reason": OSC_TITLE}], 0.05, 0.01)
    assert no_raw_control(text) and len(text.splitlines()) == 4  # rule, header, what ms means, the case


def row(model, p50=10.0, **kw):
    r = {"model": model, "device": "cpu", "workload": "infer", "batch_size": 1, "image_size": 224,
         "layout": "contiguous", "precision": "fp32", "compile": "none", "status": "ok", "latency_ms_p50": p50,
         "throughput_ips": 1e3 / p50, "noisy": False, "steady": True, "load_avg_1m": 0.3, "output_ok": True}
    r.update(kw)
    return r


def test_results_markdown_escapes_frame_cells_environment_and_command():
    rows = [row(HOSTILE), row("resnet50", layout="channels_last"),
            row("resnet18", status="error", error=f"boom {OSC_TITLE}|`x`")]
    env = {"device_name": f"CPU {CLEAR}|<b>", "device": "cpu", "torch": "2.5", "cpu_count": 4}
    out = markdown.results_markdown(analyse(rows, env, {}, f"resnet-bench run --models `{OSC_TITLE}`\n\n# injected"))
    assert no_raw_control(out) and "<b>" not in out and out.count("\\<b\\>") == 1
    assert out.count("<img") == out.count("\\<img") == 2  # results and best-mode tables
    assert "\n# injected" not in out
    pipes = {len(ln.replace("\\|", "")) - len(ln.replace("\\|", "").replace("|", ""))
             for ln in out.splitlines() if ln.startswith("|")}
    assert len(pipes) <= 2  # results table and best-mode table: each line of a table has its table's count
    assert "channels_last" in out  # intraword underscores kept readable


# ---------------------------------------------------------------- figures
def fig_row(model, macs, ms, layout="contiguous", bs=1, **kw):
    rng = np.random.default_rng(len(model) + bs)
    r = {"model": model, "device": "cpu", "workload": "infer", "batch_size": bs, "image_size": 224,
         "layout": layout, "precision": "fp32", "compile": "none", "status": "ok", "macs": macs,
         "latency_ms_p50": ms, "throughput_ips": bs * 1e3 / ms, "noisy": False, "steady": True,
         "load_avg_1m": 0.5, "samples_ms": list(ms * rng.lognormal(0, 0.02, 30))}
    r.update(kw)
    return r


def test_hostile_names_in_every_figure_draw_fast():
    pytest.importorskip("matplotlib")
    import warnings

    from bench.report import figures

    math_name, long_name = "$\\foo{$", "x" * 100_000
    env = {"device": "cpu", "device_name": "CPU $\\bar{$ " + "y" * 100_000, "torch": "9", "time_utc": "2030-01-02",
           "cpu_count": 4}
    rows = []
    for name, macs in ((math_name, 1e9), (long_name, 2e9), (f"ctl{CLEAR}\n", 3e9)):
        for bs in (1, 2):
            rows += [fig_row(name, macs, 10.0 * bs), fig_row(name, macs, 6.0 * bs, layout="channels_last" + OSC_TITLE),
                     fig_row(name, macs, 5.0 * bs, layout="$x$", noisy=True)]
        rows.append(fig_row(name, macs, 4.0, bs=4, world_size=2, batch_per_rank=2))
        rows.append(fig_row(name, macs, 4.0, bs=2, world_size=1, batch_per_rank=2))
    rows.append(fig_row(math_name, 1e9, 3.0, status="$\\oops{$"))  # a status becomes a drawn flag
    cmp = {"runs": ["$a$/run", "b" * 100_000], "environments": [env, env],
           "cases": [{"label": math_name, "run": "b" * 100_000, "ratio": 1.1, "ci_low": 1.0, "ci_high": 1.2},
                     {"label": long_name, "run": "b" * 100_000, "ratio": 0.9, "ci_low": None, "ci_high": None}]}
    gate = {"threshold": 0.05, "environment": env, "base": {"ref": "$\\x{$"},
            "cases": [{"label": long_name + "$", "verdict": "$\\v{$", "base_rounds": [[10.0, 10.1, 9.9]] * 3,
                       "candidate_rounds": [[11.0, 11.1, 10.9]] * 3,
                       "comparison": {"ratio": 1.1, "ci_low": 1.05, "ci_high": 1.15}}]}
    t0 = time.process_time()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        figs = figures.run_figures(analyse(rows, env)) + figures.compare_figures(cmp) + figures.gate_figures(gate)
        for f in figs:
            f.png()  # layout and every text drawn here
    took = time.process_time() - t0
    assert {"throughput_vs_gmacs", "batch_scaling", "speedup_heatmap", "latency_distribution", "multi_gpu_scaling",
            "compare_ratios", "speed_gate"} <= {f.name.split("-")[0] for f in figs}
    assert not [w for w in caught if "Glyph" in str(w.message)]  # no control character reached a font
    assert took < 60, f"{took:.0f} s of CPU to draw {len(figs)} figures"
    for f in figs:
        for text in f.fig.findobj(lambda a: hasattr(a, "get_text")):
            assert len(text.get_text()) <= 1300 and no_raw_control(text.get_text())


def test_a_long_device_name_gives_a_short_unique_file_stem():
    from bench.report import figbase

    a, b = figbase.slug("plot", "d" * 100_000 + "a"), figbase.slug("plot", "d" * 100_000 + "b")
    assert len(a) <= figbase.SLUG_LIMIT and len(b) <= figbase.SLUG_LIMIT and a != b
    assert figbase.slug("throughput_vs_gmacs", "cpu", "infer", "224px") == "throughput_vs_gmacs-cpu-infer-224px"


def test_html_cuts_absurd_text():
    from bench.report import html

    page = html.table(tables.Table("t", ["model"], rows=[["x" * 100_000 + "<b>"]], styles=[{}]))
    assert "x" * html.TEXT_LIMIT not in page and "<b>" not in page and len(page) < 10_000
