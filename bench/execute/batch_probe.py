"""The largest batch that fits: :class:`MaxBatchSearch`, the part of
bench.execute.case_runner.CaseRunner that probes a case at growing batch sizes
(bench.core.batch_search) instead of timing it (``RunSettings.search``)."""

from __future__ import annotations

import copy
import gc
import time
from typing import Any

from bench.core import backends, batch_search, devices, modes
from bench.core.backends import int8
from bench.core.case import Case
from bench.core.oom import Phase, phase_of
from bench.errors import one_line

#: Steps a max-batch probe runs (the first allocates optimizer state, later ones are steady).
PROBE_STEPS = 3


class MaxBatchSearch:
    """Mixed into CaseRunner: needs its ``settings``, ``base_model``, ``check_memory`` and
    ``_batches``."""

    def probe(self, case: Case, earlier: tuple = (), cap_mb: float | None = None) -> batch_search.Probe:
        """Does `case` fit? Its memory estimate, then input, model and ``PROBE_STEPS`` steps
        (no timing), within `cap_mb` (MiB of the device's peak memory: CUDA allocated, CPU
        peak RSS of this process). A batch whose prediction from `earlier` probes exceeds the
        cap is refused without running."""
        import torch

        b, t0 = case.batch_size, time.perf_counter()
        dev = devices.backend(case.device)
        if cap_mb is not None:
            pred = batch_search.predict_mb(earlier, b)
            if pred is not None and pred > cap_mb:
                return batch_search.Probe(b, False, f"predicted {pred:,.0f} MiB > memory cap {cap_mb:,.0f} MiB",
                                          ran=False)
        phase, model, prepared, x, y = Phase(), None, None, None, None
        try:
            if self.settings.memory_check or cap_mb is not None:
                phase.set("estimate")
                self.check_memory(case, cap_bytes=None if cap_mb is None else int(cap_mb * 2**20))
            base = self.base_model(case.model)
            if case.compile != "none":
                torch._dynamo.reset()  # a fresh compile per batch, and no recompile limit reached
            dev.reset_peak_memory(case.device)
            base_mb = dev.peak_memory_mb(case.device)  # in use now: the peak right after a reset
            phase.set("input")
            x, y = modes.make_inputs(case, _num_classes(base), seed=self.settings.seed)
            phase.set("model")
            model = copy.deepcopy(base).to(case.device)
            model.train(case.workload == "train")
            with modes.precision_context(case):
                prepared = backends.get(case.backend).build(
                    model, case, x, y, threads=self.settings.threads, phase=phase,
                    calibration=lambda: self._batches(case, base, int8.CALIBRATION_SEED, int8.CALIBRATION_BATCHES))
                phase.set("forward")
                for _ in range(PROBE_STEPS):
                    prepared.step()
                dev.synchronize(case.device)
            peak = dev.peak_memory_mb(case.device)
        except Exception as exc:
            if not devices.is_oom(exc):
                raise
            where = phase_of(exc, phase)
            return batch_search.Probe(b, False, f"oom in {where}: {one_line(exc)}"[:300],
                                      seconds=time.perf_counter() - t0, ran=where != "estimate")
        finally:
            del model, prepared, x, y
            gc.collect()
            dev.empty_cache()
        if cap_mb is not None and peak > cap_mb:
            return batch_search.Probe(b, False, f"peak {peak:,.0f} MiB > memory cap {cap_mb:,.0f} MiB", peak,
                                      time.perf_counter() - t0, base_mb=base_mb)
        return batch_search.Probe(b, True, "", peak, time.perf_counter() - t0, base_mb=base_mb)

    def _search_row(self, case: Case, row: dict[str, Any]) -> dict[str, Any]:
        opts = self.settings.search or {}
        cap = opts.get("mem_cap_mb")
        try:
            res = batch_search.search(lambda b, earlier: self.probe(case.with_batch_size(b), earlier, cap),
                                      start=case.batch_size, max_batch=int(opts.get("max_batch", 4096)),
                                      max_probes=int(opts.get("max_probes", 24)),
                                      resolution=float(opts.get("resolution", 0.05)))
        except Exception as exc:
            row.update(status="error", error=one_line(exc))
            return row
        row.update(max_batch_searched=res.max_batch, max_batch_fail=res.fail_batch, max_batch_stop=res.stop,
                   max_batch_probes=[p.as_dict() for p in res.probes])
        if res.max_batch is None:
            row.update(status="oom", error=f"no batch from {case.batch_size} fits: {res.probes[-1].why}")
        return row


def _num_classes(base) -> int:
    spec = getattr(base, "spec", None)
    return spec.num_classes if spec is not None else base.fc.out_features
