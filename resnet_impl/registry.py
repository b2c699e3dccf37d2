"""A strict registry of named ``ResNetSpec``s: register, list, look up, build, count.

* ``register_model(spec, factory=None)`` refuses duplicate names.
* ``list_models(pattern, exclude)``: fnmatch filters, natural sort (resnet18 < resnet50 < resnet101).
* ``get_spec(name)``: unknown names fail with the closest registered names.
* ``create_model(name, weights=None, device=None, **overrides)``: caller overrides win.
* ``count_params(name_or_spec, **overrides)``: ``ResNetSpec.num_params`` (closed form, no torch)
  for the default factory; a custom factory's model is built on the meta device.

Importing this module does not import torch: listing, looking up and counting the built-in
variants stay instant (``resnet-bench list``); torch is imported by the functions that build.

Plugins: every module named in the env var ``RESNET_BENCH_PLUGINS`` (comma-separated,
importable names) is imported on the first registry access (and any module added to the
variable later on the next access); plugins call ``register_model``. This is how test-only
models reach subprocesses.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .spec import ResNetSpec

if TYPE_CHECKING:  # torch is imported only where a model is built
    import torch
    from torch import nn

PLUGINS_ENV = "RESNET_BENCH_PLUGINS"

Factory = Callable[[ResNetSpec], "nn.Module"]


@dataclass(frozen=True)
class _Entry:
    spec: ResNetSpec
    factory: Factory | None  # None: ResNet(spec)


_REGISTRY: dict[str, _Entry] = {}
_PLUGINS_SEEN: set[str] = set()  # imported, or being imported (guards re-entry from plugins)


def load_plugins() -> None:
    """Import the modules named in ``RESNET_BENCH_PLUGINS`` not imported yet (done on every
    registry access; call it to surface a broken plugin early). A plugin that fails to import,
    raises, or calls ``sys.exit`` is a ``ValueError`` naming it."""
    _load_plugins()


def _load_plugins() -> None:
    names = [m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(",") if m.strip()]
    for module in names:
        if module in _PLUGINS_SEEN:
            continue
        _PLUGINS_SEEN.add(module)
        try:
            importlib.import_module(module)
        except SystemExit as exc:
            _PLUGINS_SEEN.discard(module)
            raise ValueError(f"{PLUGINS_ENV}: plugin module {module!r} called sys.exit({exc.code!r}) "
                             "while being imported") from None
        except Exception as exc:
            _PLUGINS_SEEN.discard(module)  # fail again on the next access, not silently later
            raise ValueError(
                f"{PLUGINS_ENV}: cannot import plugin module {module!r}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc


def _register(spec: ResNetSpec, factory: Factory | None = None) -> ResNetSpec:
    if not isinstance(spec, ResNetSpec):
        raise TypeError(f"register_model expects a ResNetSpec, got {type(spec).__name__}")
    if factory is not None and not callable(factory):
        raise TypeError(f"factory for {spec.name!r} must be callable (spec) -> nn.Module")
    if spec.name in _REGISTRY:
        raise ValueError(
            f"model {spec.name!r} is already registered; names are unique "
            "(pick another name, or unregister_model() it first)"
        )
    _REGISTRY[spec.name] = _Entry(spec, factory)
    return spec


def register_model(spec: ResNetSpec, factory: Factory | None = None) -> ResNetSpec:
    """Register ``spec`` under ``spec.name``; returns the spec.

    ``factory(spec) -> nn.Module`` builds the model (default :func:`build`); it receives the
    spec with the caller's overrides applied. Raises ``ValueError`` if the name is taken.
    """
    _load_plugins()
    return _register(spec, factory)


def unregister_model(name: str) -> None:
    """Remove ``name`` from the registry (for tests and plugins). Unknown name -> ``ValueError``."""
    get_spec(name)
    del _REGISTRY[name]


def _natural_key(name: str) -> tuple[Any, ...]:
    # "resnet101" -> ("resnet", 101, ""): digits compare as numbers.
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


def _patterns(p: str | Sequence[str]) -> tuple[str, ...]:
    return (p,) if isinstance(p, str) else tuple(p)


def list_models(
    pattern: str | Sequence[str] = "*", exclude: str | Sequence[str] = ()
) -> list[str]:
    """Registered names matching any of ``pattern`` and none of ``exclude`` (fnmatch globs),
    in natural order (resnet18 < resnet34 < resnet50 < resnet101 < resnet152)."""
    _load_plugins()
    include, skip = _patterns(pattern), _patterns(exclude)
    names = [
        n
        for n in _REGISTRY
        if any(fnmatch.fnmatchcase(n, p) for p in include)
        and not any(fnmatch.fnmatchcase(n, p) for p in skip)
    ]
    return sorted(names, key=_natural_key)


def _entry(name: str) -> _Entry:
    _load_plugins()
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=3, cutoff=0.5)
        hint = f"; did you mean: {', '.join(close)}?" if close else ""
        raise ValueError(
            f"unknown model {name!r}{hint} ({len(_REGISTRY)} registered; see list_models())"
        ) from None


def get_spec(name: str) -> ResNetSpec:
    """The registered spec for ``name``. Unknown name -> ``ValueError`` naming up to 3 close names."""
    return _entry(name).spec


def build(spec: ResNetSpec) -> nn.Module:
    """The model class a spec describes: :class:`ResNetV2` when ``preact``, else :class:`ResNet`."""
    from .model import ResNet
    from .preact import ResNetV2

    return ResNetV2(spec) if spec.preact else ResNet(spec)


def _factory(spec: ResNetSpec) -> Factory | None:
    """The custom factory registered under ``spec.name``; None for the default (:func:`build`)."""
    entry = _REGISTRY.get(spec.name)
    factory = entry.factory if entry is not None else None
    return None if factory is build else factory


def create_model(
    name: str,
    /,
    *,
    weights: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None,
    **overrides: Any,
) -> nn.Module:
    """Build the registered model ``name`` with ``overrides`` applied to its spec.

    ``create_model("resnet101", stride_at="1x1", stem="deep")`` is a v1 ResNet-101 with a deep
    stem. ``name`` is positional-only, so ``name=`` is an override like any other field
    (the built model's ``spec.name``). ``weights`` is a local checkpoint path, loaded strictly (``CheckpointError`` on any
    problem); nothing is ever downloaded. ``device`` moves the built model there.
    """
    entry = _entry(name)
    spec = entry.spec.replace(**overrides)
    model = (entry.factory or build)(spec)
    if weights is not None:
        from .checkpoints import load_checkpoint

        load_checkpoint(model, weights)
    if device is not None:
        model = model.to(device)
    return model


def count_params(name_or_spec: str | ResNetSpec, /, **overrides: Any) -> int:
    """Number of parameters (not buffers) of a model, ``overrides`` applied.

    The default factory's models are counted in closed form (:attr:`ResNetSpec.num_params`:
    no torch, no model). A spec whose name is registered with a custom factory is built by
    that factory on the meta device (no memory, no init cost) and its parameters summed.
    """
    _load_plugins()
    spec = name_or_spec if isinstance(name_or_spec, ResNetSpec) else get_spec(name_or_spec)
    spec = spec.replace(**overrides)
    factory = _factory(spec)
    if factory is None:
        return spec.num_params
    import torch

    with torch.device("meta"):
        model = factory(spec)
    return sum(p.numel() for p in model.parameters())
