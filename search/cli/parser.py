"""The command line's arguments: every command, every option, its default and its help.

Defaults come from the API (``search.Study``'s signature, the engine and trainer tables), so
each is declared once; ``--help`` lists the valid choices of every name.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from search import __version__
from search.bench.config import DEFAULT_SEEDS, BenchConfig
from search.bench.suite import builtin_suites
from search.engines.base import CONTENDERS, DEFAULT_ALGORITHM, ENGINES, PRUNERS
from search.study.api import DEFAULT_TRIALS, Study
from search.trainers import TRAINERS

COMMANDS = ("run", "list", "leaderboard", "predict", "tensorboard", "bench", "report")
# Study's keyword defaults: the one place they are declared.
DEFAULTS = {
    name: parameter.default
    for name, parameter in inspect.signature(Study).parameters.items()
    if parameter.default is not inspect.Parameter.empty
} | {"trials": DEFAULT_TRIALS}
# The benchmark's own defaults (every contender spends its budget as a sampler).
BENCH_DEFAULTS = {f.name: f.default for f in dataclasses.fields(BenchConfig)}
ALGORITHMS = sorted({a for algorithms in ENGINES.values() for a in algorithms})


def _choices(names: Any) -> str:
    return "{" + ",".join(names) + "}"


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (not usage + error) and exits 2."""

    def error(self, message: str) -> NoReturn:
        print(f"search: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


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


_positive = _number(int, lambda v: v >= 1, "a positive integer")
_non_negative = _number(int, lambda v: v >= 0, "an integer >= 0")
_positive_seconds = _number(float, lambda v: 0 < v < float("inf"), "a number of seconds > 0")
_port = _number(int, lambda v: 0 < v < 65536, "a port 1-65535")
_fraction = _number(float, lambda v: 0 < v < 1, "a number in (0, 1)")


DEBUG_VARIABLE = "SEARCH_DEBUG"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="search",
        description="Tune Keras models with keras-tuner or Optuna; write leaderboards, "
        "TensorBoard logs and the best model. 'search TASK' (or 'python -m search TASK') "
        "is short for 'search run TASK'.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    # Taken out of the arguments before parsing (see search.cli.commands.main), so that it
    # may stand anywhere: listed here for --help.
    parser.add_argument(
        "--debug",
        action="store_true",
        help=f"show the traceback of an error (also: {DEBUG_VARIABLE}=1); exit codes: 0 done, "
        "1 stopped (the environment failed: disk, storage, a damaged file; or the search "
        "stopped itself), 2 bad input, 130 Ctrl-C",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = commands.add_parser(
        "run",
        help="run (or resume) a search on a task",
        description="Run or resume searches on TASK. Without --space, "
        "every built-in space that fits the task is tuned.",
    )
    run.add_argument("task", metavar="TASK", help="a task name (see 'list') or 'csv'")
    run.add_argument(
        "--space",
        help="built-in space (linear, logistic, mlp) or a path to a .py file defining a "
        "search.Space subclass, a keras_tuner.HyperModel or a build_model(hp) function "
        "(FILE.py:NAME picks one); default: every built-in space that fits the task",
    )
    # The names are listed as argparse lists choices, but checked by the API, whose error
    # names the problem the same way for the CLI and a notebook.
    run.add_argument(
        "--engine",
        metavar=_choices(ENGINES),
        default=DEFAULTS["engine"],
        help="search engine (default %(default)s)",
    )
    run.add_argument(
        "--algorithm",
        metavar=_choices(ALGORITHMS),
        help="sampler / tuner: "
        + "; ".join(f"{engine}: {', '.join(a)}" for engine, a in ENGINES.items())
        + " (default "
        + ", ".join(f"{a} for {engine}" for engine, a in DEFAULT_ALGORITHM.items())
        + "; see 'list')",
    )
    run.add_argument(
        "--pruner",
        metavar=_choices(PRUNERS),
        default=None,
        help="optuna pruner (default median for optuna, none for keras-tuner)",
    )
    run.add_argument(
        "--trials",
        type=_positive,
        default=DEFAULTS["trials"],
        help="trials in the study in total; a rerun resumes up to this number "
        "(default %(default)s)",
    )
    _add_training(run)
    run.add_argument(
        "--executions",
        type=_positive,
        default=DEFAULTS["executions"],
        help="trainings per configuration from different initialisations, "
        "averaged (default %(default)s)",
    )
    run.add_argument(
        "--seed",
        type=_non_negative,
        default=DEFAULTS["seed"],
        help="seed of the sampler and of every trial (default %(default)s)",
    )
    run.add_argument(
        "--study",
        help="study name (default SPACE-ENGINE-ALGORITHM); with "
        "several spaces, the space name is appended",
    )
    run.add_argument("--out", default=DEFAULTS["out"], help="results root (default %(default)s)")
    run.add_argument(
        "--top-k",
        type=_non_negative,
        default=DEFAULTS["top_k"],
        help="best trials retrained on the whole training split and scored on "
        "the test split (default %(default)s)",
    )
    run.add_argument(
        "--ensemble",
        type=_positive,
        default=DEFAULTS["ensemble"],
        help="retrainings of each top-k configuration from different seeds; its test "
        "predictions and best.keras average them (default %(default)s)",
    )
    run.add_argument(
        "--fresh",
        action="store_true",
        help="start the study over; the old one is moved to OUT/.trash",
    )
    run.add_argument(
        "--no-tensorboard",
        dest="tensorboard",
        action="store_false",
        help="write no TensorBoard runs",
    )
    run.add_argument(
        "--retries",
        type=_non_negative,
        default=DEFAULTS["retries"],
        help="run a trial that was interrupted (kill, Ctrl-C) again up to this many times "
        "when the study resumes; 0 marks it failed (default %(default)s)",
    )
    run.add_argument(
        "--max-failures",
        type=_non_negative,
        default=DEFAULTS["max_failures"],
        help="stop the search after this many failed trials in a row (diverging losses); "
        "0 never stops (default %(default)s)",
    )
    run.add_argument(
        "--trainer",
        choices=list(TRAINERS),
        default=DEFAULTS["trainer"],
        help="; ".join(f"{name}: {text}" for name, text in TRAINERS.items())
        + ". Models numpy or compiled cannot train go to fit (default %(default)s)",
    )
    run.add_argument(
        "--population",
        type=_positive,
        default=DEFAULTS["population"],
        metavar="K",
        help="trials asked of the engine at once (Optuna's ask, keras-tuner's oracle); the "
        "numpy and compiled trainers train those whose models differ only in learning "
        "rate, dropout, penalties and clipping together, as one population. Pays off when "
        "many configurations share an architecture (default %(default)s: one at a time)",
    )
    run.add_argument(
        "--workers",
        type=_positive,
        default=DEFAULTS["workers"],
        help="worker processes on this machine sharing the study (optuna; each gets its "
        "share of the cores) (default %(default)s)",
    )
    run.add_argument(
        "--storage",
        default=os.environ.get("SEARCH_STORAGE"),
        help="optuna storage URL shared by workers on several machines: sqlite:///FILE, "
        "postgresql://USER:PASSWORD@HOST/DB, mysql://..., redis://HOST:PORT/N (default: "
        "$SEARCH_STORAGE, else a journal file in the study folder); the password is masked "
        "in every output",
    )
    run.add_argument(
        "--time-budget",
        type=_positive_seconds,
        metavar="SECONDS",
        help="wall seconds for the search: no trial starts after it, the running ones finish, "
        "and the study is scored as usual (study.json's summary says ended_by: time budget)",
    )
    run.add_argument(
        "--max-params",
        type=_positive,
        metavar="N",
        default=DEFAULTS["max_params"],
        help="a configuration whose model has more than N weights is not trained: it is built "
        "once and recorded with the reason (optuna: pruned, so TPE learns to avoid its size; "
        "keras-tuner: failed, as its max_model_size does) (default: no limit)",
    )
    run.add_argument(
        "--enqueue",
        metavar="FILE",
        help="try these configurations first: a JSON list of objects, or a CSV file with one "
        "column per hyperparameter (a leaderboard.csv works); each is checked against the "
        "space before anything runs, and a resumed study does not try them twice",
    )
    run.add_argument(
        "--warm-start",
        metavar="STUDY",
        help="try the --top-k best configurations of another study of this task and space first",
    )
    run.add_argument(
        "--mlflow",
        metavar="URI",
        help="log every trial as an MLflow run (its value, hyperparameters and state) to this "
        "tracking URI, e.g. file:./mlruns or http://HOST:5000; needs pip install "
        "'search[mlflow]'",
    )
    _add_csv(run, "python -m search csv")

    commands.add_parser("list", help="list tasks, spaces, engines, algorithms and pruners")

    board = commands.add_parser("leaderboard", help="print the leaderboards as tables")
    board.add_argument("task", metavar="TASK", nargs="?", help="only this task's studies")
    board.add_argument("--out", default=DEFAULTS["out"], help="results root (default %(default)s)")
    board.add_argument(
        "--storage",
        default=os.environ.get("SEARCH_STORAGE"),
        help="the optuna storage URL with its password, for studies whose recorded URL is "
        "masked (default: $SEARCH_STORAGE)",
    )

    predict = commands.add_parser("predict", help="predict with a study's best model")
    predict.add_argument("task", metavar="TASK")
    predict.add_argument(
        "--study", help="study name (default: the task's study with the best validation value)"
    )
    predict.add_argument("--data", required=True, help="CSV file with the feature columns")
    predict.add_argument("--output", help="write the predictions here (default: stdout)")
    predict.add_argument(
        "--out", default=DEFAULTS["out"], help="results root (default %(default)s)"
    )

    board = commands.add_parser(
        "tensorboard",
        help="inspect studies in TensorBoard (HParams, Scalars, Graphs)",
        description="Start TensorBoard over one study, every study of TASK, or every study, "
        "print its URL and serve until Ctrl-C.",
    )
    board.add_argument("task", metavar="TASK", nargs="?", help="only this task's studies")
    board.add_argument("study", metavar="STUDY", nargs="?", help="only this study of TASK")
    board.add_argument("--out", default=DEFAULTS["out"], help="results root (default %(default)s)")
    board.add_argument("--port", type=_port, help="port to serve on (default: a free one)")
    board.add_argument(
        "--host", default="127.0.0.1", help="address to serve on (default %(default)s)"
    )
    _add_bench(commands)
    _add_report(commands)
    return parser


def _add_csv(parser: Any, command: str) -> None:
    """The csv task's options: of both run and bench."""
    csv = parser.add_argument_group("csv task", f"options of '{command}'")
    csv.add_argument("--data", help="CSV file with a header row")
    csv.add_argument("--target", help="name of the target column")
    csv.add_argument("--kind", help="regression, binary or multiclass (inferred if omitted)")
    csv.add_argument("--test-size", type=_fraction, help="test fraction (default 0.2)")


def _add_training(parser: Any, bench: bool = False) -> None:
    """How every configuration trains and is scored: options of both run and bench.

    On bench they default to None, so that one given on the command line can be told from
    a default: it overrides a suite's settings, and a default does not.
    """

    def default(name: str) -> Any:
        return None if bench else DEFAULTS[name]

    def shown(name: str) -> str:
        if bench:
            return f"(default: the suite's, else {DEFAULTS[name]})"
        return "(default %(default)s)"

    parser.add_argument(
        "--epochs",
        type=_positive,
        default=default("epochs"),
        help=f"maximum epochs per training {shown('epochs')}",
    )
    parser.add_argument(
        "--patience",
        type=_non_negative,
        default=default("patience"),
        help="stop a training after this many epochs without improvement of "
        f"the objective; 0 never stops early {shown('patience')}",
    )
    parser.add_argument(
        "--cv",
        type=_positive,
        default=None,
        help="K-fold cross-validation on the training split; 1 is one holdout "
        "split (default: "
        + ("the suite's, else " if bench else "")
        + "5 for boston, 1 for the other tasks)",
    )
    parser.add_argument(
        "--validation-split",
        type=_fraction,
        default=default("validation_split"),
        help=f"holdout fraction of the training split when --cv is 1 {shown('validation_split')}",
    )
    parser.add_argument(
        "--objective",
        help="validation metric to optimise, e.g. val_mse, val_mae, val_logloss, val_accuracy "
        "(default: val_mse for regression, val_logloss otherwise); several, comma-separated, "
        "make a Pareto search on optuna, e.g. val_mse,params (costs: params, the model's "
        "weights; seconds, the trial's training time)",
    )


def _add_bench(commands: Any) -> None:
    bench = commands.add_parser(
        "bench",
        help="benchmark engines and algorithms on a task or a suite of tasks: every "
        "contender with every seed",
        description="Run every contender with every seed as its own (resumable) study under "
        "OUT/bench/TASK-SPACE/studies, then write runs.csv, summary.csv, finals.csv, "
        "curves.png and test.png there and print the summary. With --suite, do that for "
        "every entry of the suite under OUT/bench/suite-NAME/ENTRY, then compare the "
        "contenders over the tasks (mean ranks, Friedman and Nemenyi tests, normalised "
        "scores, ranks over the budget) in OUT/bench/suite-NAME. Rerun the same command to "
        "resume an interrupted benchmark.",
    )
    bench.add_argument(
        "task", metavar="TASK", nargs="?", help="a task name (see 'list') or 'csv'; or --suite"
    )
    bench.add_argument(
        "--suite",
        metavar="FILE",
        help="a suite file (TOML: [[entry]] tables with task, space and options) or a "
        f"built-in suite ({', '.join(builtin_suites())}) instead of TASK and --space",
    )
    bench.add_argument(
        "--space", help="built-in space (linear, logistic, mlp) or a .py file (with TASK)"
    )
    bench.add_argument(
        "--contenders",
        help="comma-separated ENGINE:ALGORITHM names (default: all of "
        f"{','.join(CONTENDERS)}; optuna:gp needs torch)",
    )
    bench.add_argument(
        "--seeds",
        type=_positive,
        default=DEFAULT_SEEDS,
        help="runs per contender, with seeds 0..K-1 (default %(default)s)",
    )
    budget = bench.add_mutually_exclusive_group()
    budget.add_argument(
        "--trials",
        type=_positive,
        help=f"trials per run (default {DEFAULTS['trials']} unless --time-budget is given)",
    )
    budget.add_argument(
        "--time-budget",
        type=_positive_seconds,
        metavar="SECONDS",
        help="wall seconds per run instead of a trial count: no trial starts after it",
    )
    _add_training(bench, bench=True)
    bench.add_argument(
        "--pruner",
        metavar=_choices(PRUNERS),
        default=None,
        help="pruner of the optuna contenders (default: the suite's, else "
        f"{BENCH_DEFAULTS['pruner']}, so every contender is compared as a sampler)",
    )
    bench.add_argument(
        "--trainer",
        choices=list(TRAINERS),
        default=None,
        help=f"how every run trains (default: the suite's, else {BENCH_DEFAULTS['trainer']})",
    )
    bench.add_argument(
        "--jobs",
        type=_positive,
        default=1,
        metavar="N",
        help="studies run at once, each in its own process with its share of the cores "
        "(default %(default)s)",
    )
    bench.add_argument(
        "--max-failures",
        type=_non_negative,
        default=BENCH_DEFAULTS["max_failures"],
        help="stop a run after this many failed trials in a row; 0 (default) never stops, "
        "so every contender spends its whole budget",
    )
    bench.add_argument("--out", default=DEFAULTS["out"], help="results root (default %(default)s)")
    bench.add_argument(
        "--no-tensorboard",
        dest="tensorboard",
        action="store_false",
        help="write no TensorBoard runs",
    )
    _add_csv(bench, "python -m search bench csv")


def _add_report(commands: Any) -> None:
    report = commands.add_parser(
        "report",
        help="render one study as PNG plots and a self-contained HTML page",
        description="Render one study (either engine): optimisation history, parameter "
        "importances, parallel coordinates and slice plots as PNG files, and report.html "
        "with the images embedded and the leaderboard, in the study's report/ folder.",
    )
    report.add_argument("task", metavar="TASK", help="the study's task")
    report.add_argument(
        "--study", help="study name (default: the task's study with the best validation value)"
    )
    report.add_argument("--out", default=DEFAULTS["out"], help="results root (default %(default)s)")
