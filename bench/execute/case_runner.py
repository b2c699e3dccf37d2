"""Measure one case in this process: spec -> model -> mode applied -> measurement -> row.

Every executor measures through :class:`CaseRunner`, so a row means the same whatever ran it.
A row is a flat dict of bench.results.columns: the case, the variant, the static cost
(bench.core.profile), the timing statistics and raw samples (bench.core.timing), the output
check against eager fp32, the trackers' columns (peak memory, energy, GPU clocks), the memory
pass (bench.core.memory), an optional profiler trace (bench.core.trace), and the derived
columns. An out-of-memory case says in which phase it ran out (bench.core.oom).

With ``RunSettings.search`` set, each case is a search target instead: :meth:`CaseRunner.run`
returns the largest batch that fits (bench.core.batch_search) as a row.
"""

from __future__ import annotations

import copy
import gc
import os
import time
import traceback
from typing import Any

from bench.core import backends, devices, modes
from bench.core.backends import int8
from bench.core.case import Case
from bench.core.oom import Phase, describe, phase_of
from bench.core.trackers import TRACKERS, SampleHooks
from bench.errors import one_line
from bench.execute.base import RunSettings
from bench.execute.batch_probe import MaxBatchSearch, _num_classes
from bench.execute.row_start import base_row, load_avg, spec_columns
from bench.execute.torch_settings import torch_settings
from bench.results import columns


class CaseRunner(MaxBatchSearch):
    """Measures cases in this process, caching per model what cases share: the initial
    weights (same seed for every mode), the profile per image size, the eager fp32 reference
    output per input shape."""

    def __init__(self, settings: RunSettings):
        self.settings = settings
        self._models: dict[str, Any] = {}
        self._footprints: dict[tuple[str, int], Any] = {}
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

    def check_memory(self, case: Case, cap_bytes: int | None = None) -> None:
        """Raise an out-of-memory error, before anything is allocated, when the case's lower
        bound (bench.core.memory) exceeds the device's free memory (or `cap_bytes`)."""
        from bench.core import memory

        key = (case.model, case.image_size)
        if key not in self._footprints:
            import resnet_impl

            try:
                self._footprints[key] = memory.footprint(
                    lambda: resnet_impl.create_model(case.model, **self.settings.overrides), case.image_size)
            except Exception:  # the estimate is a guard, never a failure of its own
                self._footprints[key] = None
        fp = self._footprints[key]
        free = devices.backend(case.device).free_memory_bytes(case.device)
        if fp is None:
            return
        need = fp.bytes_needed(case.batch_size, case.workload)
        if cap_bytes is not None and need > cap_bytes:
            raise MemoryError(f"out of memory (estimated before running): batch {case.batch_size} at "
                              f"{case.image_size} px needs at least {memory.gib(need)}, over the memory cap of "
                              f"{memory.gib(cap_bytes)}")
        if free is not None and need > free:
            raise MemoryError(f"out of memory (estimated before running): batch {case.batch_size} at "
                              f"{case.image_size} px needs at least {memory.gib(need)}, {case.device} has "
                              f"{memory.gib(free)} free; --no-memory-check tries anyway")

    def profile_columns(self, name: str, image_size: int) -> dict:
        key = (name, image_size)
        if key not in self._profiles:
            from bench.core.profile import profile_model

            prof = profile_model(self.base_model(name), image_size, name=name)  # profiles a copy
            self._profiles[key] = prof.as_row()
        return self._profiles[key]

    def reference_output(self, case: Case, x, y):
        """The reference mode's output (infer: logits; train: first-step loss) on the device, or
        the reason it could not be computed (a str: the reference ran out of memory)."""
        key = (case.model, case.workload, case.batch_size, case.image_size, case.device)
        if key not in self._refs:
            ref_case = case.reference()
            phase = Phase()
            model = None
            try:
                phase.set("model")
                model = copy.deepcopy(self.base_model(case.model)).to(case.device)
                xr = x.contiguous()
                with modes.precision_context(ref_case):
                    phase.set("forward")
                    out = modes.prepare(model, ref_case, xr, y, phase=phase).step()
                self._refs[key] = out.detach().float().cpu()
            except Exception as exc:
                if not devices.is_oom(exc):
                    raise
                self._refs[key] = (f"the eager fp32 reference ran out of memory in {phase_of(exc, phase)} at this "
                                   "batch; output not checked")
            finally:
                del model
                gc.collect()
                devices.backend(case.device).empty_cache()
        return self._refs[key]

    # -- one case -----------------------------------------------------------------
    def run(self, case: Case) -> dict[str, Any]:
        """Measure one case; never raises for a failure of the case itself (it becomes the row's
        status and error). With oom_backoff, an OOM retries with half the batch (ok-reduced).
        The process's torch settings the case changes (its thread count, inductor's freezing)
        are restored after it: the inline executor measures in the caller's process."""
        with torch_settings(self.settings.threads):
            return self._run(case)

    def _run(self, case: Case) -> dict[str, Any]:
        if case.ddp:  # never measured as a plain case under a data-parallel key
            return base_row(case, "error", "a data-parallel case runs through bench.execute.ddp, not CaseRunner")
        row = self._checked_row(case)
        if row["status"] != "ok":
            return row
        if self.settings.search:
            return self._search_row(case, row)
        batch = case.batch_size
        while True:
            phase = Phase()
            try:
                measured = self._measure(case.with_batch_size(batch), phase)
                row.update(measured)
                row["batch_size"] = batch
                if batch != case.batch_size:
                    row["status"] = "ok-reduced"
                    row["error"] = f"out of memory at batch {case.batch_size}; measured at batch {batch}"
                return columns.derive(row)
            except Exception as exc:
                if devices.is_oom(exc) and self.settings.oom_backoff and batch > 1:
                    gc.collect()
                    devices.backend(case.device).empty_cache()
                    batch //= 2
                    continue
                row = self._failed(row, exc, phase, case)
                if batch != case.batch_size and row["status"] == "oom":
                    row["error"] += f" (backed off down to batch {batch})"
                return row

    def _measure(self, case: Case, phase: Phase) -> dict[str, Any]:
        live = self._open(case, phase)
        try:
            with modes.precision_context(case):
                live.sample()
            return self._close(live, phase)
        finally:
            live.release()

    def _open(self, case: Case, phase: Phase, fresh_compile: bool = True) -> _Live:
        """Everything before the samples: the memory estimate, the counts, the input, the
        reference output, the trackers started, the model copied and its mode applied, the
        first call (compilation) timed apart with its output checked, the warm-up."""
        import torch

        from bench.core import timing

        t_open = time.perf_counter()
        if self.settings.memory_check:
            phase.set("estimate")
            self.check_memory(case)
        out: dict[str, Any] = {}
        if self.settings.profile:
            phase.set("profile")
            out.update(self.profile_columns(case.model, case.image_size))
        base = self.base_model(case.model)
        phase.set("input")
        x, y = modes.make_inputs(case, _num_classes(base), seed=self.settings.seed)
        ref = self.reference_output(case, x, y) if (self.settings.check_outputs and not case.is_reference) else None
        if isinstance(ref, str):
            out["output_note"], ref = ref, None
        # a fresh compile per case (no recompile limit reached), unless another compiled case is
        # live beside it (interleaved); eager cases skip importing torch._dynamo (slow)
        if case.compile != "none" and fresh_compile:
            torch._dynamo.reset()
        live = _Live(case, out, [t() for t in TRACKERS])
        for t in live.trackers:
            t.start(case)
        try:
            phase.set("model")
            live.model = copy.deepcopy(base).to(case.device)
            live.model.train(case.workload == "train")  # what a backend's build is handed (bench.core.backends.base)
            with modes.precision_context(case):
                phase.set("build")
                t0 = time.perf_counter()
                live.prepared = backends.get(case.backend).build(
                    live.model, case, x, y, threads=self.settings.threads, phase=phase,
                    calibration=lambda: self._batches(case, base, int8.CALIBRATION_SEED, int8.CALIBRATION_BATCHES))
                out["build_s"] = time.perf_counter() - t0
                out.update(live.prepared.info)
                out["backend"] = case.backend
                live.sampler = timing.Sampler(live.prepared.step, device=case.device, config=self.settings.timing,
                                              hooks=SampleHooks(live.trackers, case))
                phase.set("forward")
                phase.first_call = True
                live.sampler.first_call()
                phase.first_call = False
                if live.prepared.verify is not None:
                    phase.set("verify")
                    out.update(live.prepared.verify())
                    phase.set("forward")
                if ref is not None:
                    abs_d, rel_d = modes.max_diff(live.sampler.first_output, ref)
                    out.update(max_abs_diff=abs_d, max_rel_diff=rel_d, output_ok=bool(rel_d <= modes.tolerance(case)))
                    if case.precision == "int8":
                        out.update(self._fidelity(case, base, live.prepared))
                elif case.is_reference:
                    out.update(max_abs_diff=0.0, max_rel_diff=0.0, output_ok=True)
                live.sampler.first_output = None
                live.sampler.warm_up()
        except BaseException:
            live.release()
            raise
        live.wall_s = time.perf_counter() - t_open
        return live

    def _batches(self, case: Case, base, seed: int, n: int) -> list:
        """`n` fixed seeded input batches of the case's shape (int8 calibration, the check set)."""
        return [modes.make_inputs(case, _num_classes(base), seed=seed + i)[0] for i in range(n)]

    def _fidelity(self, case: Case, base, built) -> dict[str, Any]:
        """An int8 case's logits against eager fp32's on the seeded check set (cosine, top-1/5
        agreement); its output passes on the cosine (bench.core.backends.int8.MIN_COSINE)."""
        import torch

        ref_model = copy.deepcopy(base).to(case.device).eval()

        def reference(batch):
            with torch.no_grad():
                return ref_model(batch.contiguous())

        got = int8.fidelity(built.infer, reference, self._batches(case, base, int8.CHECK_SEED, int8.CHECK_BATCHES))
        got["output_ok"] = bool(got["output_cosine"] >= int8.MIN_COSINE)
        return got

    def _close(self, live: _Live, phase: Phase) -> dict[str, Any]:
        """After the samples: every measurement pass that is wanted (bench.execute.passes:
        timing, memory pass, stage pass, trace), each in its phase."""
        from bench.execute.passes import PASSES

        case, out, t0 = live.case, live.out, time.perf_counter()
        with modes.precision_context(case):
            for p in PASSES:
                if p.wanted(self.settings, case):
                    phase.set(p.name)
                    out.update(p.measure(live, self.settings))
        out["case_s"] = live.wall_s + time.perf_counter() - t0
        return out

    # -- a model's cases side by side ------------------------------------------------
    def run_interleaved(self, cases: list[Case]):
        """Measure one model's cases side by side, one shape (workload, batch, image size) at a
        time, its rows written as each shape finishes: each case opened (first call, output check,
        warm-up) and kept, then their samples taken in blocks, in an order that rotates from block
        to block, so what the machine does meanwhile falls on every case alike and their ratios
        (the speedup over eager fp32) are paired within the process, not only between rounds.
        Yields ``("start", case)`` (for each case as it opens, and before each of its blocks: a
        parent's case timeout counts from it) and ``("row", row)``. A case that fails while it
        opens gets its row at once; the others go on."""
        groups: dict[tuple, list[Case]] = {}
        for case in cases:  # the cases whose ratios are asked for: one shape, its modes
            groups.setdefault((case.workload, case.batch_size, case.image_size, case.ddp), []).append(case)
        for group in groups.values():
            yield from self._interleave(group)

    def _interleave(self, cases: list[Case]):
        from bench.execute.rounds import order

        with torch_settings(self.settings.threads):
            live, rows = [], {}
            for case in cases:
                yield "start", case
                row = self._checked_row(case)
                if row["status"] != "ok":
                    yield "row", row
                    continue
                phase = Phase()
                compiled = any(lv.case.compile != "none" for lv, _, _ in live)
                try:
                    live.append((self._open(case, phase, fresh_compile=not compiled), row, phase))
                except Exception as exc:
                    yield "row", self._failed(row, exc, phase, case)
            blocks = INTERLEAVE_BLOCKS
            block_s = self.settings.timing.max_time_s / blocks
            k = 0
            while any(not lv.sampler.done for lv, _, _ in live):
                k += 1
                for lv, row, phase in order([x for x in live if not x[0].sampler.done], k):
                    yield "start", lv.case
                    try:
                        with modes.precision_context(lv.case):
                            lv.sample(block_s)
                    except Exception as exc:
                        live.remove((lv, row, phase))
                        lv.release()
                        yield "row", self._failed(row, exc, phase, lv.case)
            for lv, row, phase in live:
                try:
                    row.update(self._close(lv, phase))
                    rows[lv.case.key()] = columns.derive(row)
                except Exception as exc:
                    rows[lv.case.key()] = self._failed(row, exc, phase, lv.case)
                finally:
                    lv.release()
            for lv, _, _ in live:
                yield "row", rows[lv.case.key()]

    def _checked_row(self, case: Case) -> dict[str, Any]:
        """A case's row before anything runs: status ok, or why it cannot (skipped, error)."""
        row = base_row(case, "ok")
        row["load_avg_1m"] = load_avg()
        try:
            row.update(spec_columns(case.model, self.settings.overrides))
        except Exception as exc:
            row.update(status="error", error=one_line(exc))
            return row
        reason = modes.skip_reason(case)
        if reason:
            row.update(status="skipped", error=reason)
        return row

    def _failed(self, row: dict[str, Any], exc: BaseException, phase: Phase, case: Case) -> dict[str, Any]:
        gc.collect()
        devices.backend(case.device).empty_cache()
        if devices.is_oom(exc):
            where = phase_of(exc, phase)
            text = one_line(exc)
            row.update(status="oom", oom_phase=where, error=text if where == "estimate" else describe(text, where, phase))
        else:
            row.update(status="error", error=one_line(exc))
            if os.environ.get("RESNET_BENCH_DEBUG"):
                traceback.print_exc()
        return row


#: Blocks a case's samples are split into when a model's cases are measured side by side.
INTERLEAVE_BLOCKS = 8


class _Live:
    """A case opened for sampling: its row's columns so far, trackers, model, its backend's
    build (bench.core.backends.Built: step, the torch module if any) and sampler
    (bench.core.timing.Sampler)."""

    def __init__(self, case: Case, out: dict[str, Any], trackers: list):
        self.case, self.out, self.trackers = case, out, trackers
        self.model = self.prepared = self.sampler = None
        self.wall_s = 0.0  # this process's wall time on the case so far (opening, sampling)

    def sample(self, seconds: float | None = None) -> None:
        t0 = time.perf_counter()
        try:
            self.sampler.sample(seconds)
        finally:
            self.wall_s += time.perf_counter() - t0

    def release(self) -> None:
        self.model = self.prepared = self.sampler = None
