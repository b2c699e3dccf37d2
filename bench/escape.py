"""One escaping function per output kind, for text we did not write: a model name (a plugin may
register any name), a results file's cells, an error message, a path.

- :func:`terminal`: a terminal line (rich tables, messages, progress bars, plain ``print``).
- :func:`markdown`: a Markdown table cell or paragraph text; :func:`markdown_code` a code span.
- :func:`csv_cell` / :func:`csv_frame`: a spreadsheet-safe CSV cell / DataFrame (the OWASP rule);
  :func:`csv_unescape` undoes exactly that on reading our own CSV back.
- :func:`mathtext`: a matplotlib text (label, tick, legend entry, title), never parsed as math.
- :func:`shorten`: any text cut to a length, for outputs where an absurdly long name is a cost.

HTML is escaped by bench.report.html (``html.escape``). Tables (bench.report.tables) keep raw
text; each renderer escapes at the point where text becomes output, so nothing is escaped twice.
Pure Python: no pandas, rich or matplotlib import here.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["terminal", "markdown", "markdown_code", "csv_cell", "csv_frame", "csv_unescape", "mathtext", "shorten"]

ELLIPSIS = "\u2026"

# ------------------------------------------------------------------ control characters
#: C0 (U+0000-U+001F, newline and tab included), DEL, C1 (U+0080-U+009F: U+009B is a one-byte
#: CSI), the Unicode line and paragraph separators, and the bidirectional controls that reorder
#: what is shown (the "Trojan Source" set).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _visible(m: re.Match) -> str:
    c = m.group()
    return _NAMED.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")


def terminal(text: Any) -> str:
    """For a terminal (rich or ``print``): every control character shown as its escape, so the
    text cannot move the cursor, set the title, clear the screen, ring the bell or break a line.

    ESC is shown as the four characters ``\\x1b``, a C1 CSI as ``\\x9b``, DEL as ``\\x7f``, a
    newline as ``\\n`` (also ``\\r``, ``\\t``), a bidirectional override as ``\\u202e``: one
    message stays one line, in the order it was written. Printable Unicode is kept; a backslash
    is kept as is (a Windows path reads as written). Not markup-safe by itself: rich callers
    pass the result as ``rich.text.Text``."""
    text = str(text)
    return _CONTROL.sub(_visible, text) if _CONTROL.search(text) else text


# ------------------------------------------------------------------ Markdown
#: Every one of these gets a backslash in front (CommonMark escapes any ASCII punctuation so);
#: ``$`` for renderers with math (GitHub's ``$...$``). ``_`` only where it could open or close
#: emphasis: not between two letters or digits (``channels_last`` stays readable in the file).
_MARKDOWN = re.compile(r"[\\`*\[\]<>|&~$]|(?<![^\W_])_|_(?![^\W_])")


def markdown(text: Any) -> str:
    """For a Markdown table cell or a line of paragraph text (results.md, ``--format markdown``):
    :func:`terminal` first (control characters and newlines shown as escapes, so a cell stays
    on its row and a line stays a line; no ``<br>``), then a backslash before every character
    that Markdown or HTML would read: ``\\ ` * [ ] < > | & ~ $`` and ``_`` where it could start
    emphasis. Rendered, the text reads as :func:`terminal` shows it: no table split by ``|``,
    no code span, link, image, emphasis, HTML tag, entity or math."""
    return _MARKDOWN.sub(lambda m: "\\" + m.group(), terminal(text))


def markdown_code(text: Any) -> str:
    """For a Markdown code span outside a table (``Command: ...``): :func:`terminal` first, then
    fenced with one backtick more than the longest run of backticks inside (padded with a space
    where the text starts or ends with a backtick or a space), so the text cannot close the
    span. Inside a code span nothing else is read, so nothing else needs escaping."""
    s = terminal(text)
    runs = [len(r) for r in re.findall("`+", s)]
    fence = "`" * (max(runs, default=0) + 1)
    if not s or s[0] in "` " or s[-1] in "` ":
        s = f" {s} "
    return f"{fence}{s}{fence}"


# ------------------------------------------------------------------ CSV
#: OWASP CSV injection: a cell starting with one of these is a formula to a spreadsheet.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def _needs_quote(s: str) -> bool:
    # Leading quotes are looked through so that csv_unescape can tell our quote from the data's:
    # "'=x" is written "''=x" and read back "'=x". A plain number ("-1.5") is no formula.
    bare = s.lstrip("'")
    return bare.startswith(_FORMULA_START) and not _NUMBER.fullmatch(bare)


def csv_cell(value: Any) -> Any:
    """For one CSV cell a spreadsheet may open (results.csv, ``--format csv``): a string that
    starts with ``= + - @``, a tab or a CR gets a leading ``'`` so that Excel, LibreOffice and
    Google Sheets show it as text instead of running it as a formula (OWASP). A string that is
    just a number (``-1.5``) is left alone, so is anything that is not a string (numbers stay
    numbers). The quote stays visible in the cell; :func:`csv_unescape` removes it."""
    return "'" + value if isinstance(value, str) and _needs_quote(value) else value


def csv_frame(df):
    """For writing a DataFrame as CSV: a copy with :func:`csv_cell` applied to every cell of its
    text (object / string dtype) columns and to its column names. Numeric columns are kept as
    they are, so numbers stay numbers."""
    out = df.copy()
    for i in range(out.shape[1]):
        col = out.iloc[:, i]
        if col.dtype.kind == "O":  # object, pandas' str and category of strings
            out.isetitem(i, col.map(csv_cell))
    out.columns = [csv_cell(c) for c in out.columns]
    return out


def csv_unescape(value: Any) -> Any:
    """For reading our own CSV back (bench.store.load): removes exactly the ``'`` that
    :func:`csv_cell` added, so ``csv_unescape(csv_cell(x)) == x`` for every x; anything that
    is not a string, or that csv_cell would not have quoted, comes back unchanged."""
    if isinstance(value, str) and value.startswith("'") and _needs_quote(value[1:]):
        return value[1:]
    return value


# ------------------------------------------------------------------ matplotlib
def shorten(text: Any, limit: int) -> str:
    """`text` as at most `limit` characters: cut, its last character an ellipsis when cut.
    For outputs where an absurdly long name costs time or space (figures, HTML)."""
    s = str(text)
    return s if len(s) <= limit else s[: max(limit - 1, 0)] + ELLIPSIS


def mathtext(text: Any, limit: int = 80) -> str:
    """For a matplotlib text (axis label, tick label, legend entry, annotation, title): never
    parsed as mathtext, at most `limit` characters drawn.

    Control characters and newlines are shown as :func:`terminal` shows them (so the font has a
    glyph for every character and one label stays one line; callers join pieces with their own
    ``\\n``); the text is shortened to `limit` characters with an ellipsis (a 100,000-character
    name would otherwise take minutes to lay out); every ``$`` becomes ``\\$``. With no
    unescaped ``$`` left, matplotlib draws the text as plain text, where a backslash is a
    literal backslash and ``\\$`` a dollar sign, so ``$\\foo{$`` is drawn as written instead of
    failing to parse. Assumes ``text.usetex`` is off (the default; LaTeX would read more)."""
    s = shorten(terminal(shorten(text, limit)), limit)
    return s.replace("$", "\\$")
