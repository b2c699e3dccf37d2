"""One definition of a row fit to rank (bench.results.views.flags), used by the best-mode table,
the speedup column and the ratios: a number the row itself calls unreliable is never crowned."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.report import markdown, tables
from bench.results import views
from bench.results.analysis import analyse


def row(model="resnet50d", layout="contiguous", precision="fp32", compile="none", p50=100.0, **kw):
    r = {"model": model, "device": "cpu", "workload": "infer", "batch_size": 1, "image_size": 224, "layout": layout,
         "precision": precision, "compile": compile, "status": "ok", "latency_ms_p50": p50,
         "throughput_ips": 1e3 / p50, "noisy": False, "steady": True, "load_avg_1m": 0.3, "output_ok": True}
    r.update(kw)
    return r


# What a new user saw with `make bench` on a busy 2-core machine: eager fp32 at 2,208 ms
# (noisy, busy) made a noisy, busy bf16 row look 33.2x faster.
BUSY = [row(p50=2208.0, noisy=True, load_avg_1m=4.1),
        row(layout="channels_last", precision="bf16", p50=66.5, noisy=True, load_avg_1m=4.1),
        row(layout="channels_last", compile="default", p50=44.0),
        row(layout="channels_last", p50=97.0)]


def test_flags_name_every_reason_in_a_fixed_order():
    assert views.flags(row()) == []
    assert views.flags(row(status="oom")) == ["oom"]
    assert views.flags(row(status="ok-reduced")) == ["batch reduced"]
    assert views.flags(row(noisy=True, steady=False, load_avg_1m=9.0, output_ok=False), cpu_count=2) == [
        "noisy", "unsteady", "busy CPU", "output differs"]
    assert views.flags(row(load_avg_1m=2.4), cpu_count=2) == []  # the measuring process itself is on one core
    assert views.flags(row(device="cuda", load_avg_1m=9.0), cpu_count=2) == []  # busy is a CPU flag
    assert views.flags(row(noisy=pd.NA, steady=None)) == []  # unknown is not a flag


def test_the_best_mode_is_never_a_flagged_row():
    best = views.best_modes(views.to_frame(BUSY), cpu_count=2)
    (b,) = best.to_dict("records")
    assert (b["layout"], b["precision"], b["compile"]) == ("channels_last", "fp32", "default")
    assert pd.isna(b["speedup_vs_eager"])  # the eager row is flagged: no speedup is claimed
    assert "eager fp32 row is noisy, busy CPU" in b["note"]
    assert "not ranked: channels_last/bf16/none" not in b["note"]  # bf16 is slower than the winner anyway


def test_a_faster_flagged_mode_is_named_not_ranked():
    rows = [row(), row(layout="channels_last", p50=50.0), row(layout="channels_last", precision="bf16", p50=30.0,
                                                              steady=False)]
    (b,) = views.best_modes(views.to_frame(rows)).to_dict("records")
    assert b["precision"] == "fp32" and b["speedup_vs_eager"] == pytest.approx(2.0)
    assert b["note"] == "not ranked: channels_last/bf16/none 3.33x (unsteady)"


def test_a_case_with_no_reliable_mode_keeps_its_line():
    rows = [row(noisy=True), row(layout="channels_last", p50=50.0, noisy=True)]
    (b,) = views.best_modes(views.to_frame(rows)).to_dict("records")
    assert b["layout"] is None and b["note"].startswith("not ranked: all 2 measured mode(s) flagged (noisy)")


def test_speedup_column_is_marked_where_untrusted():
    view = views.with_speedup(views.to_frame(BUSY), cpu_count=2)
    trusted = dict(zip(view["layout"] + "/" + view["precision"] + "/" + view["compile"], view["speedup_trusted"]))
    assert not any(trusted.values())  # the eager row is flagged: no speedup here is trusted
    t = tables.results(view.to_dict("records"), lambda r: views.busy(r, 2))
    col = t.headers.index("x eager")
    assert all(r[col].endswith(tables.UNTRUSTED) for r in t.rows)
    assert tables.UNTRUSTED_NOTE in t.notes
    md = markdown.results_markdown(analyse(BUSY, {"cpu_count": 2}))
    assert "33.2" not in md.split("Best mode")[1] and "not ranked: this row or the one it is divided by" in md


def test_ratio_to_baseline_notes_flags_of_either_side():
    rows = [row("resnet50", p50=10.0, noisy=True), row("resnet50d", p50=11.0)]
    r = views.ratio_to_baseline(views.to_frame(rows), "resnet50").set_index("model")
    assert r.loc["resnet50d", "latency_ratio_to_resnet50"] == pytest.approx(1.1)
    assert r.loc["resnet50d", "note"] == "resnet50: noisy" and r.loc["resnet50", "note"] == "noisy"


# ------------------------------------------------------------------ rounds: paired ratios with intervals
def rounds_row(medians, **kw):
    """A row pooled over rounds: each round's median latency, in round order."""
    return row(p50=float(pd.Series(medians).prod() ** (1 / len(medians))), rounds=len(medians),
               round_ids=list(range(1, len(medians) + 1)), round_latency_ms=list(medians), **kw)


def test_with_rounds_a_noisy_busy_row_is_ranked_by_its_paired_interval():
    # the machine slowed down in round 2 for both rows; within each round the ratio is ~2
    eager = rounds_row([100.0, 150.0, 101.0], noisy=True, load_avg_1m=4.1)
    fast = rounds_row([50.0, 75.5, 50.2], layout="channels_last", noisy=True, load_avg_1m=4.1)
    (b,) = views.best_modes(views.to_frame([eager, fast]), cpu_count=2).to_dict("records")
    assert b["layout"] == "channels_last" and b["speedup_vs_eager"] == pytest.approx(2.0, rel=0.01)
    assert b["speedup_vs_eager_ci_low"] < 2.0 < b["speedup_vs_eager_ci_high"] and b["rounds"] == 3
    assert b["note"] == ""


def test_a_wide_paired_interval_is_shown_never_crowned():
    eager = rounds_row([100.0, 100.0, 100.0])
    wide = rounds_row([50.0, 80.0, 45.0], layout="channels_last")  # 2.0x, 1.25x, 2.2x: +-50%
    good = rounds_row([90.0, 91.0, 89.0], layout="channels_last", compile="default")
    view = views.with_speedup(views.to_frame([eager, wide, good]))
    trusted = dict(zip(view["compile"] + view["layout"], view["speedup_trusted"]))
    assert trusted == {"nonecontiguous": True, "nonechannels_last": False, "defaultchannels_last": True}
    (b,) = views.best_modes(views.to_frame([eager, wide, good])).to_dict("records")
    assert b["compile"] == "default" and "not ranked: channels_last/fp32/none" in b["note"] and "CI +-" in b["note"]
    assert tables.speedup_cell(view.iloc[1].to_dict()).endswith(tables.UNTRUSTED)


def test_ratios_to_a_baseline_pair_rounds_and_carry_intervals():
    base = rounds_row([10.0, 12.0, 10.2], model="resnet50")
    other = rounds_row([11.0, 13.2, 11.2], model="resnet50d")  # 1.1x in every round, though the rounds differ
    r = views.ratio_to_baseline(views.to_frame([base, other]), "resnet50").set_index("model")
    assert r.loc["resnet50d", "latency_ratio_to_resnet50"] == pytest.approx(1.1, rel=0.005)
    assert r.loc["resnet50d", "latency_ratio_to_resnet50_rounds"] == 3 and bool(r.loc["resnet50d", "trusted"])
    assert r.loc["resnet50d", "latency_ratio_to_resnet50_ci_high"] - r.loc["resnet50d", "latency_ratio_to_resnet50_ci_low"] < 0.02


def test_needs_rounds_names_open_ratios_and_what_they_are_divided_by():
    eager = rounds_row([100.0, 100.5])
    tight = rounds_row([50.0, 50.2], layout="channels_last")
    loose = rounds_row([40.0, 60.0], layout="channels_last", compile="default")
    from bench.core.case import Case

    keys = {Case.from_row(r).key(): r["compile"] + r["layout"] for r in (eager, tight, loose)}
    need = views.needs_rounds(views.to_frame([eager, tight, loose]), 0.02)
    assert {keys[k] for k in need} == {"defaultchannels_last", "nonecontiguous"}
