"""A real report in a real browser: a small CPU sweep, `report --html`, then headless Chromium
(Debian's package) opens the file with JavaScript off and the test asks it what it rendered:
every figure loaded with a non-zero size, the tables are there, no request left the file, and
a screenshot of the page is not blank. Skipped, with the reason, where no Chromium can run
(`make test` installs it where it can); test_html_report.py checks the structure regardless."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="the HTML report embeds matplotlib figures")

from _browser import Browser, Unavailable  # noqa: E402
from _cli import FAST, run_cli  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_report(tmp_path_factory):
    """resnet18 at 32 px, batch 1 and 2, two layouts, eager: four cases in two rounds, then the report."""
    tmp = tmp_path_factory.mktemp("browser")
    run = tmp / "run"
    p = run_cli("run", "--models", "resnet18", "--batch-sizes", "1,2", "--image-sizes", "32",
                "--layouts", "contiguous,channels_last", "--compile", "none", "--threads", "1", "--device", "cpu",
                "--out", str(run), *FAST, "--rounds", "2")
    assert p.returncode == 0, p.stderr
    html = tmp / "report.html"
    p = run_cli("report", str(run), "--html", str(html))
    assert p.returncode == 0, p.stderr
    return run, html


def test_a_real_sweep_renders_a_report(real_report):
    run, html = real_report
    text = html.read_text(encoding="utf-8")
    rows = [json.loads(line) for line in (run / "rows.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and all(r["status"] == "ok" for r in rows)  # 4 cases x 2 rounds
    assert sorted(r["round"] for r in rows) == [1] * 4 + [2] * 4
    assert text.count("<figure ") >= 4 and "<script" not in text
    assert all(f"<td>{r['layout']}</td>" in text for r in rows)


def test_chromium_shows_every_figure_and_table(real_report):
    _, html = real_report
    try:
        browser = Browser(width=1400, height=1000)
        b = browser.__enter__()
    except Unavailable as e:
        pytest.skip(f"browser test skipped: {e}")
    try:
        b.open(html)
        images = b.evaluate("Array.from(document.images).map(i => ({complete: i.complete, w: i.naturalWidth, "
                            "h: i.naturalHeight, shown_w: i.getBoundingClientRect().width, "
                            "shown_h: i.getBoundingClientRect().height}))")
        n_figures = b.evaluate("document.querySelectorAll('figure').length")
        captions = b.evaluate("Array.from(document.querySelectorAll('table > caption')).map(c => c.textContent)")
        results_rows = b.evaluate("Array.from(document.querySelectorAll('table')).find(t => "
                                  "t.caption && t.caption.textContent === 'Results').tBodies[0].rows.length")
        scripts_ran = b.evaluate("document.querySelectorAll('script').length")
        shot = b.screenshot()
    finally:
        browser.__exit__(None, None, None)
    assert n_figures >= 4 and len(images) == n_figures
    for img in images:
        assert img["complete"] and img["w"] > 0 and img["h"] > 0, img
        assert img["shown_w"] > 0 and img["shown_h"] > 0, img
    assert any(c.startswith("Best mode per variant") for c in captions) and "Environment" in captions
    assert results_rows == 4 and scripts_ran == 0
    assert b.requests and all(u.startswith(("file:", "data:")) for u in b.requests), b.requests
    from matplotlib.image import imread

    pixels = imread(io.BytesIO(shot), format="png")[..., :3]
    assert pixels.shape[0] > 1000 and pixels.shape[1] >= 1000  # the whole page, not a stub
    colours = np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    ink = (pixels < 0.9).any(axis=2).mean()
    assert len(colours) > 100 and ink > 0.02, (len(colours), ink)  # figures and text, not a blank page
