"""The largest batch that fits: a bounded search over one case's batch size
(``resnet-bench run --find-max-batch``), and the batch ladder measured up to it.

:func:`search` doubles the batch from ``start`` while probes fit, up to ``max_batch``; after the
first batch that does not fit it bisects between the largest batch that fitted and the smallest
that did not, until they are within ``resolution`` (relative to the one that fitted, at least 1
image) or ``max_probes`` probes are spent. Every probe is kept and handed to ``log``.

A probe is a callable ``(batch, earlier probes) -> Probe``: it decides what fitting means (the
case runner: a few steps run without running out of memory and within a memory cap; a
batch whose predicted memory, :func:`predict_mb`, exceeds the cap is refused without running).
Pure logic, no torch: tests drive it with planted probes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

STOPS = ("bracketed", "max-batch", "probes")


@dataclass(frozen=True)
class Probe:
    batch: int
    fits: bool
    why: str = ""  # for a batch that does not fit: what stopped it (OOM phase and error, the cap)
    peak_mb: float | None = None  # peak memory of the probe's steps, MiB (bench.core.devices.peak_memory_mb)
    seconds: float = 0.0  # wall time of the probe
    ran: bool = True  # False: refused before running (the memory estimate or the cap's prediction)
    base_mb: float | None = None  # memory in use when the probe started (same counter as peak_mb), MiB

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SearchResult:
    max_batch: int | None  # the largest batch that fitted; None when not even `start` did
    fail_batch: int | None  # the smallest batch found not to fit; None when none failed
    stop: str  # one of STOPS: bracketed (max and fail within resolution), max-batch (the bound fits), probes
    probes: tuple[Probe, ...]


def search(probe: Callable[[int, tuple[Probe, ...]], Probe], *, max_batch: int, start: int = 1,
           max_probes: int = 24, resolution: float = 0.05,
           log: Callable[[Probe], None] | None = None) -> SearchResult:
    """Search the largest batch in ``[1, max_batch]`` for which ``probe`` fits (see the module)."""
    if start < 1 or max_batch < 1 or max_probes < 1:
        raise ValueError("search: start, max_batch and max_probes must be >= 1")
    probes: list[Probe] = []

    def fits(batch: int) -> bool:
        p = probe(batch, tuple(probes))
        probes.append(p)
        if log is not None:
            log(p)
        return p.fits

    lo, hi, stop = 0, None, "probes"
    b = min(start, max_batch)
    while len(probes) < max_probes:
        if not fits(b):
            hi = b
            break
        lo = b
        if b >= max_batch:
            stop = "max-batch"
            break
        b = min(2 * b, max_batch)
    if hi is not None:
        while hi - lo > max(1, int(lo * resolution)):
            if len(probes) >= max_probes:
                break
            mid = (lo + hi) // 2
            if fits(mid):
                lo = mid
            else:
                hi = mid
        else:
            stop = "bracketed"
    return SearchResult(lo or None, hi, stop, tuple(probes))


def predict_mb(probes: Sequence[Probe], batch: int) -> float | None:
    """Peak memory a probe at `batch` will reach, MiB, extrapolated from the probes that ran and
    fitted: a line through the two largest of them (memory grows linearly with the batch on
    top of a fixed part: weights, workspace, the interpreter); from one probe, what it added to
    the memory in use when it started (``base_mb``, else 0) scaled with the batch. None without
    such a probe."""
    fitted = {p.batch: p for p in probes if p.ran and p.fits and p.peak_mb is not None}
    known = sorted((b, p.peak_mb) for b, p in fitted.items())
    if not known:
        return None
    b2, m2 = known[-1]
    if len(known) == 1:
        base = fitted[b2].base_mb or 0.0
        return base + (m2 - base) * batch / b2
    b1, m1 = known[-2]
    slope = (m2 - m1) / (b2 - b1)
    if slope <= 0:
        slope = m2 / b2
    return m2 + slope * (batch - b2)


def ladder(max_batch: int | None) -> tuple[int, ...]:
    """The batches a sweep measures up to `max_batch`: the powers of two below it and it
    (``ladder(96) == (1, 2, 4, 8, 16, 32, 64, 96)``); (1,) when nothing fitted, so the row
    says so."""
    if not max_batch:
        return (1,)
    out, b = [], 1
    while b < max_batch:
        out.append(b)
        b *= 2
    return tuple(out + [max_batch])
