"""`resnet-bench` command line: thin. One module per command (``add_parser`` + ``run``), shared
flags in bench.cli.common_args. Bad input: one line on stderr, exit code 2; an OS error (a path
that cannot be read or written: permission, a read-only or full disk) is bad input too, one
line naming the path; an internal error: one line, exit 1 (``--debug`` for the traceback).
Every message is escaped for the terminal (bench.escape.terminal). A reader that closes the
pipe early (``report ... | head``) ends the command as it ends standard tools: quietly, by
SIGPIPE."""

from __future__ import annotations

import contextlib
import os
import sys
import traceback

from bench import escape
from bench.cli import bisect, check, ci, compare, db, history, list as list_cmd, profile, report, run, validate
from bench.cli.common_args import Parser
from bench.errors import UserError, one_line

EXIT_USAGE = 2
COMMANDS = (list_cmd, profile, run, report, compare, check, validate, db, history, bisect, ci)


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
            raise UserError(one_line(e).partition(": ")[2]) from None


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
        _error(f"resnet-bench: error: {' '.join(str(e).split())}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _error("resnet-bench: interrupted")
        return 130
    except BrokenPipeError:
        return _closed_pipe()
    except OSError as e:  # a path we could not read or write: the user's to fix
        from bench.results.files import os_error

        if debug:
            traceback.print_exc()
        _error(f"resnet-bench: error: {os_error(e)}")
        return EXIT_USAGE
    except Exception as e:  # internal error: one line unless --debug
        if debug:
            traceback.print_exc()
        _error(f"resnet-bench: internal error: {one_line(e, 300)} (rerun with --debug for the traceback)")
        return 1


def _error(text: str) -> None:
    try:
        print(escape.terminal(text), file=sys.stderr)
    except (BrokenPipeError, OSError):
        pass


def _closed_pipe() -> int:
    """Whoever read our stdout closed it: go quietly, as `cat` does (killed by SIGPIPE, exit
    status 141 to a shell); where there is no SIGPIPE, exit 141."""
    import signal

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error while Python flushes stdout
    except (OSError, ValueError):
        pass
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGPIPE)
    return 128 + 13
