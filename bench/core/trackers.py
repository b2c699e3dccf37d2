"""Trackers: instruments read around a case's timed samples (never inside them).

A tracker's :meth:`Tracker.start` runs before the model is placed on the device and its
:meth:`Tracker.stop` after the last sample; it returns the row's columns it measured. Add one
= a subclass here and an entry in :data:`TRACKERS` (its columns go in bench.results.columns).
"""

from __future__ import annotations

from typing import Any

from bench.core import devices
from bench.core.case import Case


class Tracker:
    def start(self, case: Case) -> None:
        """Called before the case's model is copied to the device."""

    def stop(self, case: Case) -> dict[str, Any]:
        """Called after the last sample; the columns it measured."""
        return {}


class PeakMemory(Tracker):
    """``peak_mem_mb``: the device's peak memory during the case (bench.core.devices)."""

    def start(self, case: Case) -> None:
        devices.reset_peak_memory(case.device)

    def stop(self, case: Case) -> dict[str, Any]:
        return {"peak_mem_mb": devices.peak_memory_mb(case.device)}


#: Tracker classes instantiated for every measured case, in this order.
TRACKERS: list[type[Tracker]] = [PeakMemory]
