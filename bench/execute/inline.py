"""The inline executor: every case in this process, one after another (``--no-isolate``).

Fast to start and easy to debug, but a crash, a hang or fragmented memory takes the whole
sweep with it, and a case timeout cannot be enforced. A data-parallel case (``ddp``) cannot run
in one process: it is launched with torch.distributed.run as everywhere (bench.execute.ddp)."""

from __future__ import annotations

from collections.abc import Sequence

from bench.core.case import Case
from bench.execute.base import Events, Executor, RunSettings
from bench.execute.case_runner import CaseRunner


class InlineExecutor(Executor):
    name = "inline"

    def run(self, cases: Sequence[Case], settings: RunSettings, events: Events) -> None:
        from bench.core.case import group_by_model
        from bench.execute import worker

        runner = CaseRunner(settings)
        for group in group_by_model(cases):
            plain = [c for c in group if not c.ddp]
            for kind, value in worker.events(runner, plain, settings):  # as a worker process would
                if kind == "start":
                    events.started(value)
                else:
                    events.row(value)
            for case in (c for c in group if c.ddp):
                from bench.execute import ddp
                from bench.execute.local import stamped

                events.started(case)
                row, env = ddp.run_case(case, settings)
                events.row(stamped(row, env))  # the ranks' environment (threads per rank)
