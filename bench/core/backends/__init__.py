"""Backends: the runtime a case is measured in (bench.core.backends.base: the seam).

- ``pytorch`` (default): eager, or ``torch.compile`` (inductor) per the case's compile mode;
  int8 through PT2E quantization (torchao) and inductor;
- ``aoti``: ``torch.export`` then AOTInductor (a compiled package loaded back); int8 likewise;
- ``onnxruntime``: ONNX export, an ``InferenceSession`` (CPU, CUDA or TensorRT execution
  provider where that build is installed); int8 as static QDQ quantization;
- ``openvino``: converted from the torch model, compiled for the CPU; int8 with NNCF;
- ``tensorrt``: Torch-TensorRT on a GPU, where installed.

Add a backend = a module with a :class:`Backend` subclass and one :func:`register_backend` line
below; its pip extra in pyproject.toml.
"""

from __future__ import annotations

from collections.abc import Callable

from bench.core.backends.base import Backend, Built

DEFAULT = "pytorch"
_BACKENDS: dict[str, Callable[[], Backend]] = {}
_LIVE: dict[str, Backend] = {}


def register_backend(name: str, factory: Callable[[], Backend]) -> None:
    if name in _BACKENDS:
        raise ValueError(f"backend {name!r} is already registered")
    _BACKENDS[name] = factory


def unregister_backend(name: str) -> None:
    _BACKENDS.pop(name, None)
    _LIVE.pop(name, None)


def names() -> tuple[str, ...]:
    return tuple(_BACKENDS)


def get(name: str) -> Backend:
    """The backend `name`; unknown: ValueError listing the valid ones."""
    if name not in _LIVE:
        try:
            _LIVE[name] = _BACKENDS[name]()
        except KeyError:
            raise ValueError(f"unknown backend {name!r}; valid: {', '.join(_BACKENDS)}") from None
    return _LIVE[name]


def _lazy(module: str, cls: str) -> Callable[[], Backend]:
    def make() -> Backend:
        import importlib

        return getattr(importlib.import_module(f"bench.core.backends.{module}"), cls)()
    return make


register_backend("pytorch", _lazy("pytorch", "PyTorch"))
register_backend("aoti", _lazy("aoti", "AOTInductor"))
register_backend("onnxruntime", _lazy("onnxruntime_backend", "OnnxRuntime"))
register_backend("openvino", _lazy("openvino_backend", "OpenVino"))
register_backend("tensorrt", _lazy("tensorrt_backend", "TensorRT"))

__all__ = ["Backend", "Built", "DEFAULT", "get", "names", "register_backend", "unregister_backend"]
