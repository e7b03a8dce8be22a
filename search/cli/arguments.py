"""What the commands' parsers share: one-line usage errors, the checked value types, and
the options several commands take (the training options, the csv task's, ``--out``).

A study's option takes its type, bound and default from :mod:`search.study.options`
(:func:`add_option`), so each is declared once.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from search.bench.config import TRAINING_DEFAULTS
from search.study.options import DEFAULTS, OPTIONS, TRIALS, Option


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (not usage + error) and exits 2."""

    def error(self, message: str) -> NoReturn:
        print(f"search: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def choices(names: Any) -> str:
    """``{a,b}``, as argparse lists choices: the metavar of names that the API checks."""
    return "{" + ",".join(names) + "}"


def _number(
    convert: Callable[[str], float], fits: Callable[[float], bool], expected: str
) -> Callable[[str], Any]:
    """An argparse ``type``: ``convert`` the text, and refuse it unless it ``fits``."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not fits(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


def value_type(option: Option) -> Callable[[str], Any] | None:
    """The argparse ``type`` of a study's option: its bound, as the API checks it."""
    if option.type is float:
        return fraction
    if option.least is None:
        return None
    least = option.least
    return _number(int, lambda value: value >= least, option.expected)


positive = _number(int, lambda v: v >= 1, "a positive integer")
positive_seconds = _number(float, lambda v: 0 < v < float("inf"), "a number of seconds > 0")
tcp_port = _number(int, lambda v: 0 < v < 65536, "a port 1-65535")
fraction = _number(float, lambda v: 0 < v < 1, "a number in (0, 1)")


def add_option(parser: Any, flag: str, help: str, bench: bool = False, **more: Any) -> None:
    """Add a study's option (``--top-k`` for ``top_k``) with its type and default from the
    table (``more`` may name others); on bench the default is None (:func:`add_training`)."""
    name = flag.removeprefix("--").replace("-", "_")
    option = TRIALS if name == TRIALS.name else OPTIONS[name]
    if "choices" not in more:
        more["type"] = value_type(option)
    more.setdefault("default", None if bench else option.default)
    parser.add_argument(flag, help=help, **more)


def add_cluster(parser: Any, what: str) -> None:
    """``--cluster`` of run and bench (default ``$SEARCH_CLUSTER``)."""
    parser.add_argument(
        "--cluster",
        metavar="ADDRESS",
        default=os.environ.get("SEARCH_CLUSTER"),
        help=f"a Dask scheduler (tcp://HOST:8786) or 'local' (a cluster of this machine's "
        f"cores): {what}; needs pip install 'search[dask]'; every worker must see --out at "
        "the same path, or the study needs a --storage server and --no-tensorboard (see "
        "docs/workers.md) (default: $SEARCH_CLUSTER, else none)",
    )


def add_out(parser: Any) -> None:
    parser.add_argument("--out", default=DEFAULTS["out"], help="results root (default %(default)s)")


def add_csv(parser: Any, command: str) -> None:
    """The csv task's options: of both run and bench."""
    csv = parser.add_argument_group("csv task", f"options of '{command}'")
    csv.add_argument("--data", help="CSV file with a header row")
    csv.add_argument("--target", help="name of the target column")
    csv.add_argument("--kind", help="regression, binary or multiclass (inferred if omitted)")
    csv.add_argument("--test-size", type=fraction, help="test fraction (default 0.2)")


def add_training(parser: Any, bench: bool = False) -> None:
    """How every configuration trains and is scored: options of both run and bench.

    On bench they default to None, so that one given on the command line can be told from
    a default: it overrides a suite's settings, and a default does not.
    """

    def shown(name: str) -> str:
        if bench:
            return f"(default: the suite's, else {TRAINING_DEFAULTS[name]})"
        return "(default %(default)s)"

    add_option(parser, "--epochs", f"maximum epochs per training {shown('epochs')}", bench)
    add_option(
        parser,
        "--patience",
        "stop a training after this many epochs without improvement of "
        f"the objective; 0 never stops early {shown('patience')}",
        bench,
    )
    add_option(
        parser,
        "--cv",
        "K-fold cross-validation on the training split; 1 is one holdout split (default: "
        + ("the suite's, else " if bench else "")
        + "5 for boston, 1 for the other tasks)",
    )
    add_option(
        parser,
        "--validation-split",
        f"holdout fraction of the training split when --cv is 1 {shown('validation_split')}",
        bench,
    )
    parser.add_argument(
        "--objective",
        help="validation metric to optimise, e.g. val_mse, val_mae, val_logloss, val_accuracy "
        "(default: val_mse for regression, val_logloss otherwise); several, comma-separated, "
        "make a Pareto search on optuna, e.g. val_mse,params (costs: params, the model's "
        "weights; seconds, the trial's training time)",
    )


def add_best_study(parser: Any) -> None:
    """``--study`` of the commands that read one stored study (its best one by default)."""
    parser.add_argument(
        "--study", help="study name (default: the task's study with the best validation value)"
    )
