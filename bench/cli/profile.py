"""`resnet-bench profile`: params, MACs, FLOPs and activations, per stage."""

from __future__ import annotations

import json

from bench.cli.common_args import add_variant_flags, parse_overrides, parse_positive_ints, validate_variants


def add_parser(sub) -> None:
    p = sub.add_parser("profile", help="params, MACs/FLOPs and activations of models")
    p.add_argument("models", nargs="+", help="names or fnmatch patterns")
    p.add_argument("--image-size", help="input size in px (default: each model's natural size, 224; 32 for the "
                                        "CIFAR variants)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    add_variant_flags(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from bench.core.case import MIN_IMAGE_SIZE, check_sizes, expand_models, natural_size
    from bench.core.profile import profile_name
    from bench.report import tables, terminal

    names = expand_models(args.models)
    asked = parse_positive_ints(str(args.image_size), "image size", MIN_IMAGE_SIZE)[0] if args.image_size else None
    overrides = parse_overrides(args.overrides)
    validate_variants(names, overrides, None)
    if asked is not None:
        check_sizes(names, [asked], overrides)
    rows = []
    for n in names:
        size = asked or natural_size(n, overrides)
        row = profile_name(n, size, **overrides).as_row()
        row.update(model=n, image_size=size)
        rows.append(row)
    if args.format == "json":
        print(json.dumps(rows, indent=1, default=str))
    else:
        terminal.show(tables.profile(rows))
        bad = [r["model"] for r in rows if not r.get("counters_agree")]
        if bad:
            terminal.say(f"fvcore and FlopCounterMode disagree for: {', '.join(bad)}", "red")
    return 0
