"""The commands: each parses nothing and decides nothing; it calls the API and prints.

User errors (:class:`search.SearchError`) end here as one line on stderr and exit code 2;
failures of the environment (:func:`search.errors.environment_fault`: a full disk, a lost
permission, an unreachable storage, a damaged file) as one line and exit code 1. ``--debug``
(or ``SEARCH_DEBUG=1``) shows their tracebacks.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from search.bench import BenchConfig
from search.bench.suite import builtin_suites, load_suite
from search.cli.parser import BENCH_DEFAULTS, COMMANDS, DEBUG_VARIABLE, DEFAULTS, build_parser
from search.engines.base import ENGINES, PRUNERS
from search.errors import SearchError, environment_fault
from search.files import write_text
from search.layout import check_name
from search.space import BUILTIN_SPACES, space_class, spaces_for, unknown_space
from search.study.api import Study
from search.study.callbacks import mlflow
from search.study.config import check_objective
from search.study.enqueue import read_configurations
from search.study.workers import prestart
from search.tasks import ALL_METRICS, describe_tasks, load_task
from search.trainers import Settings, light_backend

# What a command needs beyond these (pandas for tables, SciPy for statistics, Keras for a
# study's run) is imported inside it: `search list`, `--help` and a refused option do not
# wait seconds for libraries they never use.


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args_list or os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")
    args_list = [arg for arg in args_list if arg != "--debug"]
    if args_list and args_list[0] not in COMMANDS and not args_list[0].startswith("-"):
        args_list.insert(0, "run")
    parser = build_parser()
    args = parser.parse_args(args_list)
    _show_notes()
    try:
        return _command(parser, args, args_list)
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


def _show_notes() -> None:
    """What the library recovered from (a torn journal record, a reconnection): one line
    each on stderr."""
    log = logging.getLogger("search")
    if not any(isinstance(handler, _Notes) for handler in log.handlers):
        log.addHandler(_Notes())
        log.setLevel(logging.INFO)
        log.propagate = False


class _Notes(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        # sys.stderr when the note is written, not when the CLI started (tests swap it).
        print(f"search: note: {record.getMessage()}", file=sys.stderr)


def _command(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str]) -> int:
    if args.command == "run":
        return _run(args, argv)
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


def _list() -> int:

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
    print("suites (bench --suite NAME):")
    for name in builtin_suites():
        entries = load_suite(name).entries
        print(f"  {name:<14} {', '.join(entry.name for entry in entries)}")
    return 0


def _load_task(args: argparse.Namespace) -> Any:
    """The task of a run or bench command (the csv task's options); notes on stderr."""

    options = {
        "data": args.data,
        "target": args.target,
        "kind": args.kind,
        "test_size": args.test_size,
    }
    task = load_task(args.task, **{k: v for k, v in options.items() if v is not None})
    for note in task.notes:
        print(note, file=sys.stderr)
    return task


def _use_light_backend(spaces: Sequence[str | None], trainers: Sequence[str]) -> None:
    """Keras' numpy backend for this process and the ones it starts, where every study
    builds a built-in space (``None``: the task's own) with the numpy trainer.

    Built-in spaces need no ``fit``, which Keras' numpy backend lacks; a space of the user's
    might, so it keeps Keras' own backend. Called before anything imports Keras.
    """
    builtin = all(space is None or space in BUILTIN_SPACES for space in spaces)
    backends = {light_backend(trainer) for trainer in trainers}
    if builtin and len(backends) == 1 and (backend := backends.pop()):
        os.environ["KERAS_BACKEND"] = backend  # workers and bench jobs inherit it


def _run(args: argparse.Namespace, argv: Sequence[str]) -> int:

    # Cheap checks first: a mistyped space is refused before the task loads.
    if args.space and unknown_space(args.space):
        raise SearchError(str(unknown_space(args.space)))
    _use_light_backend([args.space], [args.trainer])
    task = _load_task(args)
    if args.workers > 1:
        prestart(args.workers)  # they import Keras alongside this process

    names = [args.space] if args.space else spaces_for(task.spec.kind)
    studies = []
    for space in names:
        name = args.study
        if args.study is not None and len(names) > 1:
            name = f"{args.study}-{space}"
        study = Study(
            task,
            space,
            engine=args.engine,
            algorithm=args.algorithm,
            pruner=args.pruner,
            objective=args.objective,
            name=name,
            out=args.out,
            seed=args.seed,
            epochs=args.epochs,
            patience=args.patience,
            cv=args.cv,
            executions=args.executions,
            validation_split=args.validation_split,
            top_k=args.top_k,
            ensemble=args.ensemble,
            tensorboard=args.tensorboard,
            retries=args.retries,
            max_failures=args.max_failures,
            storage=args.storage,
            workers=args.workers,
            trainer=args.trainer,
            population=args.population,
            max_params=args.max_params,
        )
        if args.enqueue:
            study.enqueue(read_configurations(args.enqueue), f"--enqueue {args.enqueue}")
        if args.warm_start:
            study.warm_start(args.warm_start)
        # Everything is validated before anything moves: --fresh sets aside the old study
        # only once every new one is known to be valid.
        study.check(fresh=args.fresh)
        studies.append(study)
    callbacks = []
    if args.mlflow:
        callbacks.append(mlflow(args.mlflow, studies[0].config.objective))
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
    _print_results(task, results, Path(args.out))
    stopped = [r for r in results if r.stopped]
    for result in stopped:
        print(f"search: {result.summary['study']}: {result.stopped}", file=sys.stderr)
    return 1 if stopped else 0


def _print_results(task: Any, results: list[Any], out: Path) -> None:
    import pandas as pd

    for result in results:
        summary = result.summary
        print(
            f"\n{summary['task']}/{summary['study']}: {summary['complete']} complete, "
            f"{summary['pruned']} pruned, {summary['failed']} failed trials in "
            f"{summary['wall_seconds']:.0f} s"
            + (" (the time budget ended it)" if summary.get("ended_by") == "time budget" else "")
        )
        table = result.leaderboard
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
    f"{split}_{m}" for split in ("val", "test") for m in ALL_METRICS
}


def _leaderboard(args: argparse.Namespace) -> int:
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
    from search.study.stored import find_study, predict

    frame = predict(find_study(Path(args.out), args.task, args.study), args.data)
    text = frame.to_csv(index=False)
    if args.output:
        write_text(Path(args.output), text)
        print(f"wrote {len(frame)} predictions to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _tensorboard(args: argparse.Namespace) -> int:
    """Serve the studies' logs with TensorBoard until Ctrl-C; the server is stopped after."""
    import signal
    import subprocess
    import threading

    from search.cli import tensorboard_server
    from search.results import tensorboard

    out = Path(args.out)
    logdirs = tensorboard.study_logdirs(out, args.task, args.study)
    tensorboard.add_missing_graphs(logdirs)
    root = out / args.task if args.task else out
    names = [str(logdir.parent.relative_to(root)) for logdir in logdirs]
    port = args.port or tensorboard_server.free_port(args.host)
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{port}/"
    # `kill PID` stops the server and removes the temporary view as Ctrl-C does.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
    with tensorboard.view(logdirs, names) as logdir:
        process = subprocess.Popen(tensorboard_server.server_command(logdir, args.host, port))
        try:
            tensorboard_server.wait_until_serving(process, url)
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
    if args.suite is not None:
        return _bench_suite(args)
    if args.task is None:
        raise SearchError("bench needs a TASK (with --space) or --suite FILE")
    if args.space is None:
        raise SearchError(
            "bench TASK needs --space (a built-in space: "
            f"{', '.join(BUILTIN_SPACES)}, or a .py file)"
        )
    from search.bench import compare
    from search.bench.execute import check_jobs

    _use_light_backend([args.space], [_bench_training(args)["trainer"]])
    task = _load_task(args)
    contenders = compare.parse_contenders(args.contenders)
    check_jobs(args.jobs, [task])
    objective, direction = check_objective(args.objective, task)
    training = _bench_training(args)
    config = BenchConfig(
        task=check_name("task", args.task),
        space=args.space,
        contenders=contenders,
        seeds=args.seeds,
        trials=None if args.time_budget else int(args.trials or DEFAULTS["trials"]),
        time_budget=args.time_budget,
        settings=Settings(
            epochs=training["epochs"],
            patience=training["patience"],
            cv=args.cv or task.default_cv,
            executions=1,
            validation_split=training["validation_split"],
            seed=0,
        ),
        objective=objective,
        direction=direction,
        out=Path(args.out),
        pruner=training["pruner"],
        tensorboard=args.tensorboard,
        max_failures=args.max_failures,
        trainer=training["trainer"],
    )
    prepared = compare.studies(config, task)  # validates every study before anything is written
    try:
        result = compare.run(config, task, prepared, jobs=args.jobs)
    except KeyboardInterrupt:
        _interrupted(config.folder)
        return 130
    _print_bench(result, task)
    for reason in result.stopped:
        print(f"search: {reason}", file=sys.stderr)
    return 1 if result.stopped else 0


def _bench_training(args: argparse.Namespace) -> dict[str, Any]:
    """The single-task benchmark's training options: the given ones, else the defaults."""
    given = _given_training(args)
    return {
        "epochs": given.get("epochs", DEFAULTS["epochs"]),
        "patience": given.get("patience", DEFAULTS["patience"]),
        "validation_split": given.get("validation_split", DEFAULTS["validation_split"]),
        "pruner": given.get("pruner", BENCH_DEFAULTS["pruner"]),
        "trainer": given.get("trainer", BENCH_DEFAULTS["trainer"]),
    }


def _given_training(args: argparse.Namespace) -> dict[str, Any]:
    """The training options given on the command line (a suite's are overridden by them)."""
    names = ("epochs", "patience", "cv", "validation_split", "objective", "trainer", "pruner")
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def _bench_suite(args: argparse.Namespace) -> int:
    from search.bench import compare
    from search.bench.suite_run import TRAINING_DEFAULTS, prepare, run_suite

    if args.task is not None or args.space is not None:
        raise SearchError(
            "--suite takes the tasks and spaces from the suite: leave out TASK and --space"
        )
    csv = [f"--{n.replace('_', '-')}" for n in ("data", "target", "kind", "test_size")]
    flags = [flag for flag in csv if getattr(args, flag[2:].replace("-", "_")) is not None]
    if flags:
        raise SearchError(f"--suite takes {flags[0]} from its csv entries, not the command line")
    suite = load_suite(args.suite)
    given = _given_training(args)
    _use_light_backend(
        [entry.space for entry in suite.entries],
        [(TRAINING_DEFAULTS | entry.options | given)["trainer"] for entry in suite.entries],
    )
    contenders = compare.parse_contenders(args.contenders)
    prepared = prepare(
        suite,
        contenders,
        out=args.out,
        seeds=args.seeds,
        trials=args.trials,
        time_budget=args.time_budget,
        overrides=given,
        tensorboard=args.tensorboard,
        max_failures=args.max_failures,
    )
    for entry in prepared:
        for note in entry.task.notes:
            print(note, file=sys.stderr)
    try:
        result = run_suite(suite, prepared, jobs=args.jobs)
    except KeyboardInterrupt:
        _interrupted(prepared[0].config.folder.parent)
        return 130
    _print_suite(result)
    for reason in result.stopped:
        print(f"search: {reason}", file=sys.stderr)
    return 1 if result.stopped else 0


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


def _report(args: argparse.Namespace) -> int:
    from search.study.stored import find_study, render_report

    folder = find_study(Path(args.out), args.task, args.study)
    written = render_report(folder)
    print(f"report of {args.task}/{folder.name}:")
    for path in written:
        print(f"  {path}")
    return 0
