"""The inline executor: every case in this process, one after another (``--no-isolate``).

Fast to start and easy to debug, but a crash, a hang or fragmented memory takes the whole
sweep with it, and a case timeout cannot be enforced."""

from __future__ import annotations

from collections.abc import Sequence

from bench.core.case import Case
from bench.execute.base import Events, Executor, RunSettings
from bench.execute.case_runner import CaseRunner


class InlineExecutor(Executor):
    name = "inline"

    def run(self, cases: Sequence[Case], settings: RunSettings, events: Events) -> None:
        runner = CaseRunner(settings)
        for case in cases:
            events.started(case)
            events.row(runner.run(case))
