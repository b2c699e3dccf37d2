"""The isolated measuring process of the local executor: ``python -m bench.execute.worker``
reads {"cases", "settings"} as JSON on stdin and writes one JSON line per event on its
original stdout: {"event": "start", "key"} before a case and {"event": "row", "key", "row"}
after it. Anything else the process prints (libraries, compilers) is sent to stderr so it
cannot corrupt the protocol."""

from __future__ import annotations

import json
import os
import sys


def _die_with_parent() -> None:
    """Linux: have the kernel SIGKILL this worker when the sweep process dies (e.g. kill -9), so
    no orphan keeps measuring and loading the machine."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() == 1:  # the parent died before prctl took effect
            os._exit(1)
    except (OSError, AttributeError):
        pass


def main() -> int:
    _die_with_parent()
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray prints (C or Python) go to stderr
    sys.stdout = sys.stderr
    payload = json.load(sys.stdin)
    sys.path.extend(p for p in payload.get("plugin_paths", []) if p not in sys.path)

    from bench.core.case import Case
    from bench.execute.base import RunSettings
    from bench.execute.case_runner import CaseRunner
    from bench.results.files import json_safe

    settings = RunSettings.from_dict(payload["settings"])
    runner = CaseRunner(settings)
    for d in payload["cases"]:
        case = Case.from_dict(d)
        proto.write(json.dumps({"event": "start", "key": case.key()}) + "\n")
        row = runner.run(case)
        proto.write(json.dumps({"event": "row", "key": case.key(), "row": json_safe(row)}) + "\n")
    proto.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
