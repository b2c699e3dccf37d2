"""Measure cases: one case -> one row. In-process (`CaseRunner`) or isolated (`run_sweep`).

Flow: spec -> model (resnet_impl) -> case (bench.cases) -> mode applied (bench.modes)
-> measurement (bench.timing) + profile (bench.profile) -> row (a flat dict) -> results.

Isolation (the default): each model's cases run in a fresh `python -m bench.worker`
subprocess, so a segfault, a CUDA error, leaked or fragmented memory, or cuDNN's algorithm
cache stays with that model (timm #955). The worker reports `start` and `row` events as JSON
lines; the parent turns a dead worker into a `crashed` row and a silent one past
`case_timeout_s` into a `timeout` row, then starts a new worker for the model's remaining cases.
"""

from __future__ import annotations

import copy
import dataclasses
import gc
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from bench.cases import Case
from bench.timing import TimingConfig

STATUSES = ("ok", "ok-reduced", "skipped", "oom", "timeout", "crashed", "error")


@dataclass(frozen=True)
class RunSettings:
    """How cases are measured; part of a run's fingerprint (with the environment)."""

    timing: TimingConfig = field(default_factory=TimingConfig)
    threads: int | None = None  # torch.set_num_threads in the measuring process; None = torch's default
    isolate: bool = True
    case_timeout_s: float | None = None
    oom_backoff: bool = False
    check_outputs: bool = True  # compare each mode's first output with eager fp32
    profile: bool = True  # count params/MACs/activations (fvcore) for each model and image size
    seed: int = 0
    overrides: dict = field(default_factory=dict)  # spec field -> value, for every model (--set)
    weights: str | None = None  # local checkpoint loaded strictly into every model (--weights)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RunSettings":
        d = dict(d)
        d["timing"] = TimingConfig(**d.get("timing", {}))
        return cls(**d)

    def fingerprint_part(self) -> dict:
        """The settings that change what a row means (not isolation or time limits)."""
        return {"timing": dataclasses.asdict(self.timing), "threads": self.threads,
                "check_outputs": self.check_outputs, "seed": self.seed,
                "overrides": self.overrides, "weights": self.weights}


def base_row(case: Case, status: str, error: str = "") -> dict[str, Any]:
    row: dict[str, Any] = case.as_dict()
    row["batch_size_requested"] = case.batch_size
    row["status"] = status
    row["error"] = error
    return row


def _spec_columns(name: str, overrides: dict) -> dict[str, Any]:
    import resnet_impl

    spec = resnet_impl.get_spec(name).replace(**overrides)
    return {
        "block": spec.block,
        "depth": spec.depth,
        "stride_at": spec.stride_at,
        "version": spec.version,
        "stem": spec.stem,
        "shortcut": spec.shortcut,
        "groups": spec.groups,
        "width_per_group": spec.width_per_group,
        "overrides": ",".join(f"{k}={v}" for k, v in sorted(overrides.items())),
    }


def _load_avg() -> float | None:
    """1-minute load average when the case starts: on a CPU, other processes competing for the
    cores distort timings badly (OpenMP threads spin-wait), so rows record it."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def busy(row: dict) -> bool:
    """A CPU case measured while more runnable work than cores was competing (load average
    above the core count, which already includes the measuring process itself)."""
    load, cores = row.get("load_avg_1m"), os.cpu_count() or 1
    return row.get("device") == "cpu" and isinstance(load, (int, float)) and load > cores + 0.5


def _is_oom(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return " ".join(text.split())[:500]


class CaseRunner:
    """Measures cases in this process, caching per model what cases share: the initial
    weights (same seed for every mode), the profile per image size, the eager fp32 reference
    output per input shape."""

    def __init__(self, settings: RunSettings):
        import torch

        self.settings = settings
        if settings.threads:
            torch.set_num_threads(settings.threads)
        self._models: dict[str, Any] = {}
        self._profiles: dict[tuple[str, int], dict] = {}
        self._refs: dict[tuple, Any] = {}

    # -- cached pieces ------------------------------------------------------------
    def base_model(self, name: str):
        if name not in self._models:
            import torch
            import resnet_impl

            self._models.clear()  # one model's weights at a time
            self._refs.clear()
            torch.manual_seed(self.settings.seed)
            self._models[name] = resnet_impl.create_model(
                name, weights=self.settings.weights, **self.settings.overrides)
        return self._models[name]

    def profile_columns(self, name: str, image_size: int) -> dict:
        key = (name, image_size)
        if key not in self._profiles:
            from bench.profile import profile_model

            prof = profile_model(self.base_model(name), image_size, name=name)  # profiles a copy
            self._profiles[key] = prof.as_row()
        return self._profiles[key]

    def reference_output(self, case: Case, x, y):
        """Eager fp32 contiguous output (infer: logits; train: first-step loss) on the device."""
        from bench import modes

        key = (case.model, case.workload, case.batch_size, case.image_size, case.device)
        if key not in self._refs:
            ref_case = dataclasses.replace(case, layout="contiguous", precision="fp32", compile="none")
            model = copy.deepcopy(self.base_model(case.model)).to(case.device)
            xr = x.contiguous()
            with modes.precision_context(ref_case):
                out = modes.prepare(model, ref_case, xr, y).step()
            self._refs[key] = out.detach().float().cpu()
            del model
        return self._refs[key]

    # -- one case -----------------------------------------------------------------
    def run(self, case: Case) -> dict[str, Any]:
        """Measure one case; never raises for a failure of the case itself (it becomes the row's
        status and error). With oom_backoff, an OOM retries with half the batch (ok-reduced)."""
        from bench import modes

        row = base_row(case, "ok")
        row["load_avg_1m"] = _load_avg()
        try:
            row.update(_spec_columns(case.model, self.settings.overrides))
        except Exception as exc:  # unknown model reaching the worker: a row, not a crash
            row.update(status="error", error=_one_line(exc))
            return row
        reason = modes.skip_reason(case)
        if reason:
            row.update(status="skipped", error=reason)
            return row
        batch = case.batch_size
        while True:
            try:
                measured = self._measure(case.with_batch_size(batch))
                row.update(measured)
                row["batch_size"] = batch
                if batch != case.batch_size:
                    row["status"] = "ok-reduced"
                    row["error"] = f"out of memory at batch {case.batch_size}; measured at batch {batch}"
                return row
            except Exception as exc:
                self._cleanup(case.device)
                if _is_oom(exc):
                    if self.settings.oom_backoff and batch > 1:
                        batch //= 2
                        continue
                    row.update(status="oom", error=_one_line(exc))
                    if batch != case.batch_size:
                        row["error"] += f" (backed off down to batch {batch})"
                    return row
                row.update(status="error", error=_one_line(exc))
                if os.environ.get("RESNET_BENCH_DEBUG"):
                    traceback.print_exc()
                return row

    def _cleanup(self, device: str) -> None:
        import torch

        gc.collect()
        if device.startswith("cuda"):
            torch.cuda.empty_cache()

    def _measure(self, case: Case) -> dict[str, Any]:
        import torch
        from bench import modes, timing

        out: dict[str, Any] = {}
        if self.settings.profile:
            out.update(self.profile_columns(case.model, case.image_size))
        base = self.base_model(case.model)
        num_classes = base.fc.out_features if hasattr(base, "fc") else 1000
        x, y = modes.make_inputs(case, num_classes, seed=self.settings.seed)
        ref = self.reference_output(case, x, y) if (self.settings.check_outputs and not case.is_reference) else None

        if case.compile != "none":  # importing torch._dynamo costs ~1 s per process; eager needs no reset
            torch._dynamo.reset()
        timing.reset_peak_memory(case.device)
        model = copy.deepcopy(base).to(case.device)
        try:
            with modes.precision_context(case):
                prepared = modes.prepare(model, case, x, y)
                t0 = time.perf_counter()
                first = prepared.step()
                if case.device.startswith("cuda"):
                    torch.cuda.synchronize()
                first_s = time.perf_counter() - t0
                if ref is not None:
                    abs_d, rel_d = modes.max_diff(first, ref)
                    tol = modes.REL_TOLERANCE[case.precision]
                    out.update(max_abs_diff=abs_d, max_rel_diff=rel_d, output_ok=bool(rel_d <= tol))
                elif case.is_reference:
                    out.update(max_abs_diff=0.0, max_rel_diff=0.0, output_ok=True)
                m = timing.measure(prepared.step, device=case.device, config=self.settings.timing)
        finally:
            del model
        stats = m.to_dict()
        out.update(stats)
        out["first_call_s"] = first_s
        out["compile_s"] = first_s if case.compile != "none" else None
        out["peak_mem_mb"] = timing.peak_memory_mb(case.device)
        median_s = m.median_ms / 1e3
        out["throughput_ips"] = case.batch_size / median_s
        flops = out.get("flops")
        if flops:
            # Training ~ 3x the forward FLOPs (forward + backward w.r.t. activations and weights).
            factor = 3 if case.workload == "train" else 1
            out["achieved_tflops"] = flops * case.batch_size * factor / median_s / 1e12
        return out


# ---------------------------------------------------------------- sweeps
RowSink = Callable[[dict], None]


def group_by_model(cases: Iterable[Case]) -> list[list[Case]]:
    groups: dict[str, list[Case]] = {}
    for c in cases:
        groups.setdefault(c.model, []).append(c)
    return list(groups.values())


def run_sweep(
    cases: list[Case],
    settings: RunSettings,
    on_row: RowSink,
    on_start: Callable[[Case], None] | None = None,
    code_root: str | None = None,
) -> None:
    """Run every case, calling `on_row` with each finished row as soon as it exists.

    `code_root`: measure with the bench/resnet_impl code found there (e.g. a git worktree of
    another revision, for the speed gate) instead of this installation's; needs isolation."""
    if not settings.isolate:
        runner = CaseRunner(settings)
        for case in cases:
            if on_start:
                on_start(case)
            on_row(runner.run(case))
        return
    for group in group_by_model(cases):
        _run_group_isolated(group, settings, on_row, on_start, code_root)


def _worker_command() -> list[str]:
    return [sys.executable, "-m", "bench.worker"]


def _run_group_isolated(group: list[Case], settings: RunSettings, on_row: RowSink, on_start,
                        code_root: str | None = None) -> None:
    pending = list(group)
    while pending:
        done_keys = _run_worker(pending, settings, on_row, on_start, code_root)
        pending = [c for c in pending if c.key() not in done_keys]


def _run_worker(cases: list[Case], settings: RunSettings, on_row: RowSink, on_start,
                code_root: str | None = None) -> set[str]:
    """Run `cases` in one worker process. Returns the keys that got a row (from the worker, or
    a `crashed`/`timeout` row made here for the case it died on). Stops at the first death:
    the caller restarts a fresh worker for the rest."""
    payload = json.dumps({"cases": [c.as_dict() for c in cases], "settings": settings.to_dict()})
    by_key = {c.key(): c for c in cases}
    done: set[str] = set()
    with tempfile.TemporaryFile(mode="w+b") as errf:
        proc = subprocess.Popen(
            _worker_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errf,
            start_new_session=True, env=_worker_env(code_root), cwd=code_root,
        )
        events: queue.Queue = queue.Queue()
        reader = threading.Thread(target=_read_events, args=(proc.stdout, events), daemon=True)
        reader.start()
        try:
            proc.stdin.write(payload.encode())
            proc.stdin.close()
        except BrokenPipeError:
            pass
        current: Case | None = None
        started = time.monotonic()
        try:
            while True:
                timeout = None
                if current is not None and settings.case_timeout_s:
                    timeout = max(0.0, settings.case_timeout_s - (time.monotonic() - started))
                try:
                    ev = events.get(timeout=timeout)
                except queue.Empty:
                    _kill(proc)
                    on_row(base_row(current, "timeout",
                                    f"no result within --case-timeout {settings.case_timeout_s:g} s; process killed"))
                    done.add(current.key())
                    return done
                if ev is None:  # worker's stdout closed: it exited
                    rc = proc.wait()
                    if current is not None:
                        on_row(base_row(current, "crashed", _death_message(rc, errf)))
                        done.add(current.key())
                    elif rc != 0 and len(done) < len(cases):
                        # died before starting any case (import error, bad plugin...): every case errs
                        msg = _death_message(rc, errf)
                        for c in cases:
                            if c.key() not in done:
                                on_row(base_row(c, "crashed", msg))
                                done.add(c.key())
                    return done
                if ev.get("event") == "start":
                    current = by_key[ev["key"]]
                    started = time.monotonic()
                    if on_start:
                        on_start(current)
                elif ev.get("event") == "row":
                    on_row(ev["row"])
                    done.add(ev["key"])
                    current = None
        finally:
            if proc.poll() is None:
                _kill(proc)


def _worker_env(code_root: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    root = code_root or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _read_events(stream, events: queue.Queue) -> None:
    for line in stream:
        try:
            events.put(json.loads(line))
        except json.JSONDecodeError:
            continue  # not a protocol line
    events.put(None)


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _death_message(rc: int, errf) -> str:
    if rc < 0:
        try:
            what = f"killed by signal {signal.Signals(-rc).name}"
        except ValueError:
            what = f"killed by signal {-rc}"
    else:
        what = f"exited with code {rc}"
    errf.seek(0)
    tail = errf.read()[-2000:].decode(errors="replace").strip().splitlines()
    last = next((ln for ln in reversed(tail) if ln.strip()), "")
    return f"worker process {what}" + (f"; last stderr line: {last.strip()[:300]}" if last else "")
