"""The Optuna adapter speaks keras-tuner's ``hp`` API with keras-tuner's meaning.

Values are drawn with Optuna's RandomSampler from an in-memory study, many trials at a time,
and compared with what keras-tuner's own hyperparameter classes allow. The last part builds
every built-in space both ways from the same values and compares the models.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import keras
import keras_tuner
import optuna
import pytest
from keras_tuner.engine import hyperparameters as kt_hp

from search.engines.optuna.hp import OptunaHyperParameters
from search.errors import SearchError
from search.space_lookup import space_class
from search.tasks import Task, load_task

optuna.logging.set_verbosity(optuna.logging.WARNING)

N_TRIALS = 300


def sample(
    declare: Callable[[OptunaHyperParameters], Any], n: int = N_TRIALS, seed: int = 0
) -> list[tuple[Any, dict[str, Any]]]:
    """``declare(hp)`` on ``n`` random trials: (what it returned, the trial's params) each."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    results = []
    for _ in range(n):
        trial = study.ask()
        results.append((declare(OptunaHyperParameters(trial)), dict(trial.params)))
    return results


def values_of(declare: Callable[[OptunaHyperParameters], Any], n: int = N_TRIALS) -> list[Any]:
    return [value for value, _ in sample(declare, n)]


def kt_values(spec: Any) -> set[float]:
    return {float(value) for value in spec.values}


# --------------------------------------------------------------------------- Int and Float


def test_int_step_grid_is_inclusive() -> None:
    values = values_of(lambda hp: hp.Int("n", 3, 15, step=4))
    assert all(type(value) is int for value in values)
    assert set(values) == {3, 7, 11, 15}
    assert set(values) == kt_values(kt_hp.Int("n", 3, 15, step=4))


def test_int_without_step_takes_every_integer() -> None:
    values = values_of(lambda hp: hp.Int("n", -2, 4))
    assert set(values) == set(range(-2, 5))


@pytest.mark.filterwarnings("ignore:The distribution is specified by")
def test_int_step_that_misses_max_stops_below_it_like_keras_tuner() -> None:
    values = values_of(lambda hp: hp.Int("n", 1, 10, step=4))
    assert set(values) == {1, 5, 9} == kt_values(kt_hp.Int("n", 1, 10, step=4))


def test_float_step_grid_is_inclusive() -> None:
    values = values_of(lambda hp: hp.Float("d", 0.0, 0.5, step=0.1))
    steps = [value / 0.1 for value in values]
    assert all(type(value) is float for value in values)
    assert all(abs(step - round(step)) < 1e-9 for step in steps), "off the 0.1 grid"
    assert {round(step) for step in steps} == {0, 1, 2, 3, 4, 5}, "min and max must be reachable"


def test_float_without_step_stays_inside_and_spreads() -> None:
    values = values_of(lambda hp: hp.Float("f", -1.0, 2.0))
    assert all(-1.0 <= value <= 2.0 for value in values)
    assert min(values) < -0.9 and max(values) > 1.9
    assert len(set(values)) == len(values), "a continuous range gives distinct values"


def test_float_log_sampling_spans_decades() -> None:
    values = values_of(lambda hp: hp.Float("lr", 1e-5, 1e-1, sampling="log"))
    assert all(1e-5 <= value <= 1e-1 for value in values)
    assert min(values) < 1e-4 and max(values) > 1e-2
    # Uniform in log10: about half the draws lie below 1e-3 (linear sampling gives ~1 %).
    below = sum(value < 1e-3 for value in values) / len(values)
    assert 0.35 < below < 0.65
    decades = {math.floor(math.log10(value)) for value in values}
    assert decades == {-5, -4, -3, -2}


def test_int_log_sampling_favours_small_values() -> None:
    values = values_of(lambda hp: hp.Int("n", 1, 1000, sampling="log"))
    assert all(type(value) is int and 1 <= value <= 1000 for value in values)
    below = sum(value < 32 for value in values) / len(values)
    assert 0.35 < below < 0.65, "log sampling puts half the mass below sqrt(1000)"


def test_stepped_log_int_is_keras_tuners_multiplicative_grid() -> None:
    declare = lambda hp: hp.Int("u", 16, 256, step=2, sampling="log")  # noqa: E731
    values = values_of(declare)
    assert all(type(value) is int for value in values)
    assert set(values) == {16, 32, 64, 128, 256}
    assert set(values) == kt_values(kt_hp.Int("u", 16, 256, step=2, sampling="log"))


def test_stepped_log_float_is_keras_tuners_multiplicative_grid() -> None:
    values = values_of(lambda hp: hp.Float("lr", 1e-4, 1e-1, step=10, sampling="log"))
    expected = kt_values(kt_hp.Float("lr", 1e-4, 1e-1, step=10, sampling="log"))
    assert len(expected) == 4
    assert {round(math.log10(value)) for value in values} == {-4, -3, -2, -1}
    assert all(any(math.isclose(value, e) for e in expected) for value in values)


@pytest.mark.parametrize("kind", ["Int", "Float"])
def test_reverse_log_is_refused(kind: str) -> None:
    hp = OptunaHyperParameters(optuna.trial.FixedTrial({"x": 5}))
    with pytest.raises(SearchError, match="reverse_log"):
        getattr(hp, kind)("x", 1, 10, sampling="reverse_log")


# --------------------------------------------------------------------------- Choice, Boolean, Fixed


def test_choice_offers_exactly_its_values() -> None:
    names = values_of(lambda hp: hp.Choice("act", ["relu", "tanh", "elu"]))
    numbers = values_of(lambda hp: hp.Choice("clip", [0.0, 1.0, 5.0]))
    assert set(names) == {"relu", "tanh", "elu"}
    assert set(numbers) == {0.0, 1.0, 5.0}
    assert all(type(value) is float for value in numbers)


def test_boolean_is_true_or_false() -> None:
    values = values_of(lambda hp: hp.Boolean("flag"))
    assert set(values) == {False, True}
    assert all(type(value) is bool for value in values)


def test_fixed_returns_its_value_and_is_not_sampled() -> None:
    for value, params in sample(lambda hp: hp.Fixed("k", 7), n=5):
        assert value == 7
        assert "k" not in params
    hp = OptunaHyperParameters(optuna.trial.FixedTrial({}))
    assert hp.Fixed("name", "abc") == "abc"
    assert hp.get("name") == "abc"
    assert hp.values == {"name": "abc"}


def test_a_name_declared_twice_keeps_its_first_value() -> None:
    def declare(hp: OptunaHyperParameters) -> tuple[int, int]:
        return hp.Int("n", 0, 1000), hp.Int("n", 0, 1000)

    assert all(first == second for (first, second), _ in sample(declare, n=50))


def test_get_of_an_undeclared_name_raises() -> None:
    hp = OptunaHyperParameters(optuna.trial.FixedTrial({"n": 2}))
    hp.Int("n", 1, 3)
    assert hp.get("n") == 2
    with pytest.raises(KeyError):
        hp.get("m")


# --------------------------------------------------------------------------- conditional scopes


def conditional_model(hp: Any) -> dict[str, Any]:
    """A two-branch space: each branch's parameters exist only when the branch is chosen."""
    model = hp.Choice("model", ["a", "b"])
    with hp.conditional_scope("model", "a"):
        a_units = hp.Int("a_units", 1, 4)
    with hp.conditional_scope("model", ["b"]):
        b_rate = hp.Float("b_rate", 0.0, 1.0)
    b_flag = hp.Boolean("b_flag", parent_name="model", parent_values=["b"])
    return {"model": model, "a_units": a_units, "b_rate": b_rate, "b_flag": b_flag}


def test_conditional_parameters_exist_only_in_their_branch() -> None:
    results = sample(conditional_model, n=100)
    assert {value["model"] for value, _ in results} == {"a", "b"}
    for value, params in results:
        active = {"a_units"} if value["model"] == "a" else {"b_rate", "b_flag"}
        for name in ("a_units", "b_rate", "b_flag"):
            if name in active:
                assert value[name] is not None and name in params
            else:
                assert value[name] is None, f"inactive {name} must be None"
                assert name not in params, f"inactive {name} must not be sampled"


@pytest.mark.parametrize("model", ["a", "b"])
def test_conditional_scopes_match_keras_tuner(model: str) -> None:
    branch = {"a": {"a_units": 3}, "b": {"b_rate": 0.25, "b_flag": True}}[model]
    active = {"model": model, **branch}
    optuna_hp = OptunaHyperParameters(optuna.trial.FixedTrial(active))
    kt = keras_tuner.HyperParameters()
    kt.values = dict(active)
    got = conditional_model(optuna_hp)
    assert got == conditional_model(kt)
    assert optuna_hp.values == active
    inactive = "b_rate" if model == "a" else "a_units"
    with pytest.raises((KeyError, ValueError)):
        optuna_hp.get(inactive)


def test_conditional_scope_needs_a_defined_parent() -> None:
    hp = OptunaHyperParameters(optuna.trial.FixedTrial({}))
    with pytest.raises(SearchError, match="parent 'nope'"), hp.conditional_scope("nope", [1]):
        pass


def nested_model(hp: Any) -> tuple[Any, Any, Any]:
    """A conditional parameter that is itself the parent of a nested scope."""
    layers = hp.Int("layers", 1, 2)
    with hp.conditional_scope("layers", [2]):
        activation = hp.Choice("activation_2", ["relu", "tanh"])
        with hp.conditional_scope("activation_2", ["relu"]):
            alpha = hp.Float("alpha", 0.0, 1.0)
    return layers, activation, alpha


def test_nested_scope_with_active_parents_matches_keras_tuner() -> None:
    values = {"layers": 2, "activation_2": "relu", "alpha": 0.5}
    kt = keras_tuner.HyperParameters()
    kt.values = dict(values)
    assert nested_model(OptunaHyperParameters(optuna.trial.FixedTrial(values))) == (2, "relu", 0.5)
    assert nested_model(kt) == (2, "relu", 0.5)


def test_nested_scope_under_an_inactive_parent_gives_none_like_keras_tuner() -> None:
    kt = keras_tuner.HyperParameters()
    kt.values = {"layers": 1}
    assert nested_model(kt) == (1, None, None)
    assert nested_model(OptunaHyperParameters(optuna.trial.FixedTrial({"layers": 1}))) == (
        1,
        None,
        None,
    )


# ----------------------------------------------------------------------- same values, same model

CASES = [("boston", "linear"), ("breast-cancer", "logistic"), ("boston", "mlp"), ("digits", "mlp")]
_TASKS: dict[str, Task] = {}


def task_named(name: str) -> Task:
    if name not in _TASKS:
        _TASKS[name] = load_task(name)
    return _TASKS[name]


def random_values(task: str, space: str, seed: int) -> dict[str, Any]:
    """The values an Optuna random trial gives the space, read back through the adapter."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    hp = OptunaHyperParameters(study.ask())
    space_class(space)(task_named(task).spec).build(hp)
    return dict(hp.values)


def default_values(task: str, space: str) -> dict[str, Any]:
    """keras-tuner's defaults for the space (what its first build registers)."""
    hp = keras_tuner.HyperParameters()
    space_class(space)(task_named(task).spec).build(hp)
    return dict(hp.values)


def optimizer_config(model: keras.Model) -> dict[str, Any]:
    config = dict(model.optimizer.get_config())
    config.pop("name")  # unique per instance: adam, adam_1, ...
    return config


@pytest.mark.parametrize("source", ["defaults", "seed0", "seed1", "seed2", "seed3"])
@pytest.mark.parametrize(("task", "space"), CASES, ids=[f"{t}-{s}" for t, s in CASES])
def test_both_engines_build_the_same_model(task: str, space: str, source: str) -> None:
    values = (
        default_values(task, space)
        if source == "defaults"
        else random_values(task, space, int(source[-1]))
    )
    space_type = space_class(space)
    spec = task_named(task).spec

    via_optuna = OptunaHyperParameters(optuna.trial.FixedTrial(values))
    optuna_model = space_type(spec).build(via_optuna)
    via_kt = keras_tuner.HyperParameters()
    via_kt.values = dict(values)
    kt_model = space_type(spec).build(via_kt)

    assert optuna_model.get_config() == kt_model.get_config()
    assert optimizer_config(optuna_model) == optimizer_config(kt_model)
    assert optuna_model.count_params() == kt_model.count_params()
    assert [w.shape for w in optuna_model.weights] == [w.shape for w in kt_model.weights]
    assert optuna_model.loss.get_config() == kt_model.loss.get_config()
    assert via_optuna.get("batch_size") == via_kt.get("batch_size") == values["batch_size"]
    # Every value the build used was the given one, on both sides.
    assert via_optuna.values == values
    assert via_kt.values == values
