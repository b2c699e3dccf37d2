"""Measure one case in this process: spec -> model -> mode applied -> measurement -> row.

Every executor measures through :class:`CaseRunner`, so a row means the same whatever ran it.
A row is a flat dict of bench.results.columns: the case, the variant, the static cost
(bench.core.profile), the timing statistics and raw samples (bench.core.timing), the output
check against eager fp32, the trackers' columns, and the derived columns.
"""

from __future__ import annotations

import copy
import gc
import os
import time
import traceback
from typing import Any

from bench.core import devices, modes
from bench.core.case import Case
from bench.core.trackers import TRACKERS
from bench.errors import one_line
from bench.execute.base import RunSettings
from bench.results import columns


def base_row(case: Case, status: str, error: str = "") -> dict[str, Any]:
    """The columns every row has: the case, the batch asked for, status and error."""
    row: dict[str, Any] = case.as_dict()
    row["batch_size_requested"] = case.batch_size
    row["status"] = status
    row["error"] = error
    return row


def spec_columns(name: str, overrides: dict) -> dict[str, Any]:
    """The variant's columns, from its resnet_impl spec with the run's overrides."""
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


def load_avg() -> float | None:
    """1-minute load average when the case starts: on a CPU, other processes competing for the
    cores distort timings badly (OpenMP threads spin-wait), so rows record it."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


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

    def check_memory(self, case: Case) -> None:
        """Raise an out-of-memory error, before anything is allocated, when the case's lower
        bound (bench.core.memory) exceeds the device's free memory."""
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
        if fp is None or free is None:
            return
        need = fp.bytes_needed(case.batch_size, case.workload)
        if need > free:
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
        """The reference mode's output (infer: logits; train: first-step loss) on the device."""
        key = (case.model, case.workload, case.batch_size, case.image_size, case.device)
        if key not in self._refs:
            ref_case = case.reference()
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
        row = base_row(case, "ok")
        row["load_avg_1m"] = load_avg()
        if case.ddp:  # never measured as a plain case under a data-parallel key
            row.update(status="error", error="a data-parallel case runs through bench.execute.ddp, not CaseRunner")
            return row
        try:
            row.update(spec_columns(case.model, self.settings.overrides))
        except Exception as exc:  # unknown model reaching the worker: a row, not a crash
            row.update(status="error", error=one_line(exc))
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
                return columns.derive(row)
            except Exception as exc:
                gc.collect()
                devices.backend(case.device).empty_cache()
                if devices.is_oom(exc):
                    if self.settings.oom_backoff and batch > 1:
                        batch //= 2
                        continue
                    row.update(status="oom", error=one_line(exc))
                    if batch != case.batch_size:
                        row["error"] += f" (backed off down to batch {batch})"
                    return row
                row.update(status="error", error=one_line(exc))
                if os.environ.get("RESNET_BENCH_DEBUG"):
                    traceback.print_exc()
                return row

    def _measure(self, case: Case) -> dict[str, Any]:
        import torch

        from bench.core import timing

        if self.settings.memory_check:
            self.check_memory(case)
        out: dict[str, Any] = {}
        if self.settings.profile:
            out.update(self.profile_columns(case.model, case.image_size))
        base = self.base_model(case.model)
        spec = getattr(base, "spec", None)
        num_classes = spec.num_classes if spec is not None else base.fc.out_features
        x, y = modes.make_inputs(case, num_classes, seed=self.settings.seed)
        ref = self.reference_output(case, x, y) if (self.settings.check_outputs and not case.is_reference) else None

        if case.compile != "none":  # eager cases skip importing torch._dynamo (slow, once per process)
            torch._dynamo.reset()
        trackers = [t() for t in TRACKERS]
        for t in trackers:
            t.start(case)
        dev = devices.backend(case.device)
        model = copy.deepcopy(base).to(case.device)
        try:
            with modes.precision_context(case):
                prepared = modes.prepare(model, case, x, y)
                t0 = time.perf_counter()
                first = prepared.step()
                dev.synchronize(case.device)
                first_s = time.perf_counter() - t0
                if ref is not None:
                    abs_d, rel_d = modes.max_diff(first, ref)
                    out.update(max_abs_diff=abs_d, max_rel_diff=rel_d, output_ok=bool(rel_d <= modes.tolerance(case)))
                elif case.is_reference:
                    out.update(max_abs_diff=0.0, max_rel_diff=0.0, output_ok=True)
                m = timing.measure(prepared.step, device=case.device, config=self.settings.timing)
        finally:
            del model
        out.update(m.to_dict())
        out["first_call_s"] = first_s
        out["compile_s"] = first_s if case.compile != "none" else None
        for t in trackers:
            out.update(t.stop(case))
        return out
