"""Figures: drawn for what they should show, checked on synthetic rows whose answer is known
(the Pareto front, the heat map's trusted cells, the scaling efficiency), not only for existing."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("matplotlib", reason="figures need matplotlib")

from bench.report import fig_samples, fig_speed, figures  # noqa: E402
from bench.results import series, views  # noqa: E402
from bench.results.analysis import analyse  # noqa: E402

ENV = {"device": "cpu", "device_name": "Test CPU", "torch": "9.9.9", "time_utc": "2030-01-02T03:04:05+00:00",
       "cpu_count": 4}


def row(model, macs, ms, layout="contiguous", precision="fp32", compile="none", bs=1, **kw):
    rng = np.random.default_rng(abs(hash((model, layout, precision, compile, bs))) % 2**32)
    r = {"model": model, "device": "cpu", "workload": "infer", "batch_size": bs, "image_size": 224,
         "layout": layout, "precision": precision, "compile": compile, "status": "ok", "macs": macs,
         "latency_ms_p50": ms, "throughput_ips": bs * 1e3 / ms, "noisy": False, "steady": True,
         "load_avg_1m": 0.5, "samples_ms": list(ms * rng.lognormal(0, 0.02, 30))}
    r.update(kw)
    return r


# Cost in GMACs, throughput in img/s (bs 1: 1000 / ms). The front of reliable points is known:
#   a (1 G, 100/s) on it; b (2 G, 80/s) dominated by a; c (2 G, 200/s) on it; d (3 G, 150/s) dominated by c;
#   e (4 G, 400/s) noisy: never on the front, pushes nobody off; f (5 G, 300/s) on it (e does not count).
FRONT_ROWS = [row("a", 1e9, 10.0), row("b", 2e9, 12.5), row("c", 2e9, 5.0), row("d", 3e9, 1000 / 150),
              row("e", 4e9, 2.5, noisy=True), row("f", 5e9, 1000 / 300)]


def test_pareto_front_of_a_known_frame():
    cost = [1, 2, 2, 3, 4, 5]
    value = [100, 80, 200, 150, 400, 300]
    ok = [True, True, True, True, False, True]
    assert list(series.pareto_front(cost, value, ok)) == [True, False, True, False, False, True]
    # without the flag, e dominates f
    assert list(series.pareto_front(cost, value)) == [True, False, True, False, True, False]
    assert list(series.pareto_front([1, 1], [5, 5])) == [True, True]  # ties are both on it
    assert list(series.pareto_front([1, float("nan")], [5, 9])) == [True, False]


def test_the_drawn_front_holds_exactly_the_front_points():
    (fig,) = fig_speed.throughput_vs_gmacs(views.to_frame(FRONT_ROWS), ENV)
    lines = [ln for ax in fig.fig.axes for ln in ax.get_lines() if ln.get_gid() == fig_speed.FRONT_GID]
    assert len(lines) == 1
    xy = sorted(zip(lines[0].get_xdata(), lines[0].get_ydata()))
    assert [(round(x, 6), round(y, 6)) for x, y in xy] == [(1.0, 100.0), (2.0, 200.0), (5.0, 300.0)]
    # the noisy point is drawn, hollow
    rings = [c for ax in fig.fig.axes for c in ax.collections if c.get_gid() == fig_speed.FRONT_GID + "-rings"]
    assert sorted(map(tuple, rings[0].get_offsets())) == [(1.0, 100.0), (2.0, 200.0), (5.0, 300.0)]
    hollow = [c for ax in fig.fig.axes for c in ax.collections if c not in rings
              and (len(c.get_facecolors()) == 0 or c.get_facecolors()[0][3] == 0)]
    assert len(hollow) == 1 and tuple(hollow[0].get_offsets()[0]) == pytest.approx((4.0, 400.0))


def test_captions_carry_units_device_torch_and_date():
    for f in figures.run_figures(analyse(FRONT_ROWS, ENV)):
        assert "Test CPU" in f.caption and "torch 9.9.9" in f.caption and "2030-01-02" in f.caption
        assert any(u in f.caption for u in ("images/s", "in ms", "in x (times)"))
        texts = [t.get_text() for t in f.fig.texts]
        assert any(f.caption in t for t in texts)  # in the image itself, not only beside it


def test_heatmap_colours_only_trusted_speedups():
    rows = [row("m1", 1e9, 10.0), row("m1", 1e9, 5.0, layout="channels_last"),
            row("m1", 1e9, 4.0, compile="default", layout="channels_last", steady=False),
            row("m2", 1e9, 8.0, noisy=True), row("m2", 1e9, 2.0, layout="channels_last")]
    (fig,) = fig_speed.speedup_heatmap(views.to_frame(rows), ENV)
    (ax,) = [a for a in fig.fig.axes if a.images]
    data = ax.images[0].get_array()
    assert data.shape == (2, 3)
    assert data[0, 0] == pytest.approx(0.0) and data[0, 1] == pytest.approx(math.log2(2.0))  # 10 / 5 = 2x
    assert np.ma.is_masked(data[0, 2])  # unsteady row: no colour
    assert np.ma.getmaskarray(data)[1].all()  # m2's eager row is noisy: none of m2's speedups is trusted
    flagged_text = [t.get_text() for t in ax.texts if "(" in t.get_text()]
    assert any("unsteady" in t for t in flagged_text) and any("4.00x" in t for t in flagged_text)


def test_batch_curves_only_with_several_batch_sizes():
    one = [row("m", 1e9, 10.0)]
    assert fig_speed.batch_curves(views.to_frame(one), ENV) == []
    many = [row("m", 1e9, 10.0 * bs ** 0.7, bs=bs) for bs in (1, 2, 4, 8)]
    (fig,) = fig_speed.batch_curves(views.to_frame(many), ENV)
    ax = next(a for a in fig.fig.axes if a.get_visible() and a.get_ylabel().startswith("throughput"))
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    x, y = ax.get_lines()[0].get_data()
    assert list(x) == [1, 2, 4, 8] and y[-1] == pytest.approx(8 * 1e3 / (10.0 * 8 ** 0.7))


def test_multi_gpu_scaling_efficiency():
    base = dict(macs=4e9, batch_per_rank=64)
    rows = [row("resnet50", 4e9, 64e3 / t * n, bs=64 * n, world_size=n, **{k: v for k, v in base.items() if k != "macs"})
            for n, t in ((1, 1000.0), (2, 1900.0), (4, 3600.0))]
    for r, t in zip(rows, (1000.0, 1900.0, 3600.0)):
        r["throughput_ips"] = t
    df = views.to_frame(rows)
    s = series.scaling(df)
    assert list(s["scaling_efficiency"]) == pytest.approx([1.0, 0.95, 0.9])
    (fig,) = fig_speed.multi_gpu(df, ENV)
    eff = [ln for ax in fig.fig.axes for ln in ax.get_lines() if ln.get_gid() == "efficiency"]
    assert list(eff[0].get_ydata()) == pytest.approx([1.0, 0.95, 0.9])
    assert fig_speed.multi_gpu(views.to_frame(FRONT_ROWS), ENV) == []  # no multi-GPU rows: no figure
    assert "multi_gpu_scaling" in [f.name for f in figures.run_figures(analyse(rows, ENV))]


def test_distributions_mark_flagged_rows_and_percentiles():
    rows = FRONT_ROWS + [row("z", 1e9, 7.0, status="oom", samples_ms=[]), row("y", 1e9, 3.0, load_avg_1m=9.0)]
    (fig,) = fig_samples.latency_distributions(rows, ENV)
    (ax,) = [a for a in fig.fig.axes]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert len(labels) == 7  # every ok row with samples; the oom row has none
    assert any("[noisy]" in t for t in labels) and any("[busy CPU]" in t for t in labels)
    p99 = [ln for ln in ax.get_lines() if ln.get_marker() == "D" and len(ln.get_xdata()) == 1]
    assert sorted(ln.get_xdata()[0] for ln in p99) == pytest.approx(
        sorted(np.percentile(r["samples_ms"], 99) for r in rows if r["samples_ms"]))


def test_gate_and_compare_figures():
    rng = np.random.default_rng(0)
    doc = {"format": "resnet-bench/speed-gate", "threshold": 0.05, "environment": ENV, "time_utc": ENV["time_utc"],
           "base": {"ref": "HEAD~1"},
           "cases": [{"label": "resnet18 infer bs1 64px contiguous/fp32/none cpu", "verdict": "regression",
                      "base_rounds": [list(rng.normal(10, 0.1, 20)) for _ in range(4)],
                      "candidate_rounds": [list(rng.normal(11, 0.1, 20)) for _ in range(4)],
                      "comparison": {"ratio": 1.1, "ci_low": 1.08, "ci_high": 1.12}}]}
    (fig,) = figures.gate_figures(doc)
    title = fig.fig.axes[0].get_title()
    assert "1.100 [1.080, 1.120] regression" in title
    cmp = {"runs": ["a", "b"], "environments": [ENV, ENV],
           "cases": [{"label": "x", "run": "b", "ratio": 1.1, "ci_low": 1.05, "ci_high": 1.15},
                     {"label": "y", "run": "b", "ratio": 0.9, "ci_low": None, "ci_high": None}]}
    (fig,) = figures.compare_figures(cmp)
    assert fig.name == "compare_ratios"


def test_save_writes_png_and_svg(tmp_path):
    paths = figures.save(figures.run_figures(analyse(FRONT_ROWS, ENV)), tmp_path / "plots")
    pngs = [p for p in paths if p.suffix == ".png"]
    assert pngs and len(paths) == 2 * len(pngs)
    for p in pngs:
        data = p.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert int.from_bytes(data[16:20], "big") > 100 and int.from_bytes(data[20:24], "big") > 100
    assert all(p.with_suffix(".svg").read_text().lstrip().startswith("<?xml") for p in pngs)
    assert not list((tmp_path / "plots").glob(".*"))  # no temporary file left behind


def test_matplotlib_is_not_imported_by_the_cli_or_the_tables():
    import subprocess
    import sys

    code = ("import sys, bench.cli, bench.report.tables, bench.results.views, bench.results.compare; "
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_noisy_row_in_frame_is_not_a_front_point_even_when_fastest():
    df = views.to_frame(FRONT_ROWS)
    df = views.with_flags(df)
    assert list(df["reliable"]) == [True, True, True, True, False, True]
    assert isinstance(df, pd.DataFrame)
