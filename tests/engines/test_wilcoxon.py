"""``--pruner wilcoxon``: each trained trial's fold values go to Optuna's WilcoxonPruner at
the folds' steps, and a trial surely worse than the best one is recorded as pruned, with its
value (its refusals are in ``tests/cli/test_bad_input.py``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest
from conftest import call_cli, describe, tiny_run

from search.study.stored import open_stored

FOLDS = 5
# Eight trials of 3 epochs: seed 0 prunes 4 of them here (seeds 1 and 2: 4 and 5), as a
# small budget's first trials (TPE's random start) lie far apart; at least one is asserted.
ARGS = ("--pruner", "wilcoxon", "--cv", str(FOLDS), "--trials", "8", "--epochs", "3")
ARGS += ("--top-k", "1", "--ensemble-size", "0", "--no-tensorboard", "--seed", "0")


@pytest.fixture(scope="module")
def pruned_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, optuna.Study]:
    study = tiny_run(tmp_path_factory.mktemp("wilcoxon"), "boston", "mlp", "optuna", *ARGS)
    engine, _ = open_stored(study.folder)
    return study, engine.native()


def test_a_seeded_cv_run_prunes_trials_and_keeps_their_values(
    pruned_study: tuple[object, optuna.Study],
) -> None:
    study, _ = pruned_study
    trials = study.trials()  # type: ignore[attr-defined]
    pruned = trials[trials["state"] == "pruned"]
    assert len(pruned) >= 1, trials[["trial", "state", "value"]]
    assert (trials["state"] == "complete").any()
    # A pruned trial trained all its epochs on every fold: its value and metrics are kept,
    # its value is its metric's, and it is never ranked (scored) beside the complete ones.
    assert pruned["value"].notna().all()
    assert np.allclose(pruned["value"], pruned["val_mse"])
    assert pruned["rank"].isna().all()
    assert (pruned["epochs"] >= 1).all()
    summary = study.studies().iloc[0]  # type: ignore[attr-defined]
    assert summary["pruner"] == "wilcoxon"
    assert summary["pruned"] == len(pruned)


def test_each_fold_is_reported_at_its_step_and_their_mean_is_the_value(
    pruned_study: tuple[object, optuna.Study],
) -> None:
    study, native = pruned_study
    values = study.trials().set_index("trial")["value"]  # type: ignore[attr-defined]
    finished = [t for t in native.trials if t.state.is_finished()]
    assert len(finished) == 8
    for trial in finished:
        # The folds are the steps: no per-epoch report, as the other pruners get.
        assert sorted(trial.intermediate_values) == list(range(FOLDS)), trial.number
        folds = [trial.intermediate_values[step] for step in range(FOLDS)]
        assert np.mean(folds) == pytest.approx(values[trial.number], rel=1e-5)
    # A pruned trial is worse, fold for fold on the whole, than the best complete trial.
    best = native.best_trial
    for trial in finished:
        if trial.state == optuna.trial.TrialState.PRUNED:
            assert values[trial.number] > values[best.number]


@pytest.mark.parametrize("cv", [1, 3])
def test_too_few_folds_to_ever_prune_are_refused(cv: int, tmp_path: Path) -> None:
    import search

    # Three folds' one-sided signed-rank test gives p >= 1/8: never under Optuna's 0.1.
    with pytest.raises(search.SearchError, match=f"--cv {cv} never reaches.*--cv 4 or more"):
        search.Study("boston", "mlp", pruner="wilcoxon", cv=cv, out=str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_a_tabular_benchmark_has_no_folds_to_compare(tmp_path: Path) -> None:
    proc = call_cli(["run", "fcnet-naval", "--pruner", "wilcoxon", "--out", tmp_path / "out"])
    assert proc.returncode == 2, describe(proc)
    assert proc.stderr.strip().splitlines() == [
        "search: error: pruner 'wilcoxon' compares trials fold by fold, and a tabular "
        "benchmark recorded one value a configuration; choose another pruner (none, median, "
        "hyperband, successive-halving)"
    ]
    assert not (tmp_path / "out").exists()
