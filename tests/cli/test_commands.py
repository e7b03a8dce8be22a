"""The commands through the CLI's entry point in this process: every task x engine, every
algorithm, resume, seeds, list, leaderboard and predict.

Each command runs once, when the first test that needs it asks (``search.cli.main``, its
stdout and stderr captured); a few run as real ``python -m search`` processes in
``tests/system/test_cli.py``. Budgets: 2 trials of 2 epochs.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from conftest import call_cli, describe

from search.engines import DEFAULT_ALGORITHM, ENGINES, PRUNERS
from search.space_lookup import BUILTIN_SPACES, spaces_for
from search.tasks import load_task, task_names
from search.tasks.tabular import BENCHMARKS

pytestmark = pytest.mark.slow

SMALL = ("--trials", "2", "--epochs", "2", "--top-k", "1", "--seed", "7", "--no-tensorboard")
ENGINE_NAMES = list(ENGINES)
CSV_CLASSES = ("low", "mid", "high")
# The pruner each optuna algorithm runs with, so that every pruner that acts per epoch runs
# once too (wilcoxon needs --cv 4: tests/engines/test_wilcoxon.py; pbt takes none).
PRUNER_OF = {
    "tpe": "median",
    "random": "none",
    "cmaes": "hyperband",
    "gp": "median",
    "qmc": "successive-halving",
    "nsga2": "none",
    "nsga3": "median",
    "pbt": "none",
}


@dataclass(frozen=True)
class Run:
    """A finished command and the results root it wrote (for predict: the output file)."""

    proc: subprocess.CompletedProcess[str]
    out: Path


def write_csv_task(folder: Path) -> Path:
    """A small multiclass CSV: three numeric features, a text target with three classes."""
    rows = ["f1,f2,f3,label"]
    for i in range(45):
        rows.append(f"{i * 0.37 % 5:.3f},{(i * 7) % 11},{i % 4 - 1.5},{CSV_CLASSES[i % 3]}")
    path = folder / "table.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def task_args(task: str, engine: str, csv: Path) -> list[str]:
    extra = ["--data", str(csv), "--target", "label"] if task == "csv" else []
    return [task, "--engine", engine, *extra, *SMALL]


def kind_of(task: str) -> str:
    return "multiclass" if task == "csv" else load_task(task).spec.kind


def study_name(space: str, engine: str, algorithm: str | None = None) -> str:
    return f"{space}-{engine}-{algorithm or DEFAULT_ALGORITHM[engine]}"


def algorithm_args(engine: str, algorithm: str) -> list[str]:
    pruner = ["--pruner", PRUNER_OF[algorithm]] if engine == "optuna" else []
    return ["boston", "--space", "mlp", "--engine", engine, "--algorithm", algorithm, *pruner]


def is_engine_default(engine: str, algorithm: str) -> bool:
    """The default algorithm's mlp study is already part of the boston run of that engine."""
    return DEFAULT_ALGORITHM[engine] == algorithm


class Jobs:
    """The commands of this module, by key; each runs once and writes under its own results
    root."""

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        self.factory = factory
        self.csv = write_csv_task(factory.mktemp("csv-task"))
        self._done: dict[tuple[str, ...], Run] = {}

    def get(self, key: tuple[str, ...], make: Callable[[], Run]) -> Run:
        if key not in self._done:
            self._done[key] = make()
        return self._done[key]

    def run(self, key: tuple[str, ...], args: list[str]) -> Run:
        """``args`` with ``--out`` a fresh results root (once per key)."""

        def make() -> Run:
            out = self.factory.mktemp("-".join(key))
            return Run(call_cli([*args, "--out", str(out)]), out)

        return self.get(key, make)

    def task(self, task: str, engine: str) -> Run:
        return self.run(("task", task, engine), task_args(task, engine, self.csv))

    def boston(self) -> Run:
        """``boston`` with Optuna: every space that fits the task."""
        return self.task("boston", "optuna")


def _resume(factory: pytest.TempPathFactory, first: Run) -> Run:
    """Copy the finished 2-trial run and rerun the same command with --trials 3."""
    out = factory.mktemp("resume") / "out"
    shutil.copytree(first.out, out)
    args = [*task_args("boston", "optuna", Path()), "--out", str(out)]
    args[args.index("--trials") + 1] = "3"
    return Run(call_cli(args), out)


def _predict(folder: Path, first: Run) -> Run:
    task = load_task("boston")
    names = list(task.spec.feature_names)
    frame = pd.DataFrame(task.x_test, columns=names)
    frame.insert(0, "id", range(len(frame)))
    data = folder / "features.csv"
    frame[["id", *reversed(names)]].to_csv(data, index=False)  # column order must not matter
    output = folder / "predictions.csv"
    args = ["predict", "boston", "--data", data, "--output", output, "--out", first.out]
    return Run(call_cli(args), output)


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> Jobs:
    return Jobs(tmp_path_factory)


def assert_ok(run: Run) -> None:
    assert run.proc.returncode == 0, describe(run.proc)
    assert "Traceback" not in run.proc.stderr, describe(run.proc)


def check_study(run: Run, task: str, study: str, rows: int | None) -> pd.DataFrame:
    """The study's files exist and parse; ``rows`` trial rows (None: at least 1)."""
    folder = run.out / task / study
    table = pd.read_csv(folder / "leaderboard.csv")
    if rows is None:
        assert len(table) >= 1
    else:
        assert len(table) == rows, table
    assert table["trial"].is_unique
    assert set(table["state"]) <= {"complete", "pruned", "failed"}
    assert (table["state"] == "complete").any(), table
    assert (folder / "best.keras").is_file(), "the rank-1 trial is retrained and saved"
    studies = pd.read_csv(run.out / "leaderboard.csv")
    row = studies[(studies["task"] == task) & (studies["study"] == study)]
    assert len(row) == 1, studies
    assert int(row["trials"].iloc[0]) == len(table)
    return table


def task_cases() -> list[object]:
    # The tabular benchmarks train nothing and save no model: tests/tasks/test_tabular.py
    # runs them with both engines.
    return [
        pytest.param(task, engine, id=f"{task}-{engine}")
        for task in task_names()
        if task not in BENCHMARKS
        for engine in ENGINE_NAMES
    ]


@pytest.mark.parametrize(("task", "engine"), task_cases())
def test_every_task_runs_with_both_engines(jobs: Jobs, task: str, engine: str) -> None:
    run = jobs.task(task, engine)
    assert_ok(run)
    expected = [study_name(space, engine) for space in spaces_for(kind_of(task))]
    for study in expected:
        check_study(run, task, study, rows=2)
    studies = pd.read_csv(run.out / "leaderboard.csv")
    assert sorted(studies["study"]) == sorted(expected)
    assert set(studies["task"]) == {task}


ALGORITHMS = [f"{engine}:{algorithm}" for engine, table in ENGINES.items() for algorithm in table]


@pytest.mark.parametrize("case", ALGORITHMS, ids=ALGORITHMS)
def test_every_algorithm_runs(jobs: Jobs, case: str) -> None:
    engine, algorithm = case.split(":")
    if algorithm == "gp":
        pytest.importorskip("torch", reason="Optuna's GP sampler needs PyTorch (extra 'gp')")
    if is_engine_default(engine, algorithm):
        run = jobs.task("boston", engine)
    else:
        args = [*algorithm_args(engine, algorithm), *SMALL]
        run = jobs.run(("algorithm", engine, algorithm), args)
    assert_ok(run)
    study = study_name("mlp", engine, algorithm)
    table = check_study(run, "boston", study, rows=None if algorithm == "hyperband" else 2)
    if algorithm == "hyperband":
        assert len(table) <= 2
    row = pd.read_csv(run.out / "leaderboard.csv").set_index("study").loc[study]
    assert (row["engine"], row["algorithm"]) == (engine, algorithm)
    assert row["pruner"] == (PRUNER_OF[algorithm] if engine == "optuna" else "none")


def test_default_space_runs_every_fitting_space(jobs: Jobs) -> None:
    run = jobs.boston()
    assert_ok(run)
    folders = sorted(path.name for path in (run.out / "boston").iterdir())
    assert folders == ["linear-optuna-tpe", "mlp-optuna-tpe"]
    studies = pd.read_csv(run.out / "leaderboard.csv")
    assert sorted(studies["space"]) == ["linear", "mlp"]
    for line in ("boston/linear-optuna-tpe:", "boston/mlp-optuna-tpe:"):
        assert line in run.proc.stdout


def params_of(run: Run, study: str) -> pd.DataFrame:
    """The hyperparameter columns of every trial, in trial order."""
    table = pd.read_csv(run.out / "boston" / study / "leaderboard.csv")
    # The ensemble's weights (after the test metrics) change as trials are added.
    table = table.drop(columns=["ensemble_weight"], errors="ignore")
    table = table.sort_values("trial").reset_index(drop=True)
    head = table.columns.get_loc("test_mae") + 1
    tail = table.columns.get_loc("epochs")
    return table.iloc[:, head:tail]


def test_rerun_with_more_trials_resumes(
    jobs: Jobs, tmp_path_factory: pytest.TempPathFactory
) -> None:
    first = jobs.boston()
    resumed = jobs.get(("resume",), lambda: _resume(tmp_path_factory, first))
    assert_ok(first)
    assert_ok(resumed)
    for study in ("linear-optuna-tpe", "mlp-optuna-tpe"):
        table = pd.read_csv(resumed.out / "boston" / study / "leaderboard.csv")
        assert sorted(table["trial"]) == [0, 1, 2]
        before, after = params_of(first, study), params_of(resumed, study)
        pd.testing.assert_frame_equal(before, after.iloc[:2][before.columns])
        # The resumed sampler goes on, rather than proposing trial 0's values again.
        new = after.iloc[2]
        assert not any(new.equals(after.iloc[i]) for i in (0, 1)), after
    studies = pd.read_csv(resumed.out / "leaderboard.csv")
    assert list(studies["trials"]) == [3, 3]


def test_same_seed_gives_the_same_hyperparameters(jobs: Jobs) -> None:
    first = jobs.boston()
    second = jobs.run(("again", "boston", "optuna"), task_args("boston", "optuna", jobs.csv))
    assert_ok(first)
    assert_ok(second)
    for study in ("linear-optuna-tpe", "mlp-optuna-tpe"):
        pd.testing.assert_frame_equal(params_of(first, study), params_of(second, study))
        seeds = [pd.read_csv(r.out / "boston" / study / "leaderboard.csv") for r in (first, second)]
        assert sorted(seeds[0]["seed"]) == sorted(seeds[1]["seed"])


def test_list_names_everything() -> None:
    run = Run(call_cli(["list"]), Path())
    assert_ok(run)
    first_words = {line.split()[0] for line in run.proc.stdout.splitlines() if line.strip()}
    assert set(task_names()) <= first_words
    assert set(BUILTIN_SPACES) <= first_words
    assert {f"{e}:{a}" for e, table in ENGINES.items() for a in table} <= first_words
    assert set(PRUNERS) <= first_words


def test_leaderboard_command_prints_tables(jobs: Jobs) -> None:
    first = jobs.boston()
    run = Run(call_cli(["leaderboard", "boston", "--out", first.out]), first.out)
    assert_ok(run)
    lines = run.proc.stdout.splitlines()
    header = lines[0].split()
    assert header[:3] == ["task", "study", "trials"]
    assert {"best_value", "test_value", "baseline_value"} <= set(header)
    rows = [line.split() for line in lines[1:3]]
    assert sorted(row[1] for row in rows) == ["linear-optuna-tpe", "mlp-optuna-tpe"]
    assert all(row[0] == "boston" for row in rows)
    for study in ("linear-optuna-tpe", "mlp-optuna-tpe"):
        assert f"boston/{study}:" in run.proc.stdout


def test_predict_writes_one_prediction_per_row(jobs: Jobs, tmp_path: Path) -> None:
    run = _predict(tmp_path, jobs.boston())
    assert_ok(run)
    predictions = pd.read_csv(run.out)
    assert list(predictions.columns) == ["prediction"]
    assert len(predictions) == len(load_task("boston").x_test)
    assert predictions["prediction"].notna().all()
    assert predictions["prediction"].nunique() > 1
    assert f"wrote {len(predictions)} predictions" in run.proc.stderr
