"""`resnet-bench list`: the registry, one line per variant.

Fast: this command imports no torch. The specs are pure data and ``count_params`` is
``ResNetSpec.num_params``, a closed form; only a plugin's custom factory builds its model (on
the meta device, importing torch) to be counted. Keep heavy imports (torch, pandas,
rich.progress) out of this path."""

from __future__ import annotations

import json

from bench.errors import UserError


def add_parser(sub) -> None:
    p = sub.add_parser("list", help="show the registered variants")
    p.add_argument("pattern", nargs="*", help="fnmatch patterns (default: all)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=run)


def run(args) -> int:
    import resnet_impl
    from bench.report import tables, terminal

    names = resnet_impl.list_models(args.pattern or "*")
    if not names:
        raise UserError(f"no registered model matches {' '.join(args.pattern)!r}; see `resnet-bench list`")
    rows = []
    for n in names:
        s = resnet_impl.get_spec(n)
        rows.append({
            "name": n, "block": s.block, "depth": s.depth,
            "stride": f"{s.version or '-'} ({s.stride_at})" if s.block == "bottleneck" else "-",
            "stem": f"{s.stem} {'-'.join(map(str, s.stem_channels))}", "shortcut": s.shortcut,
            "groups_x_width": s.width_label, "params": resnet_impl.count_params(n),  # closed form
            "description": s.description,
        })
    if args.format == "json":
        print(json.dumps(rows, indent=1))
    else:
        terminal.show([tables.registry(rows)])
    return 0
