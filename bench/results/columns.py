"""The one schema of a result row: every column's name, unit, meaning and where it is shown.

A row is a flat dict. Its stored columns, in this order, are the header of ``results.csv``
(any other key a row carries, e.g. ``macs_layer1``, follows them); ``samples_ms`` stays in the
JSON files only. A column with ``derive`` is computed from the row's other values once the
case is measured (:func:`derive`); ``env`` columns are stamped from the run's environment;
``view`` columns are computed across rows when a table is shown (bench.results.views) and
never stored.

Add a column = one ``Column(...)`` in SCHEMA (or :func:`register` from a plugin); put its name
in DISPLAY to show it in the terminal table and results.md. Names carry their units.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.core.case import FIELDS, REQUIRED_FIELDS
from bench.core.profile import STAGES


@dataclass(frozen=True)
class Column:
    name: str
    unit: str = ""  # "ms", "images/s", "MiB", "s", "MACs", "" (a name, a flag, a count)
    doc: str = ""  # what it is and which counter or clock counted it
    header: str | None = None  # terminal header when shown; None: the name
    fmt: str = "auto"  # terminal cell: auto | giga (x 1e-9) | percent | status
    markdown: bool = True  # shown in results.md when in DISPLAY
    terminal: bool = True  # shown in the terminal table when in DISPLAY
    derive: Callable[[dict], Any] | None = None  # value from the row's other values
    env: bool = False  # copied from the run's environment into every row
    raw: bool = False  # JSON/JSONL only
    view: bool = False  # computed across rows when shown, never stored
    sparse: bool = False  # shown only when some row has a value other than missing or 0


def _ranks(row: dict) -> int:
    """Ranks whose batches one step processes: world_size for a data-parallel row, else 1."""
    ws = row.get("world_size")
    return int(ws) if _num(ws) and ws >= 1 else 1


def _throughput(row: dict) -> float | None:
    p50, bs = row.get("latency_ms_p50"), row.get("batch_size")
    if not _num(p50) or not _num(bs) or p50 <= 0:
        return None
    return _ranks(row) * bs / (p50 / 1e3)


def _achieved_tflops(row: dict) -> float | None:
    flops, p50, bs = row.get("flops"), row.get("latency_ms_p50"), row.get("batch_size")
    if not (_num(flops) and flops and _num(p50) and p50 > 0 and _num(bs)):
        return None
    factor = 3 if row.get("workload") == "train" else 1  # forward + backward (activations, weights)
    return flops * _ranks(row) * bs * factor / (p50 / 1e3) / 1e12


def _rank_ratio(row: dict) -> float | None:
    hi, lo = row.get("rank_step_ms_max"), row.get("rank_step_ms_min")
    return hi / lo if _num(hi) and _num(lo) and lo > 0 else None


def _ips_per_w(row: dict) -> float | None:
    ips, watts = row.get("throughput_ips"), row.get("power_w_mean")
    if not (_num(ips) and _num(watts) and watts > 0):
        return None
    return ips / watts


def _stage_gmacs(stage: str) -> Callable[[dict], float | None]:
    """Achieved GMAC/s of one stage: its conv+linear MACs x batch / its time in the stage pass."""
    def derive(row: dict) -> float | None:
        macs, ms, bs = row.get(f"macs_{stage}"), row.get(f"stage_ms_{stage}"), row.get("batch_size")
        if not (_num(macs) and _num(ms) and ms > 0 and _num(bs)):
            return None
        return macs * bs / (ms * 1e-3) / 1e9
    return derive


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


C = Column
SCHEMA: list[Column] = [
    # the case
    C("model", doc="registered variant", header="model"),
    C("device", doc="cpu or cuda"),
    C("workload", doc="infer (forward, no_grad) or train (forward, loss, backward, SGD step)", header="work"),
    C("batch_size", "images", "the batch measured", header="bs"),
    C("image_size", "px", "input height = width", header="px"),
    C("layout", doc="memory format (bench.core.modes)"),
    C("precision", doc="fp32, tf32, or an autocast dtype (bench.core.modes)", header="prec"),
    C("compile", doc="none (eager) or a torch.compile mode"),
    C("backend", doc="the runtime (bench.core.backends): pytorch (eager or torch.compile per `compile`), aoti, "
      "onnxruntime, openvino, tensorrt; absent in results written before it existed: pytorch", sparse=True),
    C("ddp", "ranks", "torch.distributed data-parallel training ranks the case asked for (0 = a plain case "
      "in one process; absent in results written before it existed: 0)", sparse=True),
    # what happened
    C("status", doc="ok, ok-reduced, skipped, oom, timeout, crashed, error", fmt="status"),
    C("error", doc="why, for any status but ok"),
    C("oom_phase", doc="where an oom row ran out of memory: estimate (the lower bound, nothing ran), input, model "
      "(weights to the device), compile (torch.compile's compiler), forward, backward, optimizer, memory pass, "
      "trace (bench.core.oom)"),
    C("batch_size_requested", "images", "the batch asked for (differs from batch_size only when ok-reduced)"),
    C("device_name", doc="GPU or CPU model of the process that measured the row", env=True),
    C("host", doc="machine that measured the row (platform.node() of the measuring process)", env=True),
    C("cuda_visible_devices", doc="CUDA_VISIBLE_DEVICES of the measuring process (the GPUs Ray assigned; "
      "None when unset)", env=True),
    # static cost (bench.core.profile, per image)
    C("params", "parameters", "counted from the module", terminal=False),  # `profile` shows it
    C("macs", "MACs", "conv + linear multiply-accumulates per image, fvcore FlopCountAnalysis",
      header="GMACs", fmt="giga"),
    C("flops", "FLOPs", "2 x macs per image (FlopCounterMode's convention)"),
    C("macs_all", "MACs", "fvcore's total per image, adding batch-norm and pooling"),
    C("activations", "elements", "output elements of conv/linear layers per image, fvcore ActivationCountAnalysis"),
    # latency (bench.core.timing / stats, from samples_ms)
    C("latency_ms_p50", "ms", "median per-batch latency: each round's median, averaged over the rounds on the log "
      "scale (geometric mean; one round: its median)", header="p50 ms"),
    C("latency_ms_p90", "ms", "90th percentile", header="p90 ms"),
    C("latency_ms_p99", "ms", "99th percentile"),
    C("latency_ms_mean", "ms", "mean"),
    C("latency_ms_min", "ms", "fastest sample"),
    C("latency_iqr_ms", "ms", "p75 - p25 of the pooled samples"),
    C("latency_rel_iqr", "fraction", "IQR / median within a process (the median over rounds)", header="IQR/med",
      fmt="percent"),
    C("latency_ms_ci_low", "ms", "95% CI of latency_ms_p50, low end: Student's t over the rounds on the log scale "
      "(between processes); one round: the distribution-free CI of its median (binomial order statistics)"),
    C("latency_ms_ci_high", "ms", "95% CI of latency_ms_p50, high end"),
    C("noisy", doc="IQR / median within a process above 10%"),
    C("rounds", "rounds", "rounds (fresh processes) that measured the case and are pooled in the row"),
    C("round_ids", doc="the rounds pooled, in order (pairs a row's rounds with another's)"),
    C("round_latency_ms", "ms", "each pooled round's median latency, in the order of round_ids"),
    C("rounds_failed", "rounds", "rounds of the case that did not measure (crashed, timeout, error) after one did"),
    C("rounds_note", doc="the first failed round's status and error"),
    C("throughput_ips", "images/s", "batch_size / median latency (data-parallel: world_size x batch_per_rank / "
      "median step time of the slowest rank = world_size x batch_per_rank x K / max time of K steps)",
      header="img/s", derive=_throughput),
    C("achieved_tflops", "TFLOP/s", "flops x batch (x3 for training, x world_size for data-parallel) / median "
      "latency", derive=_achieved_tflops),
    C("peak_mem_mb", "MiB", "CUDA: max_memory_allocated during the case; CPU: peak RSS of the measuring process",
      header="peak MB"),
    # memory pass: a few steps after the samples, peak counters reset first (bench.core.memory)
    C("mem_peak_allocated_mb", "MiB", "CUDA: torch.cuda.max_memory_allocated over the memory pass (tensors)"),
    C("mem_peak_reserved_mb", "MiB", "CUDA: torch.cuda.max_memory_reserved over the memory pass (the caching "
      "allocator's pool)"),
    C("nvml_mem_used_mb", "MiB", "CUDA: NVML's used memory of the whole GPU at the end of the memory pass (the "
      "pool, the CUDA context, other processes)"),
    C("mem_peak_rss_mb", "MiB", "CPU: peak RSS of the measuring process over the memory pass (VmHWM)"),
    # energy over the timed samples (bench.core.trackers.Energy; NVML's total-energy counter)
    C("energy_j_per_image", "J/image", "NVML energy counter difference over the timed samples / (samples x batch)",
      header="J/img"),
    C("power_w_mean", "W", "NVML energy over the timed samples / their wall time (idle gaps between samples "
      "included)", header="W"),
    C("throughput_ips_per_w", "images/s/W", "throughput_ips / power_w_mean", derive=_ips_per_w),
    C("energy_j", "J", "NVML energy counter difference over the timed samples"),
    C("energy_window_s", "s", "host time between the two energy counter reads"),
    C("energy_note", doc="why the energy columns are empty (no NVML, no counter, CPU), else empty"),
    # GPU clocks during the samples (bench.core.trackers.GpuClocks; NVML)
    C("gpu_sm_clock_mhz", "MHz", "SM clock read right after the last sample"),
    C("gpu_throttled", doc="a power/thermal clock event reason at the first or last sample, or NVML violation "
      "time grew during the samples"),
    C("gpu_throttle_reasons", doc="NVML clock event reasons seen at the first and last sample (+-joined)"),
    C("compile_s", "s", "first call of a compiled model (compilation + one step), never in the samples",
      header="compile s"),
    C("build_s", "s", "the backend's build before the first call: export, conversion, quantization and "
      "calibration, a session or an AOTInductor compile (pytorch: the mode applied; its compile is in compile_s)",
      header="build s", sparse=True),
    C("backend_info", doc="what the backend built: runtime version, ONNX opset, execution providers"),
    C("int8_ops", "ops", "int8: quantized kernels the built model runs (PT2E dequantize nodes, ONNX QLinearConv/"
      "ConvInteger nodes of the optimised graph, OpenVINO convolutions with runtime precision I8/U8); "
      "an int8 case with none is an error"),
    C("int8_how", doc="int8: the quantization (tool, format, granularity)"),
    C("int8_kernels", "calls", "int8 on pytorch: oneDNN int8 kernel calls (qconv/qlinear) in one profiled step after "
      "compilation; on aoti: qconv/qlinear call sites in the package's C++ wrapper (its C shim records no "
      "profiler event); an int8 case with none is an error"),
    C("first_call_s", "s", "the first call, timed apart"),
    # numerics against eager fp32
    C("max_abs_diff", "", "max |output - eager fp32 output| on the same weights and input"),
    C("max_rel_diff", "fraction", "max_abs_diff / max |eager fp32 output|", header="out rel diff"),
    C("output_ok", doc="max_rel_diff within the precision's tolerance"),
    C("output_note", doc="why output_ok is empty (the eager fp32 reference did not fit)"),
    C("output_cosine", "", "int8: cosine similarity of the logits with eager fp32's on the seeded check set "
      "(output_ok: >= 0.99); with random weights, numerical fidelity, not accuracy"),
    C("top1_agreement", "fraction", "int8: check-set images whose top-1 class equals eager fp32's"),
    C("top5_agreement", "fraction", "int8: check-set images whose eager fp32 top-1 is in the top 5"),
    C("check_images", "images", "int8: images in the seeded check set"),
    # --find-max-batch (bench.core.batch_search), the same for every row of a mode's batch ladder
    C("max_batch_searched", "images", "the largest batch of this mode that ran (a few steps, no OOM, within the "
      "memory cap)"),
    C("max_batch_fail", "images", "the smallest batch found not to fit (empty when none failed)"),
    C("max_batch_stop", doc="why the search ended: bracketed, max-batch (the bound fits), probes (budget spent)"),
    # --trace DIR (bench.core.trace)
    C("trace_file", doc="Chrome trace of a few steps after the samples"),
    C("trace_top_op", doc="top kernel by self device time (GPU) or operator by self CPU time (CPU)"),
    C("trace_top_op_share", "fraction", "trace_top_op's share of the summed self time of its kind"),
    C("trace_note", doc="why there is no trace"),
    # how the samples were taken
    C("n_samples", "samples", "timed calls"),
    C("warmup_iters", "calls", "warm-up calls after the first"),
    C("warmup_s", "s", "warm-up wall time"),
    C("steady", doc="warm-up ended because the time settled"),
    C("stop_reason", doc="precision, time_budget or max_samples"),
    C("load_avg_1m", "", "1-minute load average when the case started"),
    # data-parallel training (bench.execute.ddp_worker); a sample is one window of ddp_steps steps:
    # max over ranks of each rank's own time for the window (all_reduce MAX) / ddp_steps
    C("world_size", "ranks", "torch.distributed ranks that measured the row (dist.get_world_size())"),
    C("batch_per_rank", "images", "batch each rank processes per step (= batch_size)"),
    C("ddp_backend", doc="torch.distributed backend: nccl on CUDA, gloo on CPU"),
    C("ddp_steps", "steps", "K: training steps per timed window"),
    C("rank_step_ms_min", "ms", "fastest rank's median step time (each rank timed by its own clock)"),
    C("rank_step_ms_max", "ms", "slowest rank's median step time"),
    C("rank_step_ratio", "x", "rank_step_ms_max / rank_step_ms_min (1 = no straggler)", derive=_rank_ratio),
    # the variant (resnet_impl spec)
    C("block"), C("depth", "layers"), C("version"), C("stride_at"), C("stem"), C("shortcut"),
    C("groups"), C("width_per_group"),
    # time per stage: the stage pass, a few steps after the samples (bench.core.stages); eager only
    *[C(f"stage_ms_{s}", "ms", f"median time of the {s} stage inside one step (a mark at its first and last module; "
        "host clock on CPU, CUDA events on a GPU)") for s in STAGES],
    C("stage_total_ms", "ms", "median time of the whole step in the stage pass (hooks included)"),
    C("stage_residue_ms", "ms", "stage_total_ms - the sum of the stages: work between stages and the marks' cost"),
    C("stage_residue_frac", "fraction", "stage_residue_ms / stage_total_ms"),
    C("stage_steps", "steps", "steps the stage pass ran (RunSettings.stage_pass_steps, fewer once a second is spent)"),
    C("case_s", "s", "wall time this process spent on the case: memory estimate, counts, build, first call, "
      "output check, warm-up, samples and every measurement pass (not the process's start); a row of "
      "several rounds: round 1's, the round that runs every pass"),
    C("stage_pass_s", "s", "wall time of the stage pass (its share of the case's wall time is its cost)"),
    C("stage_note", doc="why there are no stage times (a compiled model, a training step, another runtime)"),
    *[C(f"gmacs_per_s_{s}", "GMAC/s", f"the {s} stage's conv+linear MACs x batch / stage_ms_{s}",
        derive=_stage_gmacs(s)) for s in STAGES],
    # counter cross-check
    C("flop_counter_flops", "FLOPs", "torch.utils.flop_counter.FlopCounterMode's count per image"),
    C("counters_agree", doc="flop_counter_flops == 2 x macs"),
    # environment
    C("torch", env=True), C("torchvision", env=True), C("cuda", env=True), C("cudnn", env=True),
    C("cpu_model", env=True), C("cpu_isa", env=True), C("threads", "threads", env=True),
    C("threads_rule", doc="how the thread count was chosen (--threads, or the rule for this machine)", env=True),
    C("gpu_sm_count", "SMs", "streaming multiprocessors (torch.cuda.get_device_properties)", env=True),
    C("gpu_mem_total_mb", "MiB", "GPU memory (torch.cuda.get_device_properties)", env=True),
    C("gpu_cc", doc="compute capability", env=True),
    C("gpu_driver", doc="NVIDIA driver (NVML)", env=True),
    C("gpu_sm_clock_max_mhz", "MHz", "maximum SM clock (NVML)", env=True),
    C("gpu_power_limit_w", "W", "enforced power limit (NVML)", env=True),
    C("git_commit", env=True), C("time_utc", doc="when the row was written (UTC)"),
    # raw samples and views
    C("samples_ms", "ms", "every timed sample, in call order (a row: every round's, pooled)", raw=True),
    C("round", "round", "rows.jsonl: the round this record measured (none: round 1)", raw=True),
    C("max_batch_probes", doc="every probe of the max-batch search: batch, fits, why, peak_mb, seconds, ran",
      raw=True),
    C("rank_step_ms", "ms", "data-parallel: each rank's median step time, by rank", raw=True),
    C("best_batch_throughput", "images", "the batch with the highest throughput_ips among this mode's measured "
      "batches", view=True),
    C("speedup_vs_eager", "x", "eager fp32 contiguous latency of the same case / this row's (> 1 faster): the "
      "geometric mean of the paired per-round ratios", header="x eager", view=True),
    C("speedup_vs_eager_ci_low", "x", "95% CI of speedup_vs_eager, low end (Student's t on the log per-round ratios)",
      view=True),
    C("speedup_vs_eager_ci_high", "x", "95% CI of speedup_vs_eager, high end", view=True),
    C("speedup_vs_eager_rounds", "rounds", "rounds both rows measured (the pairs behind the ratio)", view=True),
    C("rounds_stop", doc="why the case's rounds ended: precision (every ratio's CI within the target), budget, "
      "max_rounds, interrupted", view=True),
    C("scaling_efficiency", "fraction", "data-parallel: throughput_ips / (world_size x throughput_ips of the same "
      "case with ddp 1), when the run measured ddp 1", header="scaling", fmt="percent", view=True, sparse=True),
    C("flags", doc="why the row's timing is not to be ranked: its status if not ok, noisy, unsteady, busy CPU, "
                   "output differs (bench.results.views.flags); empty for a reliable row", view=True),
    C("reliable", doc="no flags: ok, steady, not noisy, not on a busy CPU, output matches eager fp32", view=True),
    C("speedup_trusted", doc="this row and its eager fp32 reference are both reliable", view=True),
]
del C

#: Columns shown in the terminal table and results.md, in this order.
DISPLAY: list[str] = [
    "model", "workload", "ddp", "batch_size", "image_size", "layout", "precision", "compile", "backend", "status",
    "latency_ms_p50", "latency_ms_p90", "latency_rel_iqr", "rounds", "throughput_ips", "speedup_vs_eager",
    "scaling_efficiency", "compile_s", "macs", "params", "peak_mem_mb", "max_rel_diff",
]

#: The case's columns (bench.core.case.Case's fields), in header order.
CASE_COLUMNS = [c.name for c in SCHEMA if c.name in FIELDS]
assert set(CASE_COLUMNS) == set(FIELDS), "every Case field is a column"
#: The case's columns every row must hold (the others have defaults: bench.core.case.FIELD_DEFAULTS).
REQUIRED_CASE_COLUMNS = [c for c in CASE_COLUMNS if c in REQUIRED_FIELDS]
#: Statuses of a row that was measured.
OK_STATUSES = ("ok", "ok-reduced")


def by_name() -> dict[str, Column]:
    return {c.name: c for c in SCHEMA}


def stored() -> list[str]:
    """Stored columns in header order (results.csv; not raw, not view)."""
    return [c.name for c in SCHEMA if not c.raw and not c.view]


def raw() -> list[str]:
    return [c.name for c in SCHEMA if c.raw]


def env() -> list[str]:
    return [c.name for c in SCHEMA if c.env]


def shown(where: str, rows: list[dict] | None = None) -> list[Column]:
    """Columns of DISPLAY for "terminal" or "markdown", in order; a sparse column only when one
    of `rows` has a value for it (missing, NaN and 0 are none)."""
    cols = by_name()
    out = [cols[n] for n in DISPLAY if n in cols]
    if rows is not None:
        out = [c for c in out if not c.sparse or any(_has_value(r.get(c.name)) for r in rows)]
    if where == "terminal":
        return [c for c in out if c.terminal]
    return [c for c in out if c.markdown]


def _has_value(v: Any) -> bool:
    if v is None or v is False:
        return False
    try:
        f = float(v)
    except (TypeError, ValueError):  # text, or pandas' NA
        return str(v) not in ("", "<NA>")
    return math.isfinite(f) and f != 0


def derive(row: dict) -> dict:
    """Fill every derived column the row can give (a value that cannot be derived is left out)."""
    for c in SCHEMA:
        if c.derive is not None:
            value = c.derive(row)
            if value is not None:
                row[c.name] = value
    return row


def register(column: Column, *, display: bool = False) -> Column:
    """Add a column (a plugin's, a test's) before the raw and view columns; with `display`,
    also show it. Refuses a name the schema already has."""
    if column.name in by_name():
        raise ValueError(f"column {column.name!r} is already in the schema")
    at = next(i for i, c in enumerate(SCHEMA) if c.raw or c.view)
    SCHEMA.insert(at, column)
    if display:
        DISPLAY.append(column.name)
    return column


def unregister(name: str) -> None:
    SCHEMA[:] = [c for c in SCHEMA if c.name != name]
    if name in DISPLAY:
        DISPLAY.remove(name)
