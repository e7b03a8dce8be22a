"""``search run TASK``: run or resume a study of every space asked for, and print the results.

Every option of a study is :class:`search.Study`'s, by the same name (``--study`` is its
``name``); their types, bounds and defaults come from :mod:`search.study.options`.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from search.cli.arguments import (
    add_cluster,
    add_csv,
    add_option,
    add_out,
    add_training,
    choices,
    positive_seconds,
)
from search.cli.startup import check_cluster_address, command_task, use_light_backend
from search.engines.base import DEFAULT_ALGORITHM, ENGINES, PRUNERS
from search.errors import SearchError
from search.layout import TENSORBOARD
from search.space_lookup import spaces_for, unknown_space
from search.study.api import Study
from search.study.callbacks import mlflow
from search.study.enqueue import read_configurations
from search.study.options import OPTIONS
from search.study.workers import prestart
from search.tasks import ALL_METRICS
from search.trainers import TRAINERS, compile_ahead, trainer_for

NAME = "run"
HELP = "run (or resume) a search on a task"
DESCRIPTION = (
    "Run or resume searches on TASK. Without --space, "
    "every built-in space that fits the task is tuned."
)

ALGORITHMS = sorted({a for algorithms in ENGINES.values() for a in algorithms})
# The columns of a trial table that are not hyperparameters.
_NOT_PARAMS = {"state", "error", "seconds", "seed", "params"} | {
    f"{split}_{m}" for split in ("val", "test") for m in ALL_METRICS
}


def add_arguments(parser: Any) -> None:
    parser.add_argument("task", metavar="TASK", help="a task name (see 'list') or 'csv'")
    parser.add_argument(
        "--space",
        help="built-in space (linear, logistic, mlp; fcnet, hpobench, nb201: the tabular "
        "benchmarks' grids) or a path to a .py file defining a "
        "search.Space subclass, a keras_tuner.HyperModel or a build_model(hp) function "
        "(FILE.py:NAME picks one); default: every built-in space that fits the task",
    )
    _add_search(parser)
    _add_scoring(parser)
    _add_execution(parser)
    _add_start(parser)
    add_csv(parser, "python -m search csv")


def _add_search(run: Any) -> None:
    """The engine, its budget and how each configuration trains."""
    # The names are listed as argparse lists choices, but checked by the API, whose error
    # names the problem the same way for the CLI and a notebook.
    add_option(run, "--engine", "search engine (default %(default)s)", metavar=choices(ENGINES))
    add_option(
        run,
        "--algorithm",
        "sampler / tuner: "
        + "; ".join(f"{engine}: {', '.join(a)}" for engine, a in ENGINES.items())
        + " (default "
        + ", ".join(f"{a} for {engine}" for engine, a in DEFAULT_ALGORITHM.items())
        + "; see 'list')",
        metavar=choices(ALGORITHMS),
    )
    add_option(
        run,
        "--pruner",
        "optuna pruner (default median for optuna, none for keras-tuner); median, "
        "hyperband and successive-halving stop a trial between epochs, wilcoxon compares "
        "a trained trial's fold values with the best trial's and needs --cv 4 or more",
        metavar=choices(PRUNERS),
    )
    add_option(
        run,
        "--trials",
        "trials in the study in total; a rerun resumes up to this number (default %(default)s)",
    )
    add_training(run)
    add_option(
        run,
        "--executions",
        "trainings per configuration from different initialisations, averaged "
        "(default %(default)s)",
    )
    add_option(run, "--seed", "seed of the sampler and of every trial (default %(default)s)")


def _add_scoring(run: Any) -> None:
    """The study's name and place, how its best trials are scored, and what is written."""
    run.add_argument(
        "--study",
        help="study name (default SPACE-ENGINE-ALGORITHM); with "
        "several spaces, the space name is appended",
    )
    add_out(run)
    add_option(
        run,
        "--top-k",
        "best trials retrained on the whole training split and scored on "
        "the test split (default %(default)s)",
    )
    add_option(
        run,
        "--ensemble",
        "retrainings of each top-k configuration from different seeds; its test "
        "predictions and best.keras average them (default %(default)s)",
    )
    add_option(
        run,
        "--ensemble-size",
        "greedy picks, with replacement, of an ensemble of the best trials chosen on "
        "their predictions on fresh validation folds; its members are retrained as "
        "--ensemble says and best.keras holds their weighted mean; 0: best.keras is the "
        "rank-1 trial's model (default %(default)s)",
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


def _add_execution(run: Any) -> None:
    """How the trials run: retries, failures, trainer, populations, workers and storage."""
    add_option(
        run,
        "--retries",
        "when the study resumes, an interrupted trial (kill, Ctrl-C) continues from its "
        "checkpoint; one interrupted again at the same point (no epoch saved since) runs "
        "again up to this many times, then stays failed; 0 marks every interrupted trial "
        "failed (default %(default)s)",
    )
    add_option(
        run,
        "--checkpoint-epochs",
        "a running trial writes its checkpoint (weights, optimizer state, curves) at most "
        "every N epochs and --checkpoint-seconds (--trainer compiled: between its chunks of "
        "10 epochs); 0 writes none (default %(default)s)",
        metavar="N",
    )
    add_option(
        run,
        "--checkpoint-seconds",
        "a running trial writes its checkpoint at most every S seconds (and "
        "--checkpoint-epochs): about the most training a kill can lose (default %(default)s)",
        metavar="S",
    )
    add_option(
        run,
        "--max-failures",
        "stop the search after this many failed trials in a row (diverging losses, errors "
        "in the space's code), or once every trial of a smaller --trials failed; 0 never "
        "stops (default %(default)s)",
    )
    add_option(
        run,
        "--trainer",
        "; ".join(f"{name}: {text}" for name, text in TRAINERS.items())
        + ". Models numpy or compiled cannot train go to fit (default %(default)s)",
        choices=list(TRAINERS),
    )
    add_option(
        run,
        "--population",
        "trials asked of the engine at once (Optuna's ask, keras-tuner's oracle); the "
        "numpy and compiled trainers train those whose models differ only in learning "
        "rate, dropout, penalties and clipping together, as one population. Pays off when "
        "many configurations share an architecture (default %(default)s: one at a time)",
        metavar="K",
    )
    add_option(
        run,
        "--pbt-interval",
        "--algorithm pbt: epochs between exploits, when the bottom --pbt-quantile of the "
        "members copy a top member's weights and hyperparameters and perturb them "
        "(default: a tenth of --epochs, at least 1; docs/pbt.md)",
        metavar="E",
    )
    add_option(
        run,
        "--pbt-quantile",
        "--algorithm pbt: the fraction of the members that copy (the worst) and are copied "
        "(the best), at most 0.5 (default %(default)s, as Ray Tune's quantile_fraction)",
        metavar="Q",
    )
    add_option(
        run,
        "--workers",
        "worker processes sharing the study, on this machine (each gets its share of the "
        "cores) or, with --cluster, as tasks on a Dask cluster (default %(default)s)",
    )
    add_cluster(run, "the study's --workers run as tasks on its workers")
    add_option(
        run,
        "--storage",
        "optuna storage URL shared by workers on several machines: sqlite:///FILE, "
        "postgresql://USER:PASSWORD@HOST/DB, mysql://..., redis://HOST:PORT/N (default: "
        "$SEARCH_STORAGE, else a journal file in the study folder); the password is masked "
        "in every output",
        default=os.environ.get("SEARCH_STORAGE"),
    )


def _add_start(run: Any) -> None:
    """The budget in seconds, the size limit, the first configurations, and MLflow."""
    run.add_argument(
        "--time-budget",
        type=positive_seconds,
        metavar="SECONDS",
        help="wall seconds for the search: no trial starts after it, the running ones finish, "
        "and the study is scored as usual (study.json's summary says ended_by: time budget); "
        "on a tabular benchmark, seconds of recorded training time (its simulated clock)",
    )
    add_option(
        run,
        "--max-params",
        "a configuration whose model has more than N weights is not trained: it is built "
        "once and recorded with the reason (optuna: pruned, so TPE learns to avoid its size; "
        "keras-tuner: failed, as its max_model_size does) (default: no limit)",
        metavar="N",
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


def command(args: argparse.Namespace, argv: list[str]) -> int:
    # Cheap checks first: a mistyped space is refused before the task loads.
    if args.space and unknown_space(args.space):
        raise SearchError(str(unknown_space(args.space)))
    use_light_backend([args.space], [args.trainer])
    task = command_task(args)
    if args.cluster is not None:
        check_cluster_address(args.cluster)  # the extra, the address: before the task loads
    elif args.workers > 1:
        prestart(args.workers)  # they import Keras alongside this process
    # Beside the imports and set-up below (Keras, Optuna, the studies): a study refused
    # there ends the compiling process at exit.
    compile_ahead(trainer_for(task.spec, args.trainer))
    studies = [_study(args, task, space) for space in _spaces(args, task)]
    callbacks = []
    if args.mlflow:
        callbacks.append(mlflow(args.mlflow, studies[0].config.objectives))
    try:
        return _run_studies(args, argv, task, studies, callbacks)
    finally:
        if args.cluster is not None:
            from search.study.cluster import close_all  # loaded already: a study used it

            close_all()


def _run_studies(
    args: argparse.Namespace, argv: list[str], task: Any, studies: list[Study], callbacks: list
) -> int:
    results = []
    for study in studies:
        if args.fresh and (trash := study.set_aside()):
            print(f"moved the old study to {trash}", file=sys.stderr)
        try:
            results.append(study.run(args.trials, timeout=args.time_budget, callbacks=callbacks))
        except KeyboardInterrupt:
            again = [a for a in argv[1:] if a != "--fresh"]
            print(
                f"\ninterrupted: {study.config.task}/{study.name} keeps its finished trials "
                f"(leaderboard: {study.folder}/leaderboard.csv); resume with: "
                f"python -m search {shlex.join(again)}",
                file=sys.stderr,
            )
            return 130
    # A study that stopped before any trial completed has no table to show: its one line
    # (below) says why.
    shown = [r for r in results if r.summary["complete"] or not r.stopped]
    if shown:
        _print_results(task, shown, Path(args.out))
    stopped = [r for r in results if r.stopped]
    for result in stopped:
        print(f"search: {result.summary['study']}: {result.stopped}", file=sys.stderr)
    return 1 if stopped else 0


def _spaces(args: argparse.Namespace, task: Any) -> list[str]:
    return [args.space] if args.space else spaces_for(task.spec.kind, task.spec.table)


def _study(args: argparse.Namespace, task: Any, space: str) -> Study:
    """The study of ``space``, checked before anything moves: --fresh sets aside the old
    study only once every new one is known to be valid."""
    name = args.study
    if args.study is not None and len(_spaces(args, task)) > 1:
        name = f"{args.study}-{space}"
    options = {key: getattr(args, key) for key in OPTIONS if key != "name"}
    study = Study(task, space, name=name, **options)
    if args.enqueue:
        study.enqueue(read_configurations(args.enqueue), f"--enqueue {args.enqueue}")
    if args.warm_start:
        study.warm_start(args.warm_start)
    study.check(fresh=args.fresh)
    return study


# What the first line of a study's results adds about how it ended, where it says more
# than the counts do.
_ENDED_BY = {
    "time budget": " (the time budget ended it)",
    "space exhausted": " (the space has no configuration left to try)",
}


def _print_results(task: Any, results: list[Any], out: Path) -> None:
    import pandas as pd

    for result in results:
        summary = result.summary
        print(
            f"\n{summary['task']}/{summary['study']}: {summary['complete']} complete, "
            f"{summary['pruned']} pruned, {summary['failed']} failed trials in "
            f"{summary['wall_seconds']:.0f} s" + _ENDED_BY.get(summary.get("ended_by"), "")
        )
        table = result.leaderboard
        shown = table[table["rank"].notna()].head(5)
        columns = ["rank", "trial", "value", f"test_{task.headline}", "epochs", "best_epoch"]
        columns += [c for c in shown.columns if c not in columns and c not in _NOT_PARAMS]
        print(shown[columns].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        if summary.get("ensemble"):
            print(
                f"best.keras: the ensemble of trials {summary['ensemble']} (trial:weight), "
                f"{summary['objective']} {summary['ensemble_value']:.4g} on fresh folds, "
                f"test {summary['test_metric']} {summary['ensemble_test_value']:.4g}"
            )
    rows = [{"baseline": name, **values} for name, values in task.baselines.items()]
    where = "table, by each configuration's mean run" if task.spec.table else "test split"
    print(f"\nbaselines on the {task.spec.name} {where}:")
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print("\nwritten:")
    for result in results:
        for path in result.written[:-1]:
            print(f"  {path}")
    print(f"  {out / 'leaderboard.csv'}")
    inspect = [r for r in results if r.folder / TENSORBOARD in r.written]
    if inspect:
        where = "" if str(out) == "results" else f" --out {shlex.quote(str(out))}"
        print("\ninspect in TensorBoard:")
        for result in inspect:
            summary = result.summary
            print(f"  python -m search tensorboard {summary['task']} {summary['study']}{where}")
