"""keras-tuner's own search spaces, unchanged: ``build_model(hp)`` functions and HyperModels.

The two functions below are the ones keras-tuner's README (quick start) and its getting
started guide publish, as a user would paste them into a file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import keras
import pandas as pd
import pytest
from conftest import call_cli, describe, run_main
from spaces_fixtures import FAILING_FIT, GUIDE, GUIDE_FIT, QUICKSTART, TUNED_FIT, write_space

import search
from search.errors import SearchError
from search.results.tensorboard import read_experiment

# A space of the user's keeps Keras' own backend (it may need fit, which the numpy backend
# lacks; search.cli.startup), so these run where a user's space runs.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.backend("tensorflow", "jax", why="a space of the user's keeps Keras' backend"),
]

ENGINES = {"optuna": "tpe", "keras-tuner": "random"}
# No ensemble selection (tests/study/test_ensemble.py tests it): it retrains the best trials
# on five fresh folds.
SMALL = ["--trials", "3", "--cv", "1", "--top-k", "1", "--ensemble", "1", "--seed", "1"]
SMALL += ["--ensemble-size", "0"]


def run(tmp_path: Path, task: str, source: str, engine: str, *extra: str) -> pd.DataFrame:
    """``python -m search TASK --space FILE`` in this process; the study's leaderboard."""
    space = write_space(tmp_path / "space.py", source)
    out = tmp_path / "out"
    assert run_main([task, "--space", space, "--engine", engine, "--out", out, *SMALL, *extra]) == 0
    folder = out / task / f"space-{engine}-{ENGINES[engine]}"
    return pd.read_csv(folder / "leaderboard.csv")


@pytest.mark.parametrize("engine", list(ENGINES))
def test_the_quickstart_runs_as_published(tmp_path: Path, engine: str) -> None:
    table = run(tmp_path, "boston", QUICKSTART, engine, "--epochs", "3")
    assert len(table) == 3 and set(table["units"]) <= {8, 16, 32}
    best = table.iloc[0]
    assert best["rank"] == 1 and best["test_mse"] > 0  # scored on the test split
    # The model's own loss is the objective's (val_mse), its own optimizer trained it.
    assert (table["value"] == table["val_mse"]).all()
    folder = tmp_path / "out" / "boston" / f"space-{engine}-{ENGINES[engine]}"
    model = keras.saving.load_model(folder / "best.keras")
    assert model.predict(search.load_task("boston").x_test[:4], verbose=0).shape == (4, 1)
    experiment = read_experiment(folder / "tensorboard")
    assert "units" in {info.name for info in experiment.hparam_infos}


# Each loss once and each engine once: how the labels reach the loss does not depend on the
# engine.
@pytest.mark.parametrize(
    ("engine", "loss"),
    [
        ("keras-tuner", "sparse_categorical_crossentropy"),
        ("optuna", "categorical_crossentropy"),
    ],
)
def test_the_guide_function_runs_on_digits(tmp_path: Path, engine: str, loss: str) -> None:
    """The categorical variant trains on labels the harness one-hot encodes."""
    table = run(tmp_path, "digits", GUIDE.replace("LOSS", loss), engine, "--epochs", "8")
    assert {"num_layers", "units_0", "activation", "dropout", "lr"} <= set(table.columns)
    complete = table[table["state"] == "complete"]
    assert len(complete) >= 2
    assert (complete["value"] == complete["val_logloss"]).all()
    # Ten balanced classes: wrong labels would leave the accuracy near 0.1.
    assert table.iloc[0]["test_accuracy"] > 0.6, table.to_string()


@pytest.mark.parametrize("engine", list(ENGINES))
def test_a_hypermodel_fit_tunes_epochs_and_batch_size(tmp_path: Path, engine: str) -> None:
    table = run(tmp_path, "boston", TUNED_FIT, engine, "--patience", "0", "--epochs", "50")
    # "epochs" is also a column of the harness: the hyperparameter gets the hp_ prefix.
    assert {"hp_epochs", "batch_size", "units"} <= set(table.columns)
    assert set(table["batch_size"]) <= {16, 64}
    assert (table["epochs"] == table["hp_epochs"]).all(), table.to_string()
    assert set(table["hp_epochs"]) <= {2, 3, 4}


@pytest.mark.parametrize("engine", list(ENGINES))
def test_a_fit_that_passes_epochs_and_callbacks_itself_runs(
    tmp_path: Path, engine: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The guide's form, ``model.fit(*args, epochs=hp.Int(...), callbacks=[...], **kwargs)``:
    its epochs win over the study's 50, and the harness's callback (the curve, early
    stopping) still runs beside its own: each trial has a value read off its curve."""
    table = run(tmp_path, "boston", GUIDE_FIT, engine, "--patience", "0", "--epochs", "50")
    assert (table["state"] == "complete").all() and table["value"].notna().all()
    assert (table["epochs"] == table["n_epochs"]).all(), table.to_string()
    assert set(table["n_epochs"]) <= {2, 3} and set(table["batch_size"]) <= {16, 64}
    notes = [line for line in capsys.readouterr().err.splitlines() if "fit passes" in line]
    assert len(notes) == 1 and "epochs=" in notes[0] and "study's 50" in notes[0], notes


@pytest.mark.parametrize("engine", list(ENGINES))
def test_a_fit_that_always_raises_ends_both_engines_in_one_line(
    tmp_path: Path, engine: str
) -> None:
    space = write_space(tmp_path / "space.py", FAILING_FIT)
    args = ["boston", "--space", space, "--engine", engine, "--out", tmp_path / "out", *SMALL]
    proc = call_cli(args)
    assert proc.returncode == 1, describe(proc)
    said = [line for line in proc.stderr.splitlines() if line.startswith("search: ")]
    assert said == [
        f"search: space-{engine}-{ENGINES[engine]}: stopped after 3 consecutive failed "
        "trials; the first: RuntimeError: the user's fit is broken "
        f"(at {space}:12); check the space (--debug shows the traceback) or raise "
        "--max-failures"
    ], describe(proc)
    assert "Traceback" not in proc.stderr and "baselines" not in proc.stdout, describe(proc)
    folder = tmp_path / "out" / "boston" / f"space-{engine}-{ENGINES[engine]}"
    table = pd.read_csv(folder / "leaderboard.csv")
    assert (table["error"] == f"RuntimeError: the user's fit is broken (at {space}:12)").all()
    debug = call_cli([*args, "--fresh", "--debug"])
    assert debug.returncode == 1 and "Traceback" in debug.stderr, describe(debug)
    assert 'raise RuntimeError("the user\'s fit is broken")' in debug.stderr


def test_an_exhausted_keras_tuner_space_says_so(tmp_path: Path) -> None:
    """The quick start's space has three configurations: the fourth trial never starts."""
    space = write_space(tmp_path / "space.py", QUICKSTART)
    out = tmp_path / "out"
    # The last --trials is the one argparse keeps.
    args = ["boston", "--space", space, "--engine", "keras-tuner", "--out", out, *SMALL]
    proc = call_cli([*args, "--trials", "4", "--epochs", "2"])
    assert proc.returncode == 0, describe(proc)
    assert "3 complete, 0 pruned, 0 failed trials" in proc.stdout, describe(proc)
    assert "(the space has no configuration left to try)" in proc.stdout
    summary = json.loads((out / "boston" / "space-keras-tuner-random" / "study.json").read_text())
    assert summary["summary"]["ended_by"] == "space exhausted"


def test_a_loss_that_does_not_fit_the_task_is_one_line(tmp_path: Path) -> None:
    space = write_space(
        tmp_path / "space.py", GUIDE.replace("LOSS", "sparse_categorical_crossentropy")
    )
    proc = call_cli(["boston", "--space", space, "--out", tmp_path / "out"])
    assert proc.returncode == 2, describe(proc)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "fits multiclass tasks" in lines[0], describe(proc)
    assert "'mse'" in lines[0]
    assert not (tmp_path / "out").exists()


def test_a_function_is_chosen_by_name_or_by_all(tmp_path: Path) -> None:
    two = QUICKSTART + "\n\ndef other_model(hp):\n    return build_model(hp)\n"
    (tmp_path / "two.py").write_text(two, encoding="utf-8")
    task = search.load_task("boston")
    study = search.Study(task, f"{tmp_path / 'two.py'}:other_model", out=tmp_path / "o")
    assert study.space.as_written and study.config.objective == "val_mse"
    # No build_model: the one callable its __all__ names.
    exported = two.replace("build_model", "make") + "\n__all__ = ['other_model']\n"
    (tmp_path / "exported.py").write_text(exported, encoding="utf-8")
    exported_space = search.Study(task, str(tmp_path / "exported.py"), out=tmp_path / "o").space
    assert type(exported_space).__name__ == "other_model"
    with pytest.raises(SearchError, match=re.escape("defines no 'missing'")):
        search.Study(task, f"{tmp_path / 'two.py'}:missing", out=tmp_path / "o")


def test_the_api_takes_a_function_and_a_hypermodel(tmp_path: Path) -> None:
    namespace: dict[str, object] = {}
    exec(QUICKSTART + TUNED_FIT, namespace)  # noqa: S102 - the test's own spaces
    task = search.load_task("boston")
    options = {"out": tmp_path, "epochs": 2, "cv": 1, "top_k": 1, "ensemble": 1, "ensemble_size": 0}
    for space in (namespace["build_model"], namespace["Tuned"], namespace["Tuned"]()):
        result = search.Study(task, space, **options).run(trials=2, progress=False)
        assert result.leaderboard["rank"].iloc[0] == 1
        assert "units" in result.leaderboard.columns
