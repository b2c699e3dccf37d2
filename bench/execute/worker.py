"""The isolated measuring process of the local executor: ``python -m bench.execute.worker``
reads {"cases", "settings"} as JSON on stdin and writes one JSON line per event on its
original stdout: {"event": "env", "env"} first (bench.core.env.collect of this process: host,
device, versions, threads), {"event": "start", "key"} before a case and {"event": "row", "key",
"row"} after it. Anything else the process prints (libraries, compilers) is sent to stderr so it
cannot corrupt the protocol."""

from __future__ import annotations

import json
import os
import sys


def main() -> int:
    from bench.execute.procs import die_with_parent

    die_with_parent()
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
    cases = [Case.from_dict(d) for d in payload["cases"]]
    if cases:
        proto.write(json.dumps({"event": "env", "env": json_safe(_environment(cases[0].device, settings))}) + "\n")
    for kind, value in events(runner, cases, settings):
        if kind == "start":
            proto.write(json.dumps({"event": "start", "key": value.key()}) + "\n")
        else:
            proto.write(json.dumps({"event": "row", "key": Case.from_row(value).key(), "row": json_safe(value)}) + "\n")
    proto.close()
    return 0


def events(runner, cases: list, settings):
    """The cases' ("start", case) and ("row", row) events: side by side when the settings ask
    for it and the device allows it (bench.execute.case_runner.CaseRunner.run_interleaved),
    else one case after the other."""
    from bench.core import devices

    if (settings.interleave and not settings.search and len(cases) > 1
            and all(devices.backend(c.device).interleaves for c in cases)):
        yield from runner.run_interleaved(cases)
        return
    for case in cases:
        yield "start", case
        yield "row", runner.run(case)


def _environment(device: str, settings) -> dict:
    """This process's environment (bench.core.env.collect); a device that cannot be described
    leaves the host and the reason, and its cases report the error themselves."""
    import platform

    import torch

    from bench.core import env
    from bench.errors import one_line

    try:
        out = env.collect(device, settings.threads or torch.get_num_threads())
        out["threads_rule"] = settings.threads_rule
        return out
    except Exception as exc:
        return {"host": platform.node(), "env_error": one_line(exc)}


if __name__ == "__main__":
    code = main()
    # Every row is written and flushed; skip the interpreter's teardown of torch and inductor
    # (about 1.5 s per process, paid once per model and round).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
