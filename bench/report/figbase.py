"""What every figure shares: the :class:`Figure` record (a matplotlib figure, its file name, its
title and its caption), an Agg-backed blank figure, a caption that names the units, the device,
the torch version and the date, and PNG/SVG output.

matplotlib is imported lazily, only here and in the figure modules, and never through pyplot:
figures are ``matplotlib.figure.Figure`` objects on an Agg canvas, so no display, no GUI
backend and no global figure state are involved, whatever backend the caller configured.

Every drawn text that can hold a name or other file text goes through
bench.escape.mathtext (never parsed as math, control characters shown, shortened): the
figure modules escape their labels, ticks, legend entries and annotations piece by piece (their
own ``\n`` kept), :func:`finish` escapes the title and the caption. A :class:`Figure`'s
``title`` and ``caption`` stay plain text for the HTML page, which escapes them itself.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import UserError
from bench import escape

#: Resolution of the PNG embedded in HTML, and of the PNG files written by ``--plots``.
EMBED_DPI = 100
FILE_DPI = 150
#: One colour per variant (cycled) and one marker per mode (cycled).
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
          "#17becf")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")
FLAGGED_COLOR = "#c0392b"
#: At most this many characters drawn: a figure's title, its caption, one value in the caption's
#: machine line (bench.escape.mathtext shortens to these; a tick or legend label to its 80).
TITLE_LIMIT = 200
CAPTION_LIMIT = 1200
VALUE_LIMIT = 80
#: A file stem longer than this is cut and given a hash of the whole, so it stays unique.
SLUG_LIMIT = 120


@dataclass
class Figure:
    """A drawn figure. ``name``: the file stem (``--plots DIR`` writes NAME.png and NAME.svg);
    ``caption``: units, device, torch version and date (also drawn under the plot)."""

    name: str
    title: str
    caption: str
    fig: Any  # matplotlib.figure.Figure

    def png(self, dpi: int = EMBED_DPI) -> bytes:
        buf = io.BytesIO()
        self.fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
        return buf.getvalue()

    def svg(self) -> bytes:
        import matplotlib

        buf = io.BytesIO()
        with matplotlib.rc_context({"svg.hashsalt": self.name}):  # stable ids: same data, same file
            self.fig.savefig(buf, format="svg", metadata={"Date": None})
        return buf.getvalue()

    def save(self, directory: Path) -> list[Path]:
        """NAME.png and NAME.svg in `directory`, each written to a temporary file and renamed."""
        from bench.results.files import atomic_write_bytes

        out = []
        for ext, data in (("png", self.png(FILE_DPI)), ("svg", self.svg())):
            path = Path(directory) / f"{self.name}.{ext}"
            atomic_write_bytes(path, data)
            out.append(path)
        return out


def require_matplotlib() -> None:
    """UserError (one line, exit 2) when matplotlib cannot be imported."""
    try:
        import matplotlib  # noqa: F401
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
    except ImportError as e:
        raise UserError(f"figures need matplotlib ({e}); install it with `pip install matplotlib`") from None


def new_figure(width: float, height: float, nrows: int = 1, ncols: int = 1):
    """A blank figure on an Agg canvas and its axes (a flat list, row by row)."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, [ax for row in axes for ax in row]


def horizontal() -> dict:
    """boxplot's keyword for horizontal boxes (``orientation`` from matplotlib 3.10, ``vert`` before)."""
    import matplotlib

    major, minor = (int(p) for p in matplotlib.__version__.split(".")[:2])
    return {"orientation": "horizontal"} if (major, minor) >= (3, 10) else {"vert": False}


def grid(n: int, max_cols: int = 3) -> tuple[int, int]:
    """(rows, columns) for `n` panels, at most `max_cols` wide."""
    cols = max(1, min(n, max_cols))
    return math.ceil(n / cols), cols


def drop_unused(axes: list, used: int) -> None:
    for ax in axes[used:]:
        ax.set_visible(False)


def machine(env: Mapping, rows: Iterable[Mapping] = ()) -> str:
    """"<device name> (<device>), torch <version>, <date>" from the run's environment, or from
    the rows' environment columns when the file keeps no environment (a CSV); each value
    shortened to VALUE_LIMIT characters (plain text: :func:`finish` escapes it for drawing)."""
    rows = list(rows)

    def get(key: str):
        if env.get(key) not in (None, ""):
            return escape.shorten(env[key], VALUE_LIMIT)
        seen = list(dict.fromkeys(escape.shorten(r[key], VALUE_LIMIT) for r in rows
                                  if r.get(key) not in (None, "") and r.get(key) == r.get(key)))
        return " / ".join(seen) if seen else None

    when = get("time_utc")
    return (f"{get('device_name') or 'unknown device'} ({get('device') or '?'}), torch {get('torch') or '?'}, "
            f"{str(when)[:10] if when else 'date unknown'}")


def caption(units: str, where: str) -> str:
    return f"{units} {where}."


def finish(fig, title: str, text: str) -> None:
    """Title on top, the caption (units, machine, date) at the bottom of the image itself; both
    drawn through bench.escape.mathtext (TITLE_LIMIT, CAPTION_LIMIT characters)."""
    title, text = escape.mathtext(title, TITLE_LIMIT), escape.mathtext(text, CAPTION_LIMIT)
    fig.suptitle(title, fontsize=11)
    fig.text(0.01, 0.005, text, fontsize=7, color="#444444", ha="left", va="bottom", wrap=True)
    lines = 1 + len(text) * 7 * 0.55 / 72 // max(fig.get_figwidth() - 0.2, 1)  # 7 pt glyphs, ~0.55 em wide
    bottom = min(0.3, (lines * 0.14 + 0.08) / fig.get_figheight())
    fig.get_layout_engine().set(rect=(0, bottom, 1, 1 - bottom))  # (left, bottom, width, height)


def slug(*parts: Any) -> str:
    """A file-name-safe stem from parts: 'throughput_vs_gmacs-cpu-infer-224px'; letters, digits
    and ``-_.`` only, at most SLUG_LIMIT characters (a longer one is cut and ends with a hash of
    the whole, so two long names still give two files)."""
    text = "-".join(str(p) for p in parts if p not in (None, ""))
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
    if len(stem) <= SLUG_LIMIT:
        return stem
    import hashlib

    return stem[:SLUG_LIMIT - 13] + "-" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]
