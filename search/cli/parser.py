"""The command line's parser: the top level, and a subparser per command whose name, help
and arguments its own module gives (:mod:`search.cli.run`, ...).

Defaults come from the API (the options table, the engine and trainer tables), so each is
declared once; ``--help`` lists the valid choices of every name.
"""

from __future__ import annotations

import argparse

from search import __version__
from search.cli import bench, leaderboard, listing, predict, report, run, tensorboard
from search.cli.arguments import Parser

# Every command's module, in the order --help lists them. Each has its NAME, HELP (and a
# DESCRIPTION where --help says more), add_arguments(parser), and command(args, argv),
# which runs it and returns the exit code.
GROUPS = (run, listing, leaderboard, predict, tensorboard, bench, report)
COMMANDS = tuple(group.NAME for group in GROUPS)
DEBUG_VARIABLE = "SEARCH_DEBUG"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="search",
        description="Tune Keras models with keras-tuner or Optuna; write leaderboards, "
        "TensorBoard logs and the best model. 'search TASK' (or 'python -m search TASK') "
        "is short for 'search run TASK'.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    # Taken out of the arguments before parsing (see search.cli.entry.main), so that it
    # may stand anywhere: listed here for --help.
    parser.add_argument(
        "--debug",
        action="store_true",
        help=f"show the traceback of an error (also: {DEBUG_VARIABLE}=1); exit codes: 0 done, "
        "1 stopped (the environment failed: disk, storage, a damaged file; or the search "
        "stopped itself), 2 bad input, 130 Ctrl-C",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for group in GROUPS:
        description = getattr(group, "DESCRIPTION", None)
        command = commands.add_parser(group.NAME, help=group.HELP, description=description)
        group.add_arguments(command)
        command.set_defaults(handler=group.command)
    return parser
