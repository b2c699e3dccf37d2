"""Child processes of the executors: how a measuring process is started (safe path, this
checkout's code first), how it is ended with everything it started, and how its death is
told in one line. No torch here: executors import this in processes that never measure."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

#: The checkout (or installation) this code runs from: its bench/ and resnet_impl/ measure.
OWN_ROOT = Path(__file__).resolve().parents[2]


def python_command(module: str) -> list[str]:
    """``python -P -m <module>``: -P (safe path) keeps the current directory off sys.path, so a
    json.py or torch.py where the user stands cannot run inside the measuring process."""
    return [sys.executable, "-P", "-m", module]


def python_env(code_root: str | Path | None = None, extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment with the code root first on PYTHONPATH (the user's PYTHONPATH
    after it), safe-path mode for whatever the child starts, and `extra` on top."""
    env = dict(os.environ)
    root = str(code_root or OWN_ROOT)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONSAFEPATH"] = "1"
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(extra or {})
    return env


def die_with_parent() -> None:
    """Linux: have the kernel SIGKILL this process when its parent dies (e.g. kill -9 of the
    sweep), so no orphan keeps measuring and loading the machine."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() == 1:  # the parent died before prctl took effect
            os._exit(1)
    except (OSError, AttributeError):
        pass


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL `proc`, its process group and every descendant (found before the kill: torchrun
    starts its ranks in sessions of their own), then reap `proc`."""
    try:
        import psutil

        kids = psutil.Process(proc.pid).children(recursive=True)
    except Exception:  # psutil missing, or the process is already gone
        kids = []
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for k in kids:
        try:
            k.kill()
        except Exception:
            pass
    proc.wait()


def death_message(rc: int, stderr_tail: str, what: str = "worker process") -> str:
    """``worker process killed by signal SIGSEGV; last stderr line: ...``."""
    if rc < 0:
        try:
            how = f"killed by signal {signal.Signals(-rc).name}"
        except ValueError:
            how = f"killed by signal {-rc}"
    else:
        how = f"exited with code {rc}"
    last = next((ln for ln in reversed(stderr_tail.strip().splitlines()) if ln.strip()), "")
    return f"{what} {how}" + (f"; last stderr line: {last.strip()[:300]}" if last else "")


def read_tail(f, limit: int = 4000) -> str:
    """The last `limit` bytes of a binary file object (a child's stderr), as text."""
    f.seek(0, os.SEEK_END)
    f.seek(max(0, f.tell() - limit))
    return f.read().decode(errors="replace")
