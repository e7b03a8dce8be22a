"""``search report TASK``: one stored study's plots and HTML page, in its report/ folder."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from search.cli.arguments import add_best_study, add_out

NAME = "report"
HELP = "render one study as PNG plots and a self-contained HTML page"
DESCRIPTION = (
    "Render one study (either engine): optimisation history, parameter "
    "importances, parallel coordinates and slice plots as PNG files, and report.html "
    "with the images embedded and the leaderboard, in the study's report/ folder."
)


def add_arguments(parser: Any) -> None:
    parser.add_argument("task", metavar="TASK", help="the study's task")
    add_best_study(parser)
    add_out(parser)


def command(args: argparse.Namespace, argv: list[str]) -> int:
    # Loaded here: the plots need pandas and matplotlib.
    from search.study.stored import find_study, render_report

    folder = find_study(Path(args.out), args.task, args.study)
    written = render_report(folder)
    print(f"report of {args.task}/{folder.name}:")
    for path in written:
        print(f"  {path}")
    return 0
