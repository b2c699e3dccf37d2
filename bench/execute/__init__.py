"""Executors: where cases run. ``local`` (default): a fresh worker process per model group;
``inline``: this process; ``ray``: each group as a task on a Ray cluster (optional: Ray). Add one = a module with a bench.execute.base.Executor subclass and a
``register_executor`` line below."""

from __future__ import annotations

from collections.abc import Callable

from bench.execute.base import Events, Executor, RunSettings

_EXECUTORS: dict[str, Callable[..., Executor]] = {}


def register_executor(name: str, factory: Callable[..., Executor]) -> None:
    """Make `factory(**options) -> Executor` available as ``--executor NAME``."""
    if name in _EXECUTORS:
        raise ValueError(f"executor {name!r} is already registered")
    _EXECUTORS[name] = factory


def executor_names() -> tuple[str, ...]:
    return tuple(_EXECUTORS)


def get_executor(name: str, **options) -> Executor:
    """A new executor by name; unknown names: ValueError listing the valid ones."""
    try:
        factory = _EXECUTORS[name]
    except KeyError:
        raise ValueError(f"unknown executor {name!r}; valid: {', '.join(_EXECUTORS)}") from None
    return factory(**options)


def _local(**options) -> Executor:
    from bench.execute.local import LocalExecutor

    return LocalExecutor(**options)


def _inline(**options) -> Executor:
    from bench.execute.inline import InlineExecutor

    return InlineExecutor(**options)


def _ray(**options) -> Executor:
    from bench.execute.ray_executor import RayExecutor

    return RayExecutor(**options)


register_executor("local", _local)
register_executor("inline", _inline)
register_executor("ray", _ray)

__all__ = ["Events", "Executor", "RunSettings", "executor_names", "get_executor", "register_executor"]
