"""The options table (search.study.options) is the one place of every option's type,
default and bound: Study's signature, the command line, suite files and bench read it."""

from __future__ import annotations

import inspect

import pytest

from search.bench.config import TRAINING_DEFAULTS, training
from search.bench.suite import TRAINING_OPTIONS
from search.cli.parser import build_parser
from search.errors import SearchError
from search.study.api import Study
from search.study.options import DEFAULT_TRIALS, DEFAULTS, OPTIONS, TRAINING, check_values
from search.trainers import DEFAULT_TRAINER


def _subparser(name: str) -> object:
    return build_parser()._subparsers._group_actions[0].choices[name]  # type: ignore[union-attr,index]


def test_study_takes_the_tables_options_in_order_with_its_defaults() -> None:
    keywords = {
        name: parameter
        for name, parameter in inspect.signature(Study).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }
    assert list(keywords) == list(OPTIONS)
    assert {name: p.default for name, p in keywords.items()} == DEFAULTS
    assert DEFAULTS["trainer"] == DEFAULT_TRAINER
    assert inspect.signature(Study.run).parameters["trials"].default == DEFAULT_TRIALS


def test_the_run_command_defaults_to_the_tables_values() -> None:
    run = _subparser("run")
    defaults = {action.dest: action.default for action in run._actions}  # type: ignore[attr-defined]
    for name, option in OPTIONS.items():
        if name not in ("name", "storage", "cluster"):  # --study; $SEARCH_STORAGE, _CLUSTER
            assert defaults[name] == option.default, name
    assert defaults["trials"] == DEFAULT_TRIALS


def test_bench_and_suites_take_the_training_options_types_and_defaults() -> None:
    assert list(TRAINING_OPTIONS) == list(TRAINING)
    assert TRAINING_OPTIONS["validation_split"] is float and TRAINING_OPTIONS["cv"] is int
    assert {name: DEFAULTS[name] for name in TRAINING} | {"pruner": "none"} == TRAINING_DEFAULTS
    assert training({"epochs": 3, "cv": 2}, {"epochs": 4})["epochs"] == 4
    assert training({"epochs": 3, "cv": 2}, {"epochs": 4})["cv"] == 2


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"epochs": 0}, "epochs must be a positive integer, got 0"),
        ({"seed": -1}, "seed must be an integer >= 0, got -1"),
        ({"top_k": True}, "top_k must be an integer >= 0, got True"),
        ({"cv": 0}, "cv must be a positive integer, got 0"),
        ({"validation_split": 1.0}, "validation_split must lie in (0, 1), got 1.0"),
        # Several bad values: the integers first, the optional ones after, then the fraction.
        ({"validation_split": 2, "cv": 0, "patience": -1}, "patience must be"),
        ({"validation_split": 2, "max_params": 0}, "max_params must be"),
    ],
)
def test_a_value_out_of_bounds_is_refused_by_name(values: dict[str, object], message: str) -> None:
    with pytest.raises(SearchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_values(values)


def test_optional_options_take_none() -> None:
    check_values({"cv": None, "max_params": None, "epochs": 1, "validation_split": 0.5})
