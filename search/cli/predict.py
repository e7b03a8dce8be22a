"""``search predict TASK --data FILE``: a stored study's best model's predictions, as CSV."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from search.cli.arguments import add_best_study, add_out
from search.cli.startup import use_light_backend
from search.files import read_json, write_text
from search.layout import STUDY_JSON

NAME = "predict"
HELP = "predict with a study's best model"


def add_arguments(parser: Any) -> None:
    parser.add_argument("task", metavar="TASK")
    add_best_study(parser)
    parser.add_argument("--data", required=True, help="CSV file with the feature columns")
    parser.add_argument("--output", help="write the predictions here (default: stdout)")
    add_out(parser)


def command(args: argparse.Namespace, argv: list[str]) -> int:
    # Loaded here: a stored study's model needs Keras and its table pandas.
    from search.study.stored import find_study, predict

    folder = find_study(Path(args.out), args.task, args.study)
    # A built-in space's model predicts on Keras' numpy backend as it trained: five rows
    # need no TensorFlow import (seconds). A user's space keeps Keras' own backend.
    use_light_backend([read_json(folder / STUDY_JSON)["config"].get("space")], ["numpy"])
    frame = predict(folder, args.data)
    text = frame.to_csv(index=False)
    if args.output:
        write_text(Path(args.output), text)
        print(f"wrote {len(frame)} predictions to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
