"""``search bench``: every contender with every seed on a task (TASK --space) or on every
entry of a suite (--suite), then the comparison, printed.

The benchmark's configuration is built by :mod:`search.bench.config`: this module reads
the command line, calls the benchmark and prints.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
from pathlib import Path
from typing import Any

from search.bench.config import DEFAULT_SEEDS, BenchConfig, bench_config, training
from search.bench.suite import TASK_OPTIONS, builtin_suites, load_suite
from search.cli.arguments import (
    add_cluster,
    add_csv,
    add_option,
    add_out,
    add_training,
    choices,
    positive,
    positive_seconds,
)
from search.cli.startup import check_cluster_address, command_task, use_light_backend
from search.engines.base import CONTENDERS, PRUNERS
from search.errors import SearchError
from search.space_lookup import BUILTIN_SPACES
from search.study.options import DEFAULT_TRIALS, TRAINING
from search.trainers import TRAINERS

NAME = "bench"
HELP = (
    "benchmark engines and algorithms on a task or a suite of tasks: every "
    "contender with every seed"
)
DESCRIPTION = (
    "Run every contender with every seed as its own (resumable) study under "
    "OUT/bench/TASK-SPACE/studies, then write runs.csv, summary.csv, finals.csv, "
    "curves.png and test.png there and print the summary. With --suite, do that for "
    "every entry of the suite under OUT/bench/suite-NAME/ENTRY, then compare the "
    "contenders over the tasks (mean ranks, Friedman and Nemenyi tests, normalised "
    "scores, ranks over the budget) in OUT/bench/suite-NAME. Rerun the same command to "
    "resume an interrupted benchmark."
)

# The options of every run of a benchmark, beside the training options.
RUN_OPTIONS = ("out", "seeds", "trials", "time_budget", "tensorboard", "max_failures")


def add_arguments(parser: Any) -> None:
    parser.add_argument(
        "task", metavar="TASK", nargs="?", help="a task name (see 'list') or 'csv'; or --suite"
    )
    parser.add_argument(
        "--suite",
        metavar="FILE",
        help="a suite file (TOML: [[entry]] tables with task, space and options) or a "
        f"built-in suite ({', '.join(builtin_suites())}) instead of TASK and --space",
    )
    parser.add_argument(
        "--space",
        help="built-in space (linear, logistic, mlp; fcnet, hpobench, nb201: the tabular "
        "benchmarks' grids) or a .py file (with TASK)",
    )
    parser.add_argument(
        "--contenders",
        help="comma-separated ENGINE:ALGORITHM names (default: all of "
        f"{','.join(CONTENDERS)}; optuna:gp needs torch)",
    )
    parser.add_argument(
        "--seeds",
        type=positive,
        default=DEFAULT_SEEDS,
        help="runs per contender, with seeds 0..K-1 (default %(default)s)",
    )
    budget = parser.add_mutually_exclusive_group()
    add_option(
        budget,
        "--trials",
        f"trials per run (default {DEFAULT_TRIALS} unless --time-budget is given)",
        bench=True,
    )
    budget.add_argument(
        "--time-budget",
        type=positive_seconds,
        metavar="SECONDS",
        help="wall seconds per run instead of a trial count: no trial starts after it (on a "
        "tabular benchmark, seconds of recorded training time: its simulated clock)",
    )
    add_training(parser, bench=True)
    _add_runs(parser)
    add_csv(parser, "python -m search bench csv")


def _add_runs(bench: Any) -> None:
    """How every run of the benchmark runs, and where it writes."""
    defaults = training()
    add_option(
        bench,
        "--pruner",
        "pruner of the optuna contenders (default: the suite's, else "
        f"{defaults['pruner']}, so every contender is compared as a sampler)",
        bench=True,
        metavar=choices(PRUNERS),
    )
    add_option(
        bench,
        "--trainer",
        f"how every run trains (default: the suite's, else {defaults['trainer']})",
        bench=True,
        choices=list(TRAINERS),
    )
    bench.add_argument(
        "--jobs",
        type=positive,
        default=1,
        metavar="N",
        help="studies run at once, each in its own process with its share of the cores "
        "(default %(default)s)",
    )
    add_cluster(bench, "every study runs as a task on its workers, instead of --jobs processes")
    add_option(
        bench,
        "--max-failures",
        "stop a run after this many failed trials in a row; 0 (default) never stops, "
        "so every contender spends its whole budget",
        default=BenchConfig.max_failures,
    )
    add_out(bench)
    bench.add_argument(
        "--no-tensorboard",
        dest="tensorboard",
        action="store_false",
        help="write no TensorBoard runs",
    )


def command(args: argparse.Namespace, argv: list[str]) -> int:
    if args.cluster is None:
        return _command(args)
    check_cluster_address(args.cluster)  # the extra, the address: before anything loads
    try:
        return _command(args)
    finally:
        from search.study.cluster import close_all  # the LocalCluster's processes end now

        close_all()


def _command(args: argparse.Namespace) -> int:
    if args.suite is not None:
        return _suite(args)
    if args.task is None:
        raise SearchError("bench needs a TASK (with --space) or --suite FILE")
    if args.space is None:
        raise SearchError(
            "bench TASK needs --space (a built-in space: "
            f"{', '.join(BUILTIN_SPACES)}, or a .py file)"
        )
    # Loaded here: the benchmark's tables need pandas and its statistics SciPy.
    from search.bench import compare
    from search.bench.execute import check_jobs

    options = training(_given(args))
    use_light_backend([args.space], [options["trainer"]])
    task = command_task(args)
    contenders = compare.parse_contenders(args.contenders)
    check_jobs(args.jobs, [task], args.cluster)
    config = bench_config(task, args.task, args.space, contenders, options, **_run_options(args))
    prepared = compare.studies(config, task)  # validates every study before anything is written
    try:
        result = compare.run(config, task, prepared, jobs=args.jobs, cluster=args.cluster)
    except KeyboardInterrupt:
        _interrupted(config.folder)
        return 130
    _print_bench(result, task)
    return _stopped(result.stopped)


def _given(args: argparse.Namespace) -> dict[str, Any]:
    """The training options given on the command line (a suite's are overridden by them)."""
    return {name: getattr(args, name) for name in TRAINING if getattr(args, name) is not None}


def _run_options(args: argparse.Namespace) -> dict[str, Any]:
    return {name: getattr(args, name) for name in RUN_OPTIONS}


def _suite(args: argparse.Namespace) -> int:
    # Loaded here: the benchmark's tables need pandas and its statistics SciPy.
    from search.bench import compare
    from search.bench.suite_run import prepare, run_suite

    if args.task is not None or args.space is not None:
        raise SearchError(
            "--suite takes the tasks and spaces from the suite: leave out TASK and --space"
        )
    flags = [
        f"--{name.replace('_', '-')}" for name in TASK_OPTIONS if getattr(args, name) is not None
    ]
    if flags:
        raise SearchError(f"--suite takes {flags[0]} from its csv entries, not the command line")
    suite = load_suite(args.suite)
    given = _given(args)
    use_light_backend(
        [entry.space for entry in suite.entries],
        [training(entry.options, given)["trainer"] for entry in suite.entries],
    )
    contenders = compare.parse_contenders(args.contenders)
    prepared = prepare(suite, contenders, overrides=given, **_run_options(args))
    for entry in prepared:
        for note in entry.task.notes:
            print(note, file=sys.stderr)
    try:
        result = run_suite(suite, prepared, jobs=args.jobs, cluster=args.cluster)
    except KeyboardInterrupt:
        _interrupted(prepared[0].config.folder.parent)
        return 130
    _print_suite(result)
    return _stopped(result.stopped)


def _stopped(reasons: list[str]) -> int:
    """Why runs stopped before their budget, one line each; the exit code (1 if any did)."""
    for reason in reasons:
        print(f"search: {reason}", file=sys.stderr)
    return 1 if reasons else 0


def _interrupted(folder: Path) -> None:
    print(
        f"\ninterrupted: finished runs are kept under {folder}; resume with: "
        f"python -m search {shlex.join(sys.argv[1:])}",
        file=sys.stderr,
    )


def _print_suite(result: Any) -> None:
    import pandas as pd

    pd.set_option("display.width", 250)
    test = result.test
    print(
        f"\nsuite {result.folder.name}: {len(result.entries)} tasks, "
        f"{int(test['blocks'])} (task, seed) blocks; one row per contender, best mean rank "
        "first"
    )
    print(result.summary.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(
        f"\nFriedman test over the blocks: chi2 = {test['friedman_statistic']:.4g}, "
        f"p = {test['friedman_p']:.3g}; Nemenyi critical difference of mean ranks at "
        f"{test['alpha']}: {test['critical_difference']:.3g}"
    )
    if not math.isnan(test.get("test_friedman_p", math.nan)):
        print(
            "the same blocks ranked by the selected trials' test values (test_mean_rank): "
            f"chi2 = {test['test_friedman_statistic']:.4g}, p = {test['test_friedman_p']:.3g}; "
            "optimism: test minus validation of the selected trial, normalised as the score"
        )
    leader = result.summary["contender"].iloc[0]
    print(
        f"p_nemenyi: {leader} against each contender; score: 0 is the best value seen on a "
        "task, 1 random search's median (mean over tasks, 95% bootstrap interval over seeds)"
    )
    print("\nwritten:")
    for path in result.written:
        print(f"  {path}")
    for entry in result.entries:
        print(f"  {entry.folder}/ (runs.csv, finals.csv, summary.csv, curves.png, test.png)")


def _print_bench(result: Any, task: Any) -> None:
    import pandas as pd

    from search.bench.stats import random_reference

    pd.set_option("display.width", 250)
    table = result.summary.drop(columns=["versus", "test", "p_value"], errors="ignore")
    print(f"\nbenchmark {result.folder.name}: one row per contender, best mean rank first")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    try:
        name, value = task.best_baseline()
        print(f"\nbaseline: {name} test {task.headline} {value:.4g} (regret 0)")
    except ValueError:
        pass
    reference = random_reference(result.finals)
    if reference is not None:
        print(
            f"median test {task.headline} of random search: {reference:.4g} (regret 1 if worse "
            "than the baseline, -1 if better)"
        )
    leader = result.summary["contender"].iloc[0] if len(result.summary) else None
    if leader:
        print(
            f"p_holm: {leader} against each contender (Wilcoxon signed-rank over paired "
            "seeds, Holm-corrected); significant at 0.05"
        )
    print("\nwritten:")
    for path in result.written:
        print(f"  {path}")
