"""Data-parallel training cases: one torch.distributed.run launch per case.

:func:`run_case` starts ``python -P -m bench.execute.ddp_launch --standalone --nproc-per-node N
-m bench.execute.ddp_worker PAYLOAD OUT`` (torchrun, one node, N ranks, a rendezvous on a free
local port) in a session of its own and waits. The ranks measure (bench.execute.ddp_worker:
NCCL on CUDA, gloo on CPU); rank 0 leaves the row in OUT. What happens to the processes becomes
the row's status, as with the local executor:

- every rank finished: rank 0's row (``ok``, or ``skipped`` with the reason);
- a rank killed by a signal (torchrun's first observed failure): ``crashed``, naming the rank;
- a rank raised: that rank's ``oom``/``error``/``timeout`` (a collective past the process
  group's timeout: a stuck peer);
- past ``case_timeout_s`` (counted from the launch): the launcher, every rank and whatever
  they started are killed: ``timeout``.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.core.case import Case
from bench.execute import procs
from bench.execute.base import RunSettings
from bench.execute.row_start import base_row

ROW_FILE = "row.json"  # rank 0's result: {"row": ..., "env": ...}


def rank_file(rank: int) -> str:
    """The file a failing rank leaves: {"status", "error", "time"}."""
    return f"rank{rank}.json"


def launch_command(case: Case, payload: Path, out: Path) -> list[str]:
    return procs.python_command("bench.execute.ddp_launch") + [
        "--standalone", f"--nproc-per-node={case.ddp}", "--max-restarts=0",
        "-m", "bench.execute.ddp_worker", str(payload), str(out)]


def run_case(case: Case, settings: RunSettings, *, code_root: str | None = None,
             extra_env: Mapping[str, str] | None = None,
             plugin_roots: Sequence[str] = ()) -> tuple[dict, dict | None]:
    """Launch the case's ranks and wait (at most ``settings.case_timeout_s``). Returns the row
    and the environment of rank 0 (None when no rank reported one)."""
    with tempfile.TemporaryDirectory(prefix="resnet-bench-ddp-") as tmp, \
            tempfile.TemporaryFile(mode="w+b") as logf:
        out = Path(tmp)
        payload = out / "payload.json"
        payload.write_text(json.dumps({"case": case.as_dict(), "settings": settings.to_payload(),
                                       "plugin_paths": list(plugin_roots)}))
        # One thread per rank unless --threads says otherwise (torchrun's own default).
        env = procs.python_env(code_root, {**(extra_env or {}), "OMP_NUM_THREADS": str(settings.threads or 1)})
        proc = subprocess.Popen(launch_command(case, payload, out), stdin=subprocess.DEVNULL, stdout=logf,
                                stderr=subprocess.STDOUT, start_new_session=True, env=env, cwd=code_root)
        try:
            rc = proc.wait(timeout=settings.case_timeout_s)
        except subprocess.TimeoutExpired:
            procs.kill_tree(proc)
            return (base_row(case, "timeout", f"no result within --case-timeout {settings.case_timeout_s:g} s "
                                              f"({case.ddp} ranks); launcher and ranks killed"), _env(out))
        finally:
            if proc.poll() is None:
                procs.kill_tree(proc)
        return outcome(case, rc, out, procs.read_tail(logf, 20000)), _env(out)


def _env(out: Path) -> dict | None:
    try:
        return json.loads((out / ROW_FILE).read_text()).get("env")
    except (OSError, ValueError, AttributeError):
        return None


def outcome(case: Case, rc: int, out: Path, log: str) -> dict[str, Any]:
    """The row for a launch that ended with exit code `rc`, from what the ranks left in `out`
    and torchrun's failure summary in `log`."""
    try:
        row = json.loads((out / ROW_FILE).read_text())["row"]
    except (OSError, ValueError, KeyError, TypeError):
        row = None
    if rc == 0 and isinstance(row, dict):
        return row
    failed = {}
    for f in out.glob("rank*.json"):
        try:
            d = json.loads(f.read_text())
            failed[int(f.stem[4:])] = d
        except (OSError, ValueError):
            continue
    root = root_cause(log)
    # A rank killed by a signal is the cause even when a peer's error was observed first (the
    # peer's collective failed because the rank died); not a rank torchrun itself signalled while
    # ending the others ("Sending process N closing signal SIGTERM").
    ended = {int(pid) for pid in re.findall(r"Sending process (\d+) closing signal", log)}
    killed = next((f for f in ([root] if root else []) + failures(log)
                   if f["exitcode"] < 0 and f.get("pid") not in ended), None)
    if killed:
        return base_row(case, "crashed", f"rank {killed['rank']} {_signal(killed['exitcode'])}; torchrun ended "
                                         f"the other ranks (exit code {rc})")
    if failed:
        rank = root["rank"] if root and root["rank"] in failed else min(failed, key=lambda r: failed[r].get("time", 0))
        d = failed[rank]
        return base_row(case, str(d.get("status", "error")), f"rank {rank}: {d.get('error', '')}")
    if root:
        return base_row(case, "crashed", f"rank {root['rank']} exited with code {root['exitcode']}"
                                         + (f": {root['message']}" if root.get("message") else ""))
    return base_row(case, "crashed", procs.death_message(rc, log, "torch.distributed.run"))


_ROOT = re.compile(r"Root Cause \(first observed failure\):(.*?)(?:^=+$|\Z)", re.S | re.M)


def failures(log: str) -> list[dict[str, Any]]:
    """Every failed rank in torchrun's failure summary (blocks ``[i]:`` of ``rank :``,
    ``exitcode :``, ``traceback :`` lines), in the order listed: rank, exit code (negative: the
    signal), pid, traceback line."""
    out = []
    for block in re.split(r"^\[\d+\]:\s*$", log, flags=re.M)[1:]:
        rank = re.search(r"^\s*rank\s*:\s*(\d+)", block, re.M)
        code = re.search(r"^\s*exitcode\s*:\s*(-?\d+)(?:\s*\(pid:\s*(\d+)\))?", block, re.M)
        if rank and code:
            msg = re.search(r"^\s*traceback\s*:\s*(.*)$", block, re.M)
            out.append({"rank": int(rank.group(1)), "exitcode": int(code.group(1)),
                        "pid": int(code.group(2)) if code.group(2) else None,
                        "message": msg.group(1).strip()[:300] if msg else ""})
    return out


def root_cause(log: str) -> dict[str, Any] | None:
    """torchrun's "Root Cause (first observed failure)"; None when the log holds no summary."""
    m = _ROOT.search(log)
    found = failures(m.group(1)) if m else []
    return found[0] if found else None


def _signal(exitcode: int) -> str:
    import signal

    try:
        return f"killed by signal {signal.Signals(-exitcode).name}"
    except ValueError:
        return f"killed by signal {-exitcode}"
