"""torch's process-wide settings that a case changes (thread count, inductor's freezing),
restored after it, as torch.utils.benchmark's ``set_torch_threads`` does."""

from __future__ import annotations

import contextlib
import sys


@contextlib.contextmanager
def torch_settings(threads: int | None):
    """torch's thread count set to `threads` (when given) for the block, and it and inductor's
    ``freezing`` (set by bench.core.modes.prepare for a compiled case) restored after, as
    torch.utils.benchmark's ``set_torch_threads`` does. Inductor is not imported for it."""
    import torch

    before = torch.get_num_threads()
    config = sys.modules.get("torch._inductor.config")
    freezing = config.freezing if config is not None else None
    if threads and threads != before:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
        config = sys.modules.get("torch._inductor.config")
        if config is not None:
            config.freezing = bool(freezing) if freezing is not None else False
