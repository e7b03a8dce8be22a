"""The console entry: parse the command line, run the command, turn its errors into exit codes.

User errors (:class:`search.SearchError`) end here as one line on stderr and exit code 2;
failures of the environment (:func:`search.errors.environment_fault`: a full disk, a lost
permission, an unreachable storage, a damaged file) as one line and exit code 1. ``--debug``
(or ``SEARCH_DEBUG=1``) shows their tracebacks.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from search.cli.parser import COMMANDS, DEBUG_VARIABLE, build_parser
from search.errors import SearchError, environment_fault

# What a command needs beyond its parser (pandas for tables, SciPy for statistics, Keras
# for a study's run) is imported inside it: `search list`, `--help` and a refused option do
# not wait seconds for libraries they never use.


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args_list or os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")
    args_list = [arg for arg in args_list if arg != "--debug"]
    if args_list and args_list[0] not in COMMANDS and not args_list[0].startswith("-"):
        args_list.insert(0, "run")
    parser = build_parser()
    args = parser.parse_args(args_list)
    _show_notes(debug)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        code: int = args.handler(args, args_list)
        return code
    except SearchError as error:
        if debug:
            raise
        print(f"search: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # `search list | head`: the reader has gone; what is left to print goes nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as error:
        fault = environment_fault(error)
        if fault is None or debug:
            raise
        print(f"search: error: {fault}", file=sys.stderr)
        return 1


def console() -> NoReturn:
    """``python -m search`` and the ``search`` script: :func:`main`, then exit with its code."""
    code = main()
    if code == 130:
        # A Ctrl-C can land inside XLA's or TensorFlow's native code and leave its state
        # torn; the interpreter's teardown then runs their destructors over it and may
        # crash (a SIGSEGV seen once in CI on the JAX backend, after the interrupt was
        # handled). By now every file the run keeps is written and every child process has
        # ended, so the process leaves without that teardown.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    raise SystemExit(code)


def _show_notes(debug: bool) -> None:
    """What the library recovered from (a torn journal record, a reconnection) or wants a
    user to know: one line each on stderr; with ``debug``, also the traceback of each
    failed trial."""
    log = logging.getLogger("search")
    if not any(isinstance(handler, _Notes) for handler in log.handlers):
        log.addHandler(_Notes())
        log.propagate = False
    log.setLevel(logging.DEBUG if debug else logging.INFO)


class _Notes(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        # sys.stderr when the note is written, not when the CLI started (tests swap it).
        print(f"search: note: {record.getMessage()}", file=sys.stderr)
        if record.exc_info:
            print(logging.Formatter().formatException(record.exc_info), file=sys.stderr)
