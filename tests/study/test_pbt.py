"""Population-based training (``--algorithm pbt``): the schedule it writes, the trials it
records, its determinism, and the explore step's moves."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import call_cli, describe, run_main
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from spaces_fixtures import WIDE, write_space

from search.layout import TRIAL_TABLE
from search.study.pbt.explore import Moves, pairs, perturb
from search.tasks import load_task

ARGS = ("boston", "--space", "mlp", "--algorithm", "pbt", "--trials", "8", "--epochs", "30")
ARGS += ("--cv", "1", "--pbt-interval", "5", "--seed", "3", "--top-k", "2")
FOLDER = ("boston", "mlp-optuna-pbt")
# Hyperparameters of the mlp space that change the weights' shapes: never explored.
STRUCTURAL = ("layers", "units_0", "units_1", "units_2")
# Those that never change them: explored.
EXPLORED = ("learning_rate", "l2", "batch_size", "clipnorm", "dropout_0")


def run(out: Path, *extra: str, tensorboard: bool = False) -> Path:
    off = [] if tensorboard else ["--no-tensorboard"]
    assert run_main([*ARGS, "--out", out, *off, *extra]) == 0
    return out.joinpath(*FOLDER)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run(tmp_path_factory.mktemp("pbt"))


def test_the_schedule_has_a_row_per_member_per_interval(study: Path) -> None:
    schedule = pd.read_csv(study / "pbt.csv")
    assert len(schedule) == 8 * 6
    assert sorted(set(schedule["epoch"])) == [5, 10, 15, 20, 25, 30]
    assert sorted(set(schedule["member"])) == list(range(8))
    assert {*EXPLORED, *STRUCTURAL, "value", "source"} <= set(schedule.columns)


def test_the_worst_copy_the_best_and_explore(study: Path) -> None:
    schedule = pd.read_csv(study / "pbt.csv")
    exploits = schedule[schedule["source"] != schedule["member"]]
    assert len(exploits) >= 1
    # Each interval's exploits are a quarter of the population (8 * 0.25), after the first.
    assert all(count == 2 for count in exploits.groupby("epoch").size())
    assert 5 not in set(exploits["epoch"])
    changed = [
        name
        for _, rows in schedule.groupby("member")
        for name in EXPLORED
        if rows[name].dropna().nunique() > 1
    ]
    assert changed, "no member's explored hyperparameter changed across intervals"


def test_a_copy_takes_the_sources_structure_unchanged(study: Path) -> None:
    schedule = pd.read_csv(study / "pbt.csv").set_index(["member", "epoch"])
    for (member, epoch), row in schedule.iterrows():
        if row["source"] == member:
            continue
        before = schedule.loc[(row["source"], epoch - 5)]
        for name in STRUCTURAL:
            same = row[name] == before[name] or (pd.isna(row[name]) and pd.isna(before[name]))
            assert same, (member, epoch, name)


def test_each_member_is_a_trial_with_its_final_hyperparameters(study: Path) -> None:
    board = pd.read_csv(study / TRIAL_TABLE)
    assert len(board) == 8
    last = pd.read_csv(study / "pbt.csv").query("epoch == 30").set_index("member")
    for _, row in board.iterrows():
        final = last.loc[row["trial"]]
        for name in ("learning_rate", "l2", "batch_size", "layers", "units_0"):
            assert math.isclose(float(row[name]), float(final[name]), rel_tol=1e-9), name
        # A parameter of a layer the member lost with the weights it copied is not kept.
        for layer in range(int(final["layers"]), 3):
            assert pd.isna(row.get(f"units_{layer}")), (row["trial"], layer)
    assert board["value"].notna().all()
    first = pd.read_csv(study / "pbt.csv").query("epoch == 5").set_index("member")
    assert (first["layers"] > last["layers"]).any(), "no member lost a layer: nothing checked"


def test_the_same_seed_gives_the_same_schedule(study: Path, tmp_path: Path) -> None:
    again = run(tmp_path)
    assert (again / "pbt.csv").read_text() == (study / "pbt.csv").read_text()


def test_the_best_member_predicts(study: Path, tmp_path: Path) -> None:
    task = load_task("boston")
    data = tmp_path / "features.csv"
    pd.DataFrame(task.x_test, columns=list(task.spec.feature_names)).to_csv(data, index=False)
    output = tmp_path / "predictions.csv"
    args = ["predict", "boston", "--data", data, "--output", output, "--out", study.parent.parent]
    assert run_main([*args, "--study", FOLDER[1]]) == 0
    predictions = pd.read_csv(output)["prediction"].to_numpy(dtype=float)
    assert len(predictions) == len(task.x_test) and np.isfinite(predictions).all()


def tensorboard_scalars(run: Path) -> dict[str, list[float]]:
    """Every scalar tag of a TensorBoard run folder: its values in step order."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util import tensor_util

    found: dict[str, dict[int, float]] = {}
    for path in run.glob("*tfevents*"):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                number = float(tensor_util.make_ndarray(value.tensor))
                found.setdefault(value.tag, {})[event.step] = number
    return {tag: [steps[k] for k in sorted(steps)] for tag, steps in found.items()}


def test_with_folds_each_member_keeps_every_folds_weights(tmp_path: Path) -> None:
    extra = ["--cv", "2", "--trials", "4", "--epochs", "4", "--pbt-interval", "2", "--top-k", "1"]
    folder = run(tmp_path, *extra, tensorboard=True)
    kept = np.load(folder / "pbt" / "0.npy")
    assert kept.shape[0] == 2  # a row per fold
    schedule = pd.read_csv(folder / "pbt.csv")
    assert len(schedule) == 4 * 2
    assert (folder / "best.keras").exists()
    # TensorBoard: each member's hyperparameters over the epochs of its lineage (those of
    # the member it copied, before it did), as the schedule says.
    board = pd.read_csv(folder / TRIAL_TABLE).set_index("trial")
    rates = schedule.set_index(["member", "epoch"])["learning_rate"]
    for member in range(4):
        found = tensorboard_scalars(folder / "tensorboard" / f"trial_{member:04d}" / "train")
        source = int(schedule.query(f"member == {member} and epoch == 4")["source"].iloc[0])
        expected = [rates[(source, 2)]] * 2 + [rates[(member, 4)]] * 2
        assert np.allclose(found["epoch_hp_learning_rate"], expected, rtol=1e-6)
        assert math.isclose(expected[-1], board.loc[member, "learning_rate"], rel_tol=1e-6)


def test_explore_moves_within_the_domain() -> None:
    rng = np.random.default_rng(0)
    log = FloatDistribution(1e-4, 1e-1, log=True)
    moved = {perturb(0.01, log, rng) for _ in range(200)}
    assert {0.008, 0.012} <= {round(v, 6) for v in moved}  # 0.8x and 1.2x
    assert all(1e-4 <= v <= 1e-1 for v in moved)
    assert len(moved) > 2  # and draws from the whole domain
    assert perturb(0.1, FloatDistribution(1e-4, 0.1), np.random.default_rng(1)) <= 0.1
    stepped = FloatDistribution(0.0, 0.5, step=0.125)
    assert {perturb(0.25, stepped, rng) for _ in range(200)} <= {0.0, 0.125, 0.25, 0.375, 0.5}
    steps = {perturb(0.25, stepped, np.random.default_rng(s)) for s in range(50)}
    assert {0.125, 0.375} <= steps
    choice = CategoricalDistribution(["a", "b", "c"])
    assert {perturb("a", choice, rng) for _ in range(100)} <= {"a", "b", "c"}
    assert perturb(4, IntDistribution(1, 8), rng) in range(1, 9)


def test_pairs_copy_the_top_quantile_into_the_bottom() -> None:
    values = [5.0, 1.0, math.nan, 3.0, 2.0, 4.0, 0.5, 6.0]
    found = pairs(values, 0.25, np.random.default_rng(0))
    assert sorted(loser for loser, _ in found) == [2, 7]  # NaN counts worst
    assert {winner for _, winner in found} <= {6, 1}
    assert pairs([1.0], 0.25, np.random.default_rng(0)) == []


def test_moves_are_known_by_name_or_by_both_values_and_survive_json() -> None:
    rate = FloatDistribution(1e-4, 1e-1, log=True)
    choice = CategoricalDistribution(["sgd", "momentum", "nesterov"])
    assert Moves.key("learning_rate", 0.01, 0.012, rate) == ("learning_rate",)
    assert Moves.key("optimizer", "sgd", "momentum", choice) == ("optimizer", "sgd", "momentum")
    moves = Moves({"units_0"}, {("learning_rate",)}, {("optimizer", "sgd", "momentum")})
    assert Moves.of(json.loads(json.dumps(moves.described()))) == moves


def test_a_space_the_numpy_trainer_cannot_train_is_one_line(tmp_path: Path) -> None:
    dense = 'x = keras.layers.Dense(units, activation=hp.Choice("act", ["relu", "tanh"]))(inputs)'
    normed = f"{dense}\n        x = keras.layers.BatchNormalization()(x)"
    assert dense in WIDE
    space = write_space(tmp_path / "normed.py", WIDE.replace(dense, normed))
    args = ["boston", "--space", space, "--algorithm", "pbt", "--trials", "2", "--epochs", "2"]
    proc = call_cli([*args, "--cv", "1", "--no-tensorboard", "--out", tmp_path / "out"])
    assert proc.returncode == 2, describe(proc)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "pbt trains with the numpy trainer" in lines[0], describe(proc)
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "out").exists()  # refused before anything is written
