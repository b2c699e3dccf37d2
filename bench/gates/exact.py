"""The exact gate: params, MACs, FLOPs and activations of every registered variant at its natural
input size (224 px; 32 px for the CIFAR variants)
against a committed table (``results/reference_counts.csv``). Any difference, a variant added
or removed included, is one line; `update_table` rewrites the table deliberately.

How it stays fast and exact: the table's numbers are fvcore's and FlopCounterMode's real
counts (bench.core.profile, eager fp32 on CPU, batch 1), which take a real forward per variant.
The check instead builds each model on the **meta device** (no memory, no arithmetic) and runs
one forward under two dispatch modes at once: ``FlopCounterMode`` (its FLOP count depends on
shapes only, so it is identical on meta and CPU) and a recorder that hashes every aten call with
its argument shapes, dtypes and non-tensor arguments (strides, paddings, groups, eps...) into
``trace_sha256``. ``params`` is recounted directly. fvcore's counts are pure functions of the
traced operators and their shapes, so an unchanged trace means unchanged fvcore counts; a
variant whose trace changed (or that is new) is re-profiled with fvcore and all its values
compared. A trace that changed while every count stayed equal (a new torch naming an op
differently, say) passes with a note.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import UserError
from bench.results.files import atomic_write

REPO = Path(__file__).resolve().parents[2]
REFERENCE_TABLE = REPO / "results" / "reference_counts.csv"
EXACT_IMAGE_SIZE = None  # None: each variant at its natural size (224 px; 32 for the CIFAR variants)
# Table columns: the counts (units in bench.core.profile's docstring), then provenance.
COUNT_COLUMNS = ("params", "macs", "flops", "macs_all", "activations", "flop_counter_flops")
FAST_COLUMNS = ("params", "flop_counter_flops")  # recounted on the meta device every check
TABLE_COLUMNS = ("model", "image_size") + COUNT_COLUMNS + ("trace_sha256",)


def _arg_signature(value: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return ("tensor", tuple(value.shape), str(value.dtype))
    if isinstance(value, (list, tuple)):
        return tuple(_arg_signature(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), _arg_signature(v)) for k, v in value.items()))
    if isinstance(value, float):
        return float.hex(value)
    return repr(value)


def _size(name: str, image_size: int | None) -> int:
    from bench.core.case import natural_size

    return image_size if image_size is not None else natural_size(name)


def fast_counts(name: str, image_size: int | None = EXACT_IMAGE_SIZE) -> dict[str, Any]:
    """params, FlopCounterMode FLOPs and the operator-trace hash of `name`, on the meta device
    (eval mode, no_grad, batch 1), at `image_size` (default: the variant's natural size)."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import FlopCounterMode

    import resnet_impl

    image_size = _size(name, image_size)

    class _Recorder(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.sha = hashlib.sha256()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            sig = (str(func), _arg_signature(args), _arg_signature(kwargs or {}), _arg_signature(out))
            self.sha.update(repr(sig).encode())
            return out

    with torch.device("meta"):
        model = resnet_impl.create_model(name)
    model.eval()
    params = sum(p.numel() for p in model.parameters())
    first_conv = next((m for m in model.modules() if isinstance(m, torch.nn.Conv2d)), None)
    channels = first_conv.in_channels if first_conv is not None else 3
    x = torch.zeros(1, channels, image_size, image_size, device="meta")
    rec = _Recorder()
    with torch.no_grad(), FlopCounterMode(display=False) as counter, rec:
        model(x)
    return {"model": name, "image_size": image_size, "params": int(params),
            "flop_counter_flops": int(counter.get_total_flops()), "trace_sha256": rec.sha.hexdigest()}


def full_counts(name: str, image_size: int | None = EXACT_IMAGE_SIZE) -> dict[str, Any]:
    """Every table column: fvcore/FlopCounterMode counts from bench.profile (a real CPU
    forward) plus the meta-device trace hash. The meta FLOP count must equal the CPU one."""
    from bench.core.profile import profile_name

    image_size = _size(name, image_size)
    fast = fast_counts(name, image_size)
    prof = profile_name(name, image_size).as_row()
    if prof["params"] != fast["params"] or prof["flop_counter_flops"] != fast["flop_counter_flops"]:
        raise RuntimeError(f"{name}: meta-device counts {fast} differ from the CPU profile's; "
                           "the fast exact check cannot be trusted for this model")
    row = {k: int(prof[k]) for k in COUNT_COLUMNS}
    return {"model": name, "image_size": image_size, **row, "trace_sha256": fast["trace_sha256"]}


def read_table(path: Path) -> dict[str, dict[str, Any]]:
    """The reference table as {model: row}; a missing or malformed file is a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no reference table at {path}; create it with: resnet-bench check --exact --update")
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(line for line in f if not line.startswith("#"))
            missing = [c for c in TABLE_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise UserError(f"{path} lacks column(s) {', '.join(missing)}; regenerate it with "
                                "resnet-bench check --exact --update")
            table = {}
            for i, r in enumerate(reader, start=2):
                try:
                    row = {"model": r["model"], "trace_sha256": r["trace_sha256"],
                           "image_size": int(r["image_size"]), **{c: int(r[c]) for c in COUNT_COLUMNS}}
                except (TypeError, ValueError):
                    raise UserError(f"{path}: line {i} has a non-integer count; regenerate the table "
                                    "with resnet-bench check --exact --update") from None
                table[row["model"]] = row
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"cannot read reference table {path}: {e}") from None
    return table


def write_table(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    import torch

    try:
        import fvcore
        fv = getattr(fvcore, "__version__", "?")
    except ImportError:  # pragma: no cover
        fv = "?"
    buf = io.StringIO()
    buf.write("# Reference counts per variant, batch 1 (see bench/core/profile.py for units): written by\n"
              "# `resnet-bench check --exact --update`, checked by `resnet-bench check --exact`.\n"
              f"# Counted with torch {torch.__version__}, fvcore {fv}.\n")
    w = csv.DictWriter(buf, fieldnames=list(TABLE_COLUMNS), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: r[c] for c in TABLE_COLUMNS})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, buf.getvalue())


def _fmt_change(old: int, new: int) -> str:
    d = new - old
    rel = f", {d / old:+.3%}" if old else ""
    return f"{old:,} -> {new:,} ({d:+,}{rel})"


@dataclass
class ExactResult:
    lines: list[str]  # one per difference
    notes: list[str]  # informational (trace changed, counts equal)
    checked: int
    recounted: list[str]

    @property
    def ok(self) -> bool:
        return not self.lines


def check_exact(table: dict[str, dict], names: Sequence[str], *, full: bool = False,
                complete: bool = True, image_size: int | None = EXACT_IMAGE_SIZE,
                progress: Callable[[str], None] | None = None) -> ExactResult:
    """Compare the registry's counts for `names` with `table`. `complete`: `names` is the whole
    registry, so table rows without a registered variant are reported as removed."""
    lines: list[str] = []
    notes: list[str] = []
    recounted = []
    for name in names:
        ref = table.get(name)
        cur = fast_counts(name, image_size)
        if full or ref is None or cur["trace_sha256"] != ref["trace_sha256"]:
            if progress:
                progress(f"profiling {name} with fvcore ...")
            cur = full_counts(name, image_size)
            recounted.append(name)
            columns = COUNT_COLUMNS
        else:
            columns = FAST_COLUMNS
        if ref is None:
            vals = ", ".join(f"{c} {cur[c]:,}" for c in COUNT_COLUMNS)
            lines.append(f"{name}: added (not in the table): {vals}")
            continue
        diffs = [f"{c} {_fmt_change(ref[c], cur[c])}" for c in columns if ref[c] != cur[c]]
        if diffs:
            lines.append(f"{name}: " + "; ".join(diffs))
        elif cur["trace_sha256"] != ref["trace_sha256"]:
            notes.append(f"{name}: operator trace changed but every count is equal (recounted with fvcore); "
                         "run `resnet-bench check --exact --update` to refresh its trace_sha256")
    if complete:
        for name in sorted(set(table) - set(names)):
            vals = ", ".join(f"{c} {table[name][c]:,}" for c in COUNT_COLUMNS)
            lines.append(f"{name}: removed (in the table, not registered): {vals}")
    return ExactResult(lines, notes, len(names), recounted)


def update_table(path: Path, names: Sequence[str], *, replace_all: bool,
                 log: Callable[[str], None] | None = None) -> tuple[int, list[str] | None]:
    """Recount `names` with fvcore and rewrite the table at `path` (with `replace_all`, the
    table holds exactly `names`; else the other rows are kept). Returns the number of rows
    written and the changes against the old table (None when there was none)."""
    import resnet_impl

    old: dict[str, dict] = {}
    if Path(path).is_file():
        try:
            old = read_table(path)
        except UserError:
            old = {}
    kept = {} if replace_all else {k: v for k, v in old.items() if k not in names}
    new = {}
    for n in names:
        if log:
            log(f"profiling {n} ...")
        new[n] = full_counts(n)
    rows = sorted({**kept, **new}.values(), key=lambda r: resnet_impl.registry._natural_key(r["model"]))
    write_table(path, rows)
    return len(rows), (check_exact(old, names, complete=False).lines if old else None)
