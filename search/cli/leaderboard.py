"""``search leaderboard [TASK]``: the studies' table and each study's trials, printed."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from search.cli.arguments import add_out
from search.errors import SearchError
from search.layout import TRIAL_TABLE

NAME = "leaderboard"
HELP = "print the leaderboards as tables"

COLUMNS = [
    "task",
    "study",
    "trials",
    "complete",
    "pruned",
    "failed",
    "best_value",
    "test_metric",
    "test_value",
    "baseline",
    "baseline_value",
    "wall_seconds",
]


def add_arguments(parser: Any) -> None:
    parser.add_argument("task", metavar="TASK", nargs="?", help="only this task's studies")
    add_out(parser)
    parser.add_argument(
        "--storage",
        default=os.environ.get("SEARCH_STORAGE"),
        help="the optuna storage URL with its password, for studies whose recorded URL is "
        "masked (default: $SEARCH_STORAGE)",
    )


def command(args: argparse.Namespace, argv: list[str]) -> int:
    import contextlib

    import pandas as pd

    from search.results.leaderboard import study_table, write_study_table
    from search.study.stored import rebuild_all

    out = Path(args.out)
    for note in rebuild_all(out, args.task, args.storage):
        print(f"search: note: {note}", file=sys.stderr)
    # A read-only results root: the tables are printed from study.json all the same.
    with contextlib.suppress(OSError):
        if out.is_dir():
            write_study_table(out)
    table = study_table(out)
    if args.task:
        table = table[table["task"] == args.task]
    if table.empty:
        raise SearchError(
            f"no finished studies under {str(out)!r}"
            + (f" for task {args.task!r}" if args.task else "")
        )
    pd.set_option("display.width", shutil.get_terminal_size().columns)
    print(table[COLUMNS].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    for _, row in table.iterrows():
        trials = pd.read_csv(out / row["task"] / row["study"] / TRIAL_TABLE)
        print(f"\n{row['task']}/{row['study']}:")
        print(
            trials.head(10)
            .drop(columns=["error"])
            .to_string(index=False, float_format=lambda v: f"{v:.4g}")
        )
    return 0
