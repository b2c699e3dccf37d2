"""`resnet-bench` command line: thin. One module per command (``add_parser`` + ``run``), shared
flags in bench.cli.common_args. Bad input: one line on stderr, exit code 2; an internal error:
one line, exit 1 (``--debug`` for the traceback)."""

from __future__ import annotations

import contextlib
import os
import sys
import traceback

from bench.cli import check, compare, list as list_cmd, profile, report, run, validate
from bench.cli.common_args import Parser
from bench.errors import UserError, one_line

EXIT_USAGE = 2
COMMANDS = (list_cmd, profile, run, report, compare, check, validate)


def build_parser() -> Parser:
    from bench import __version__

    parser = Parser(prog="resnet-bench", description="Profile and time ResNet-family variants.")
    parser.add_argument("--version", action="version", version=f"resnet-bench {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = parser.add_subparsers(dest="cmd", metavar="COMMAND", parser_class=Parser)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def load_plugins() -> None:
    """Import the RESNET_BENCH_PLUGINS modules now, so a broken plugin is one line (exit 2)
    before anything runs; whatever a plugin prints goes to stderr (stdout may hold JSON)."""
    if not os.environ.get("RESNET_BENCH_PLUGINS", "").strip():
        return
    import resnet_impl

    with contextlib.redirect_stdout(sys.stderr):
        try:
            resnet_impl.load_plugins()
        except ValueError as e:
            raise UserError(str(e)) from None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv or bool(os.environ.get("RESNET_BENCH_DEBUG"))
    try:
        load_plugins()
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "cmd", None):
            parser.print_help()
            return EXIT_USAGE
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"resnet-bench: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("resnet-bench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # internal error: one line unless --debug
        if debug:
            traceback.print_exc()
        print(f"resnet-bench: internal error: {one_line(e, 300)} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return 1
