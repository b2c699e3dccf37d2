"""Load local checkpoint files into a model, strictly. Nothing here ever downloads."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

_SHOW = 3  # keys named per category in an error message


class CheckpointError(ValueError):
    """A checkpoint could not be loaded: missing/unreadable file, not a state dict, or keys or
    shapes that do not match the model. The message is one line and names the first keys."""

    def __init__(
        self,
        message: str,
        *,
        missing: list[str] | None = None,
        unexpected: list[str] | None = None,
        mismatched: list[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.missing = missing or []
        self.unexpected = unexpected or []
        self.mismatched = mismatched or []


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _some(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOW])
    return shown + (f", ... (+{len(keys) - _SHOW} more)" if len(keys) > _SHOW else "")


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a state dict from a local file (``torch.load(..., weights_only=True)`` on CPU).

    Accepts a plain state dict or a dict holding one under ``"state_dict"`` or ``"model"``.
    Raises :class:`CheckpointError` otherwise.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(
            f"checkpoint file not found: {str(p)!r} (weights= takes a local .pth path; "
            "resnet_impl never downloads weights)"
        )
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # garbage, truncated, or a pickle with non-tensor objects
        raise CheckpointError(f"cannot read checkpoint {str(p)!r}: {_first_line(exc)}") from exc
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(
            f"checkpoint {str(p)!r} is not a state dict (got {type(obj).__name__}"
            f"{' (empty)' if isinstance(obj, Mapping) else ''}); expected a dict of "
            "name -> tensor, or a dict with a 'state_dict' or 'model' entry"
        )
    bad = [str(k) for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(
            f"checkpoint {str(p)!r} is not a state dict: non-tensor entries {_some(bad)}"
        )
    return dict(obj)


def load_checkpoint(model: nn.Module, path: str | os.PathLike[str]) -> None:
    """Load ``path`` into ``model`` with strict key and shape checking.

    Raises :class:`CheckpointError` with a one-line message naming the first missing,
    unexpected and shape-mismatched keys.
    """
    state = read_state_dict(path)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k} {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s): {_some(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {_some(unexpected)}")
        if mismatched:
            parts.append(f"{len(mismatched)} shape mismatch(es): {_some(mismatched)}")
        name = getattr(getattr(model, "spec", None), "name", type(model).__name__)
        hint = ""
        if mismatched and all(m.startswith("fc.") for m in mismatched):
            hint = " (different num_classes? pass num_classes= to match the checkpoint)"
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not match model {name!r}: " + "; ".join(parts) + hint,
            missing=missing,
            unexpected=unexpected,
            mismatched=[m.split(" ", 1)[0] for m in mismatched],
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # not expected after the checks above; keep the contract
        raise CheckpointError(f"cannot load checkpoint {str(path)!r}: {_first_line(exc)}") from exc
