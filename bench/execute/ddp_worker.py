"""One rank of a data-parallel training case: ``python -m bench.execute.ddp_worker PAYLOAD OUT``,
started by torch.distributed.run (bench.execute.ddp), which sets RANK, LOCAL_RANK and
WORLD_SIZE.

Method (every rank in lockstep; NCCL on CUDA with one GPU per rank, gloo on CPU):

1. The model is built with the run's seed, wrapped in DistributedDataParallel and given the
   case's mode (bench.core.modes.prepare: layout, autocast, torch.compile); each rank trains
   on its own fixed random batch of ``batch_size`` images (batch per rank).
2. The harness's one sampling loop (bench.core.timing.measure) with this case's own clock:
   its ``time_hook`` is a window (``barrier``, synchronize, K = :data:`STEPS` steps,
   synchronize), timed by each rank's clock and reduced with ``all_reduce(MAX)``, one sample =
   the slowest rank's time / K (ms per step); its ``stop_hook`` all-reduces each decision, so
   every rank ends warm-up and sampling together. The first step (compilation) is timed apart;
   warm-up runs until two consecutive windows agree within the timing config's ``warmup_tol``
   (or ``warmup_max_s`` is spent: ``steady=False``); sampling follows the timing config's rules
   (min/max samples and time, the median's CI).
4. Images/s = world_size x batch_per_rank x K / max time (at the median sample). Each rank's
   own median step time is gathered (``rank_step_ms``), so a straggler shows.

The process group has a timeout (half of ``case_timeout_s``, else :data:`PG_TIMEOUT_S`): a
collective waiting for a stuck rank raises (a ``timeout`` row naming the waiting rank) before
the parent's case timeout kills every rank, and never waits forever. Rank 0 writes OUT/row.json; a rank that
fails writes OUT/rank<r>.json (its status and error) and exits 1, and torchrun ends the rest.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

STEPS = 10  # K: training steps per window
PG_TIMEOUT_S = 600.0


def main(argv: list[str]) -> int:
    from bench.execute.procs import die_with_parent

    die_with_parent()
    payload = json.loads(Path(argv[0]).read_text())
    out = Path(argv[1])
    sys.path.extend(p for p in payload.get("plugin_paths", []) if p not in sys.path)

    from bench.core.case import Case
    from bench.execute.base import RunSettings

    case = Case.from_dict(payload["case"])
    settings = RunSettings.from_dict(payload["settings"])
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    try:
        result = _run(case, settings, rank, local_rank, int(os.environ["WORLD_SIZE"]))
    except Exception as exc:
        from bench.core import devices
        from bench.errors import one_line

        msg = one_line(exc)
        status = "oom" if devices.is_oom(exc) else ("timeout" if "timed out" in msg.lower() else "error")
        _write(out / f"rank{rank}.json", {"status": status, "error": msg, "time": time.time()})
        sys.stderr.flush()
        os._exit(1)
    if rank == 0:
        _write(out / "row.json", result)
    return 0


def _write(path: Path, doc: dict) -> None:
    from bench.results.files import json_safe

    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(json_safe(doc)))
    os.replace(tmp, path)


def _skip_reason(case, local_world: int, threads: int) -> str | None:
    """Why this node cannot run the case (the same answer on every rank), or None: a mode the
    device lacks, fewer GPUs than ranks, or (CPU) fewer CPUs than ranks x threads."""
    from bench.core import modes

    reason = modes.skip_reason(case)
    if reason:
        return reason
    if case.device.startswith("cuda"):
        import torch

        have = torch.cuda.device_count()
        if have < local_world:
            return (f"{local_world} ranks need {local_world} GPUs on one node; this node shows {have} "
                    f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')})")
        return None
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if local_world * threads > cpus:
        return f"{local_world} ranks x {threads} thread(s) need {local_world * threads} CPUs; this node has {cpus}"
    return None


def _run(case, settings, rank: int, local_rank: int, world: int) -> dict:
    import torch
    import torch.distributed as dist

    from bench.core import env as E
    from bench.execute.case_runner import CaseRunner
    from bench.execute.row_start import base_row, load_avg, spec_columns

    runner = CaseRunner(settings)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    threads = torch.get_num_threads()
    cuda = case.device.startswith("cuda")
    device = f"cuda:{local_rank}" if cuda else case.device
    if cuda and torch.cuda.device_count() > local_rank:
        torch.cuda.set_device(local_rank)
    env = E.collect(device if (not cuda or torch.cuda.device_count() > local_rank) else "cpu", threads)
    row = base_row(case, "ok")
    row.update(load_avg_1m=load_avg(), world_size=world, batch_per_rank=case.batch_size)
    reason = _skip_reason(case, int(os.environ.get("LOCAL_WORLD_SIZE", world)), threads)
    if reason:
        row.update(status="skipped", error=reason)
        return {"row": row, "env": env}
    row.update(spec_columns(case.model, settings.overrides))
    if rank == 0 and settings.profile:  # before the process group: the others wait in its rendezvous
        row.update(runner.profile_columns(case.model, case.image_size))
    backend = "nccl" if cuda else "gloo"
    timeout = dt.timedelta(seconds=settings.case_timeout_s / 2 if settings.case_timeout_s else PG_TIMEOUT_S)
    if cuda:  # bind the NCCL communicator to this rank's GPU at once
        dist.init_process_group(backend, timeout=timeout, device_id=torch.device(device))
    else:
        dist.init_process_group(backend, timeout=timeout)
    try:
        row.update(_measure(case, settings, runner, device, rank))
    finally:
        dist.destroy_process_group()
    row.update(ddp_backend=backend, ddp_steps=STEPS)
    from bench.results import columns

    return {"row": columns.derive(row), "env": env}


def _measure(case, settings, runner, device: str, rank: int) -> dict:
    import copy
    import dataclasses

    import numpy as np
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from bench.core import devices, modes, timing

    dev = devices.backend(device)
    rcase = dataclasses.replace(case, device=device)
    base = runner.base_model(case.model)
    spec = getattr(base, "spec", None)
    num_classes = spec.num_classes if spec is not None else base.fc.out_features
    x, y = modes.make_inputs(rcase, num_classes, seed=settings.seed + rank)  # each rank its own batch
    fmt = getattr(torch, modes.layout(case.layout).memory_format)
    model = copy.deepcopy(base).to(device).to(memory_format=fmt)  # the layout before DDP builds its buckets
    ddp_model = DDP(model, device_ids=[torch.device(device).index] if device.startswith("cuda") else None)
    on = device if device.startswith("cuda") else "cpu"

    def reduced(values: list[float], op=dist.ReduceOp.MAX) -> list[float]:
        t = torch.tensor(values, dtype=torch.float64, device=on)
        dist.all_reduce(t, op=op)
        return t.tolist()

    own: list[float] = []  # this rank's ms per step, one per window

    def window() -> float:
        """The time hook: barrier, K steps timed by this rank's clock, the slowest rank's time."""
        dist.barrier()
        dev.synchronize(device)
        t0 = time.perf_counter()
        for _ in range(STEPS):
            step()
        dev.synchronize(device)
        mine = (time.perf_counter() - t0) / STEPS * 1e3
        own.append(mine)
        (slowest,) = reduced([mine])
        return slowest

    def agree(stop: bool) -> bool:
        """The stop hook: every rank stops when any rank would (its clock ran out first)."""
        (any_stop,) = reduced([1.0 if stop else 0.0])
        return any_stop > 0

    # warm-up compares two consecutive windows of K steps (a window of windows would be 5 x K)
    cfg = dataclasses.replace(settings.timing, warmup_window=1, warmup_min_iters=2)
    with modes.precision_context(rcase):
        step = modes.prepare(ddp_model, rcase, x, y).step
        dev.reset_peak_memory(device)
        dist.barrier()
        m = timing.measure(step, device=device, config=cfg, time_hook=window, stop_hook=agree)
        samples = list(m.samples_ms)
        own = own[-len(samples):]  # the sampled windows' own times (warm-up windows dropped)
        per_rank = [torch.zeros(1, dtype=torch.float64, device=on) for _ in range(dist.get_world_size())]
        dist.all_gather(per_rank, torch.tensor([float(np.median(own))], dtype=torch.float64, device=on))
        (peak,) = reduced([dev.peak_memory_mb(device)])
        (first_s,) = reduced([m.first_call_s])
    rank_ms = [t.item() for t in per_rank]
    out = m.to_dict()
    out.update(samples_ms=samples, warmup_iters=m.warmup_iters * STEPS, first_call_s=first_s,
               compile_s=first_s if case.compile != "none" else None,
               rank_step_ms=rank_ms, rank_step_ms_min=min(rank_ms), rank_step_ms_max=max(rank_ms),
               peak_mem_mb=peak)
    return out


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
