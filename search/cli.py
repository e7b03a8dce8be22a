"""The command line: argument parsing and printing. User errors end here as one line, exit 2.

``python -m search TASK [options]`` runs a search; ``list``, ``leaderboard``, ``predict`` and
``tensorboard`` are the other commands.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from search.errors import SearchError

COMMANDS = ("run", "list", "leaderboard", "predict", "tensorboard", "bench", "report")
DEFAULTS = {
    "trials": 20,
    "epochs": 100,
    "patience": 20,
    "top_k": 5,
    "ensemble": 5,
    "seed": 0,
    "executions": 1,
    "validation_split": 0.2,
}


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (not usage + error) and exits 2."""

    def error(self, message: str) -> NoReturn:
        print(f"search: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of seconds > 0, got {text!r}"
        ) from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port 1-65535, got {text!r}") from None
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"expected a port 1-65535, got {text!r}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m search",
        description="Tune Keras models with keras-tuner or Optuna; write leaderboards, "
        "TensorBoard logs and the best model. 'python -m search TASK' is short "
        "for 'python -m search run TASK'.",
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
        help="built-in space (linear, logistic, mlp) or a path to a "
        ".py file defining a search.Space subclass; default: every "
        "built-in space that fits the task",
    )
    run.add_argument("--engine", default="optuna", help="optuna (default) or keras-tuner")
    run.add_argument(
        "--algorithm",
        help="sampler / tuner; default tpe for optuna, random for keras-tuner (see 'list')",
    )
    run.add_argument(
        "--pruner",
        default=None,
        help="optuna pruner: none, median, hyperband, successive-halving "
        "(default median for optuna, none for keras-tuner)",
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
    run.add_argument("--out", default="results", help="results root (default %(default)s)")
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
        default=0,
        help="run a trial that was interrupted (kill, Ctrl-C) again up to this many times "
        "when the study resumes; 0 marks it failed (default %(default)s)",
    )
    run.add_argument(
        "--max-failures",
        type=_non_negative,
        default=10,
        help="stop the search after this many failed trials in a row (diverging losses); "
        "0 never stops (default %(default)s)",
    )
    run.add_argument(
        "--trainer",
        choices=("numpy", "keras", "compiled"),
        default="numpy",
        help="numpy (default): fit's training of Dense/Dropout chains in numpy, every fold "
        "at once, on any backend; keras: Keras fit; compiled: each training as one jitted "
        "JAX program (KERAS_BACKEND=jax). Models numpy or compiled cannot train go to fit",
    )
    run.add_argument(
        "--population",
        type=_positive,
        default=1,
        metavar="K",
        help="trials asked of the engine at once (Optuna's ask, keras-tuner's oracle); the "
        "numpy and compiled trainers train those whose models differ only in learning "
        "rate, dropout, penalties and clipping together, as one population. Pays off when "
        "many configurations share an architecture (default %(default)s: one at a time)",
    )
    run.add_argument(
        "--workers",
        type=_positive,
        default=1,
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
    csv = run.add_argument_group("csv task", "options of 'python -m search csv'")
    csv.add_argument("--data", help="CSV file with a header row")
    csv.add_argument("--target", help="name of the target column")
    csv.add_argument("--kind", help="regression, binary or multiclass (inferred if omitted)")
    csv.add_argument("--test-size", type=_fraction, help="test fraction (default 0.2)")

    commands.add_parser("list", help="list tasks, spaces, engines, algorithms and pruners")

    board = commands.add_parser("leaderboard", help="print the leaderboards as tables")
    board.add_argument("task", metavar="TASK", nargs="?", help="only this task's studies")
    board.add_argument("--out", default="results", help="results root (default %(default)s)")
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
    predict.add_argument("--out", default="results", help="results root (default %(default)s)")

    board = commands.add_parser(
        "tensorboard",
        help="inspect studies in TensorBoard (HParams, Scalars, Graphs)",
        description="Start TensorBoard over one study, every study of TASK, or every study, "
        "print its URL and serve until Ctrl-C.",
    )
    board.add_argument("task", metavar="TASK", nargs="?", help="only this task's studies")
    board.add_argument("study", metavar="STUDY", nargs="?", help="only this study of TASK")
    board.add_argument("--out", default="results", help="results root (default %(default)s)")
    board.add_argument("--port", type=_port, help="port to serve on (default: a free one)")
    board.add_argument(
        "--host", default="127.0.0.1", help="address to serve on (default %(default)s)"
    )
    _add_bench(commands)
    _add_report(commands)
    return parser


def _add_training(parser: Any) -> None:
    """How every configuration trains and is scored: options of both run and bench."""
    parser.add_argument(
        "--epochs",
        type=_positive,
        default=DEFAULTS["epochs"],
        help="maximum epochs per training (default %(default)s)",
    )
    parser.add_argument(
        "--patience",
        type=_non_negative,
        default=DEFAULTS["patience"],
        help="stop a training after this many epochs without improvement of "
        "the objective; 0 never stops early (default %(default)s)",
    )
    parser.add_argument(
        "--cv",
        type=_positive,
        default=None,
        help="K-fold cross-validation on the training split; 1 is one holdout "
        "split (default: 5 for boston, 1 for the other tasks)",
    )
    parser.add_argument(
        "--validation-split",
        type=_fraction,
        default=DEFAULTS["validation_split"],
        help="holdout fraction of the training split when --cv is 1 (default %(default)s)",
    )
    parser.add_argument(
        "--objective",
        help="validation metric to optimise, e.g. val_mse, "
        "val_mae, val_logloss, val_accuracy (default: val_mse "
        "for regression, val_logloss otherwise)",
    )


def _add_bench(commands: Any) -> None:
    from search.engines import CONTENDERS

    bench = commands.add_parser(
        "bench",
        help="benchmark engines and algorithms on a task: every contender with every seed",
        description="Run every contender with every seed as its own (resumable) study under "
        "OUT/bench/TASK-SPACE/studies, then write runs.csv, summary.csv, finals.csv, "
        "curves.png and test.png there and print the summary. Rerun the same command to "
        "resume an interrupted benchmark.",
    )
    bench.add_argument("task", metavar="TASK", help="a task name (see 'list') or 'csv'")
    bench.add_argument(
        "--space", required=True, help="built-in space (linear, logistic, mlp) or a .py file"
    )
    bench.add_argument(
        "--contenders",
        help="comma-separated ENGINE:ALGORITHM names (default: all of "
        f"{','.join(CONTENDERS)}; optuna:gp needs torch)",
    )
    bench.add_argument(
        "--seeds",
        type=_positive,
        default=5,
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
    _add_training(bench)
    bench.add_argument(
        "--pruner",
        default="none",
        help="pruner of the optuna contenders: none, median, hyperband, successive-halving "
        "(default %(default)s, so every contender is compared as a sampler)",
    )
    bench.add_argument(
        "--max-failures",
        type=_non_negative,
        default=0,
        help="stop a run after this many failed trials in a row; 0 (default) never stops, "
        "so every contender spends its whole budget",
    )
    bench.add_argument("--out", default="results", help="results root (default %(default)s)")
    bench.add_argument(
        "--no-tensorboard",
        dest="tensorboard",
        action="store_false",
        help="write no TensorBoard runs",
    )
    csv = bench.add_argument_group("csv task", "options of 'python -m search bench csv'")
    csv.add_argument("--data", help="CSV file with a header row")
    csv.add_argument("--target", help="name of the target column")
    csv.add_argument("--kind", help="regression, binary or multiclass (inferred if omitted)")
    csv.add_argument("--test-size", type=_fraction, help="test fraction (default 0.2)")


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
    report.add_argument("--out", default="results", help="results root (default %(default)s)")


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] not in COMMANDS and not args_list[0].startswith("-"):
        args_list.insert(0, "run")
    parser = build_parser()
    args = parser.parse_args(args_list)
    try:
        if args.command == "run":
            return _run(args, args_list)
        if args.command == "list":
            return _list()
        if args.command == "leaderboard":
            return _leaderboard(args)
        if args.command == "predict":
            return _predict(args)
        if args.command == "tensorboard":
            return _tensorboard(args)
        if args.command == "bench":
            return _bench(args)
        if args.command == "report":
            return _report(args)
        parser.print_help()
        return 2
    except SearchError as error:
        print(f"search: error: {error}", file=sys.stderr)
        return 2


def _list() -> int:
    from search.engines import ENGINES, PRUNERS
    from search.space import BUILTIN_SPACES, space_class
    from search.tasks import describe_tasks

    print("tasks:")
    for name, text in describe_tasks().items():
        print(f"  {name:<14} {text}")
    print("spaces:")
    for name in BUILTIN_SPACES:
        space = space_class(name)
        print(f"  {name:<14} {space.description} [{', '.join(space.kinds)}]")
    print("engines and algorithms:")
    for engine, algorithms in ENGINES.items():
        for algorithm, text in algorithms.items():
            print(f"  {engine + ':' + algorithm:<22} {text}")
    print("pruners (optuna):")
    for name, text in PRUNERS.items():
        print(f"  {name:<20} {text}")
    return 0


def _load_task(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The task of a run or bench command and the csv task's options; notes on stderr."""
    from search.tasks import load_task

    options = {
        "data": args.data,
        "target": args.target,
        "kind": args.kind,
        "test_size": args.test_size,
    }
    options = {k: v for k, v in options.items() if v is not None}
    task = load_task(args.task, **options)
    for note in task.notes:
        print(note, file=sys.stderr)
    return task, options


def _run(args: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    task, task_options = _load_task(args)

    import spaces as builtin
    from search.engines import check_engine

    if args.space and builtin.unknown(args.space):
        raise SearchError(str(builtin.unknown(args.space)))
    algorithm = check_engine(
        args.engine,
        args.algorithm,
        args.pruner or ("median" if args.engine == "optuna" else "none"),
    )
    pruner = args.pruner or ("median" if args.engine == "optuna" else "none")
    if args.engine == "keras-tuner" and args.storage:
        raise SearchError(
            "--storage is for the optuna engine; keras-tuner's study lives in the chief's "
            "project folder (several hosts: set KERASTUNER_TUNER_ID, KERASTUNER_ORACLE_IP "
            "and KERASTUNER_ORACLE_PORT, see the README)"
        )
    if args.engine == "keras-tuner" and args.population > 1 and args.workers > 1:
        raise SearchError(
            "--population with --workers is for the optuna engine; keras-tuner's workers "
            "take one trial at a time from the chief (use one of the two)"
        )
    if args.storage:
        from search.storage import check_url

        check_url(args.storage)
    objective, direction = _objective(args.objective, task)
    out = Path(args.out)
    _check_writable(out)
    if args.workers > 1:
        from search.worker import prestart

        prestart(args.workers)  # they import TensorFlow alongside this process

    from search import study as studies  # Keras loads here, after the cheap checks
    from search.space import spaces_for
    from search.training import Settings

    spaces = [args.space] if args.space else spaces_for(task.spec.kind)
    settings = Settings(
        epochs=args.epochs,
        patience=args.patience,
        cv=args.cv or task.default_cv,
        executions=args.executions,
        validation_split=args.validation_split,
        seed=args.seed,
    )
    if settings.cv > len(task.x_train) // 2:
        raise SearchError(f"--cv {settings.cv} is too many folds for {len(task.x_train)} rows")
    configs = []
    for space in spaces:
        name = args.study or studies.default_study_name(space, args.engine, algorithm)
        if args.study and len(spaces) > 1:
            name = f"{args.study}-{space}"
        config = studies.StudyConfig(
            task=studies.check_name("task", args.task),
            space=space,
            engine=args.engine,
            algorithm=algorithm,
            pruner=pruner,
            trials=args.trials,
            settings=settings,
            objective=objective,
            direction=direction,
            study=name,
            out=out,
            top_k=args.top_k,
            ensemble=args.ensemble,
            tensorboard=args.tensorboard,
            retries=args.retries,
            max_failures=args.max_failures,
            storage=args.storage,
            workers=args.workers,
            trainer=args.trainer,
            population=args.population,
            task_options=task_options,
        )
        # Everything is validated before anything moves: --fresh sets aside the old study
        # only once the new one is known to be valid.
        configs.append((config, studies.prepare(config, task, fresh=args.fresh)))
    results = []
    for config, space_model in configs:
        if args.fresh:
            _move_aside(out, config)
        try:
            results.append(_run_one(config, task, space_model))
        except KeyboardInterrupt:
            again = [a for a in (argv or sys.argv[1:]) if a != "--fresh"]
            print(
                f"\ninterrupted: {config.task}/{config.study} keeps its finished trials "
                f"(leaderboard: {studies.study_folder(out, config.task, config.study)}"
                f"/leaderboard.csv); resume with: python -m search {shlex.join(again)}",
                file=sys.stderr,
            )
            return 130
    _print_results(task, results, out)
    stopped = [r for r in results if r.stopped]
    for result in stopped:
        print(f"search: {result.summary['study']}: {result.stopped}", file=sys.stderr)
    return 1 if stopped else 0


def _run_one(config: Any, task: Any, space: Any, also: Any = None) -> Any:
    from tqdm import tqdm

    from search import study as studies

    bar = tqdm(
        total=config.trials,
        desc=f"{config.task}/{config.study}",
        unit="trial",
        file=sys.stderr,
        dynamic_ncols=True,
        leave=True,
    )

    def on_trial(records: list[Any]) -> None:
        from search.engines import budget_used
        from search.leaderboard import rank_complete

        if also is not None:
            also(records)
        bar.n = budget_used(records)
        ranked = rank_complete(records, config.direction)
        if ranked:
            bar.set_postfix_str(f"best {config.objective}={ranked[0].value:.4g}", refresh=False)
        bar.refresh()

    try:
        return studies.run(config, task, space, on_trial)
    finally:
        bar.close()


def _print_results(task: Any, results: list[Any], out: Path) -> None:
    import pandas as pd

    from search.leaderboard import trial_table

    for result in results:
        summary = result.summary
        print(
            f"\n{summary['task']}/{summary['study']}: {summary['complete']} complete, "
            f"{summary['pruned']} pruned, {summary['failed']} failed trials in "
            f"{summary['wall_seconds']:.0f} s"
        )
        table = trial_table(result.records, result.scores, summary["direction"], task.metrics)
        shown = table[table["rank"].notna()].head(5)
        columns = ["rank", "trial", "value", f"test_{task.headline}", "epochs", "best_epoch"]
        columns += [c for c in shown.columns if c not in columns and c not in _NOT_PARAMS]
        print(shown[columns].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    rows = [{"baseline": name, **values} for name, values in task.baselines.items()]
    print(f"\nbaselines on the {task.spec.name} test split:")
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print("\nwritten:")
    for result in results:
        for path in result.written[:-1]:
            print(f"  {path}")
    print(f"  {out / 'leaderboard.csv'}")
    inspect = [r for r in results if r.folder / "tensorboard" in r.written]
    if inspect:
        where = "" if str(out) == "results" else f" --out {shlex.quote(str(out))}"
        print("\ninspect in TensorBoard:")
        for result in inspect:
            summary = result.summary
            print(f"  python -m search tensorboard {summary['task']} {summary['study']}{where}")


_NOT_PARAMS = {"state", "error", "seconds", "seed", "params"} | {
    f"{split}_{m}" for split in ("val", "test") for m in ("mse", "mae", "logloss", "accuracy")
}


def _objective(name: str | None, task: Any) -> tuple[str, str]:
    if name is None:
        return task.objective, task.direction
    valid = [f"val_{metric}" for metric in task.metrics]
    if name not in valid:
        raise SearchError(
            f"unknown objective {name!r} for a {task.spec.kind} task; choose "
            f"one of {', '.join(valid)}"
        )
    from search.tasks import maximised

    return name, "max" if maximised(name) else "min"


def _check_writable(out: Path) -> None:
    """Refuse an unwritable results root before anything runs (nothing is created yet)."""
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise SearchError(f"results directory {str(out)!r} is not writable; pass --out DIR")


def _move_aside(out: Path, config: Any) -> None:
    from search.study import study_folder

    folder = study_folder(out, config.task, config.study)
    if folder.exists():
        trash = out / ".trash" / config.task / f"{config.study}-{time.strftime('%Y%m%d-%H%M%S')}"
        trash.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(folder), trash)
        print(f"moved the old study to {trash}", file=sys.stderr)


def _rebuild_leaderboards(out: Path, task: str | None, storage: str | None) -> None:
    """Each study's trial CSV, rebuilt from its engine storage (every worker's trials)."""
    import contextlib

    from search.files import read_json
    from search.leaderboard import rebuild, write_study_table

    folders = [p.parent for p in sorted(out.glob(f"{task or '*'}/*/study.json"))]
    folders = [f for f in folders if read_json(f / "study.json").get("summary")]
    for folder in folders:
        try:
            rebuild(folder, storage)
        except (SearchError, OSError, KeyError) as error:
            print(
                f"search: note: {folder.parent.name}/{folder.name}: {error}; its table is "
                "the one written by its last run",
                file=sys.stderr,
            )
    if folders:
        # A read-only results root: the tables are printed from study.json all the same.
        with contextlib.suppress(OSError):
            write_study_table(out)


def _leaderboard(args: argparse.Namespace) -> int:
    import pandas as pd

    from search.leaderboard import study_table

    out = Path(args.out)
    _rebuild_leaderboards(out, args.task, args.storage)
    table = study_table(out)
    if args.task:
        table = table[table["task"] == args.task]
    if table.empty:
        raise SearchError(
            f"no finished studies under {str(out)!r}"
            + (f" for task {args.task!r}" if args.task else "")
        )
    pd.set_option("display.width", shutil.get_terminal_size().columns)
    columns = [
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
    print(table[columns].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    for _, row in table.iterrows():
        trials = pd.read_csv(out / row["task"] / row["study"] / "leaderboard.csv")
        print(f"\n{row['task']}/{row['study']}:")
        print(
            trials.head(10)
            .drop(columns=["error"])
            .to_string(index=False, float_format=lambda v: f"{v:.4g}")
        )
    return 0


def _predict(args: argparse.Namespace) -> int:
    import numpy as np

    from search.files import read_json, write_text
    from search.leaderboard import find_study
    from search.tasks import read_features

    folder = find_study(Path(args.out), args.task, args.study)
    model_path = folder / "best.keras"
    if not model_path.exists():
        raise SearchError(f"no best model at {model_path}; run the study first")
    config = read_json(folder / "study.json")["config"]
    x = read_features(args.data, tuple(config["features"]))

    import keras

    model = keras.saving.load_model(model_path, safe_mode=True)
    predictions = np.asarray(model.predict(x, verbose=0))
    frame = _prediction_frame(predictions, config["kind"], config.get("classes", []))
    text = frame.to_csv(index=False)
    if args.output:
        write_text(Path(args.output), text)
        print(f"wrote {len(frame)} predictions to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _prediction_frame(predictions: Any, kind: str, classes: list[str]) -> Any:
    import numpy as np
    import pandas as pd

    if kind == "regression":
        return pd.DataFrame({"prediction": predictions.reshape(-1)})
    if kind == "binary":
        probability = predictions.reshape(-1)
        labels = np.asarray(classes or ["0", "1"])[(probability > 0.5).astype(int)]
        return pd.DataFrame({"prediction": labels, "probability": probability})
    names = classes or [str(i) for i in range(predictions.shape[1])]
    frame = pd.DataFrame(predictions, columns=[f"probability_{name}" for name in names])
    frame.insert(0, "prediction", np.asarray(names)[predictions.argmax(axis=1)])
    return frame


def _tensorboard(args: argparse.Namespace) -> int:
    """Serve the studies' logs with TensorBoard until Ctrl-C; the server is stopped after."""
    import signal
    import subprocess
    import threading

    from search import tensorboard

    out = Path(args.out)
    logdirs = tensorboard.study_logdirs(out, args.task, args.study)
    root = out / args.task if args.task else out
    names = [str(logdir.parent.relative_to(root)) for logdir in logdirs]
    port = args.port or tensorboard.free_port(args.host)
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{port}/"
    # `kill PID` stops the server and removes the temporary view as Ctrl-C does.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
    with tensorboard.view(logdirs, names) as logdir:
        process = subprocess.Popen(tensorboard.server_command(logdir, args.host, port))
        try:
            tensorboard.wait_until_serving(process, url)
            what = f"{len(names)} studies" if len(names) > 1 else f"study {names[0]}"
            print(f"TensorBoard over {what} at {url} (HParams: {url}#hparams)", flush=True)
            print("press Ctrl-C to stop it", flush=True)
            return process.wait()
        except KeyboardInterrupt:
            return 0
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _bench(args: argparse.Namespace) -> int:
    from search import bench
    from search.study import check_name
    from search.training import Settings

    task, task_options = _load_task(args)
    contenders = bench.parse_contenders(args.contenders)
    objective, direction = _objective(args.objective, task)
    out = Path(args.out)
    _check_writable(out)
    settings = Settings(
        epochs=args.epochs,
        patience=args.patience,
        cv=args.cv or task.default_cv,
        validation_split=args.validation_split,
    )
    if settings.cv > len(task.x_train) // 2:
        raise SearchError(f"--cv {settings.cv} is too many folds for {len(task.x_train)} rows")
    config = bench.BenchConfig(
        task=check_name("task", args.task),
        space=args.space,
        contenders=contenders,
        seeds=args.seeds,
        trials=None if args.time_budget else int(args.trials or DEFAULTS["trials"]),
        time_budget=args.time_budget,
        settings=settings,
        objective=objective,
        direction=direction,
        out=out,
        pruner=args.pruner,
        tensorboard=args.tensorboard,
        max_failures=args.max_failures,
        task_options=task_options,
    )
    prepared = bench.prepare(config, task)  # validates every study before anything is written
    try:
        result = bench.run(config, task, prepared, _run_one)
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: finished runs are kept under {config.folder}; resume with: "
            f"python -m search {shlex.join(sys.argv[1:])}",
            file=sys.stderr,
        )
        return 130
    _print_bench(result, task)
    for reason in result.stopped:
        print(f"search: {reason}", file=sys.stderr)
    return 1 if result.stopped else 0


def _print_bench(result: Any, task: Any) -> None:
    import pandas as pd

    from search.bench_stats import random_reference

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


def _report(args: argparse.Namespace) -> int:
    from search import report
    from search.leaderboard import find_study

    out = Path(args.out)
    folder = find_study(out, args.task, args.study)
    written = report.render(folder)
    print(f"report of {args.task}/{folder.name}:")
    for path in written:
        print(f"  {path}")
    return 0
