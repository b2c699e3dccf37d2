"""`report --html` / `--plots` without a browser: the page's structure (one file, no script, no
network, every figure an embedded PNG of non-zero size, the tables, the environment, every
flagged row stated), and bad input (one line, exit 2, nothing overwritten)."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="the HTML report embeds matplotlib figures")

from _cli import finish
from bench.cli import main  # noqa: E402
from bench.core.case import Case  # noqa: E402
from bench.store import rundir  # noqa: E402

ENV = {"device": "cpu", "device_name": "Test CPU 9000", "torch": "2.14.1", "cpu_count": 2, "threads": 1,
       "time_utc": "2030-01-02T03:04:05+00:00", "git_commit": "abc123"}
COMMAND = "resnet-bench run --models resnet18,resnet34 --test-marker"


def row(model, ms, layout="contiguous", precision="fp32", compile="none", bs=1, **kw):
    rng = np.random.default_rng(len(model) * 7 + bs)
    samples = list(ms * rng.lognormal(0, 0.02, 25)) if ms else []
    r = {"model": model, "device": "cpu", "workload": "infer", "batch_size": bs, "image_size": 32, "layout": layout,
         "precision": precision, "compile": compile, "status": "ok", "error": "", "latency_ms_p50": ms,
         "throughput_ips": bs * 1e3 / ms if ms else None, "macs": {"resnet18": 0.56e9, "resnet34": 1.16e9}[model],
         "noisy": False, "steady": True, "load_avg_1m": 0.4, "samples_ms": samples}
    r.update(kw)
    return r


ROWS = [row("resnet18", 10.0), row("resnet18", 8.0, layout="channels_last"),
        row("resnet18", 1.0, layout="channels_last", precision="bf16", noisy=True, load_avg_1m=5.0),
        row("resnet34", 20.0), row("resnet34", 15.0, layout="channels_last", steady=False),
        row("resnet34", None, precision="fp16", status="skipped", error="fp16 autocast needs CUDA"),
        row("resnet34", None, layout="channels_last", precision="bf16", status="oom", error="out of memory"),
        row("resnet18", 20.0, bs=2), row("resnet34", 40.0, bs=2)]


class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.captions: list[str] = []
        self.text: list[str] = []
        self._in: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in.append(tag)

    def handle_endtag(self, tag):
        if self._in and self._in[-1] == tag:
            self._in.pop()

    def handle_data(self, data):
        self.text.append(data)
        if self._in and self._in[-1] == "caption":
            self.captions.append(data)


def parse(path: Path) -> Page:
    p = Page()
    p.feed(path.read_text(encoding="utf-8"))
    return p


@pytest.fixture
def run_dir(tmp_path):
    w = rundir.ResultsWriter.create(tmp_path / "run", ENV, {"planned_cases": []}, COMMAND, fingerprint="f")
    for r in ROWS:
        w.append(r)
    finish(w)
    return w.out


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_html_report_is_one_self_contained_file(run_dir, tmp_path, capsys):
    out = tmp_path / "report.html"
    assert main(["report", str(run_dir), "--html", str(out)]) == 0
    assert capsys.readouterr().out == ""  # with --html alone nothing else goes to stdout
    page = parse(out)
    tags = [t for t, _ in page.tags]
    assert "script" not in tags and "iframe" not in tags and "link" not in tags
    for tag, attrs in page.tags:
        assert not any(k.startswith("on") for k in attrs), (tag, attrs)  # no event handlers
        for k in ("src", "href"):
            v = attrs.get(k)
            assert v is None or v.startswith(("data:image/png;base64,", "#")), (tag, k, v[:60])
    meta = {a.get("http-equiv") or a.get("name"): a.get("content") for t, a in page.tags if t == "meta"}
    assert meta["Content-Security-Policy"].startswith("default-src 'none'")
    assert meta["generator"].startswith("resnet-bench report")
    imgs = [a for t, a in page.tags if t == "img"]
    figs = [a for t, a in page.tags if t == "figure"]
    assert len(imgs) == len(figs) >= 5  # pareto, batch curves, heat maps (bs 1 and 2), distributions
    for a in imgs:
        w, h = png_size(base64.b64decode(a["src"].split(",", 1)[1]))
        assert w > 100 and h > 100 and (int(a["width"]), int(a["height"])) == (w, h)
        assert a["alt"]
    assert {f["id"].split("-")[1] for f in figs} >= {"throughput_vs_gmacs", "batch_scaling", "speedup_heatmap",
                                                     "latency_distribution"}


def test_html_report_holds_tables_environment_and_every_flagged_row(run_dir, tmp_path):
    out = tmp_path / "report.html"
    assert main(["report", str(run_dir), "--html", str(out)]) == 0
    page = parse(out)
    caps = " | ".join(page.captions)
    for title in ("Results", "Best mode per variant", "Latency ratio to resnet18", "Environment"):
        assert title in caps
    text = " ".join(page.text)
    assert "Test CPU 9000" in text and COMMAND in text and "2030-01-02" in text
    expected = {"resnet18 infer bs1 32px channels_last/bf16/none cpu": "noisy, busy CPU",
                "resnet34 infer bs1 32px channels_last/fp32/none cpu": "unsteady",
                "resnet34 infer bs1 32px contiguous/fp16/none cpu": "skipped",
                "resnet34 infer bs1 32px channels_last/bf16/none cpu": "oom"}
    items = [d for d in page.text if " cpu: " in d]
    for label, flags in expected.items():
        assert any(i.startswith(f"{label}: {flags}") for i in items), (label, items)
    assert len([i for i in items if i.split(": ")[0] in {Case.from_row(r).label() for r in ROWS}]) == len(expected)
    # the best-mode table crowns the reliable channels_last fp32 row, not the noisy 1 ms bf16 row
    html = out.read_text()
    best = html[html.index("Best mode per variant"):html.index("Latency ratio to")]
    assert "channels_last fp32 none" in best and "not ranked: channels_last/bf16/none 10.00x (noisy, busy CPU)" in best


def test_plots_dir_gets_png_and_svg_of_every_figure(run_dir, tmp_path):
    d = tmp_path / "figs" / "deeper"
    assert main(["report", str(run_dir), "--plots", str(d)]) == 0
    pngs, svgs = sorted(p.stem for p in d.glob("*.png")), sorted(p.stem for p in d.glob("*.svg"))
    assert pngs == svgs and len(pngs) >= 5
    assert all(min(png_size((d / f"{s}.png").read_bytes())) > 100 for s in pngs)


def test_a_csv_report_says_it_has_no_samples(run_dir, tmp_path):
    out = tmp_path / "r.html"
    assert main(["report", str(run_dir / "results.csv"), "--html", str(out)]) == 0
    assert "keeps no raw samples" in out.read_text() and "latency_distribution" not in out.read_text()


def test_an_earlier_report_is_replaced_but_nothing_else(run_dir, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", str(run_dir), "--html", str(out)]) == 0
    assert main(["report", str(run_dir), "--html", str(out)]) == 0  # ours: replaced
    mine = tmp_path / "notes.html"
    mine.write_text("<p>my notes</p>")
    capsys.readouterr()
    assert main(["report", str(run_dir), "--html", str(mine)]) == 2
    assert mine.read_text() == "<p>my notes</p>"
    assert "not replacing it" in capsys.readouterr().err


@pytest.mark.parametrize("case", ["missing_run", "html_is_dir", "html_no_parent", "html_parent_is_file",
                                  "html_in_proc", "plots_is_file", "unknown_baseline"])
def test_report_bad_input_is_one_line_and_exit_2(run_dir, tmp_path, capsys, case):
    f = tmp_path / "a-file"
    f.write_text("x")
    argv = {"missing_run": [str(tmp_path / "nope"), "--html", str(tmp_path / "r.html")],
            "html_is_dir": [str(run_dir), "--html", str(tmp_path)],
            "html_no_parent": [str(run_dir), "--html", str(tmp_path / "no" / "r.html")],
            "html_parent_is_file": [str(run_dir), "--html", str(f / "r.html")],
            "html_in_proc": [str(run_dir), "--html", "/proc/resnet-bench-report.html"],
            "plots_is_file": [str(run_dir), "--plots", str(f)],
            "unknown_baseline": [str(run_dir), "--html", str(tmp_path / "r.html"), "--baseline-model", "resnet999"],
            }[case]
    assert main(["report", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("resnet-bench: error:"), err
    assert not (tmp_path / "r.html").exists() and f.read_text() == "x"


def test_a_speed_gate_document_renders(tmp_path, capsys):
    rng = np.random.default_rng(1)
    doc = {"format": "resnet-bench/speed-gate", "version": 1, "threshold": 0.05, "alpha": 0.05, "environment": ENV,
           "command": "resnet-bench check --speed --out gate.json", "time_utc": ENV["time_utc"],
           "base": {"kind": "git", "ref": "HEAD~1"},
           "cases": [{"label": "resnet18 infer bs1 64px contiguous/fp32/none cpu", "errors": [],
                      "base_rounds": [list(rng.normal(10, 0.1, 15)) for _ in range(6)],
                      "candidate_rounds": [list(rng.normal(11, 0.1, 15)) for _ in range(6)]}]}
    gate = tmp_path / "gate.json"
    gate.write_text(json.dumps(doc))
    out = tmp_path / "gate.html"
    assert main(["report", str(gate), "--html", str(out), "--plots", str(tmp_path / "p")]) == 0
    text = out.read_text()
    assert "REGRESSION: significantly slower" in text and "data:image/png;base64," in text
    assert (tmp_path / "p" / "speed_gate.png").is_file()
    assert main(["report", str(gate)]) == 0
    assert "REGRESSION" in capsys.readouterr().out
