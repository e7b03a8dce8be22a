"""Warm starts: configurations a study tries first, read from a file or another study.

A configuration is a mapping of hyperparameter names to values. Each is checked against the
space's declared hyperparameters (keras-tuner's ``hp`` domains, conditions included) before
anything is written: an unknown name, a value outside its domain, or a missing value that the
other values make active ends in one line naming the row and the hyperparameter.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from search.declared_space import declared_space
from search.errors import SearchError
from search.files import read_json
from search.layout import (
    ENSEMBLE_WEIGHT_COLUMN,
    PARETO_COLUMN,
    STUDY_JSON,
    TRIAL_COLUMNS_HEAD,
    TRIAL_COLUMNS_TAIL,
    TRIAL_TABLE,
    study_folder,
)
from search.space import Space
from search.space_lookup import space_name

Configuration = dict[str, Any]


def read_configurations(path: str | Path) -> list[Configuration]:
    """The configurations of a JSON file (a list of objects) or a CSV file (one column per
    hyperparameter; other columns, such as a leaderboard's, are left to :func:`check`)."""
    path = Path(path)
    if not path.is_file():
        raise SearchError(f"--enqueue file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as error:
            raise SearchError(f"--enqueue file {path} is not JSON: {error}") from None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise SearchError(f"--enqueue file {path} must hold a JSON list of objects")
        return rows
    return [
        {name: _cell(value) for name, value in row.items() if value not in ("", None)}
        for row in csv.DictReader(text.splitlines())
    ]


def _cell(text: str) -> Any:
    """A CSV cell as the number or boolean it spells, else the text."""
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def top_configurations(out: Path, task: str, study: str, space: str, k: int) -> list[Configuration]:
    """The ``k`` best configurations (by rank) of ``study`` of ``task``, which must have been
    run with the same space."""
    folder = study_folder(out, task, study)
    if not (folder / STUDY_JSON).exists():
        raise SearchError(f"--warm-start: no study {study!r} of task {task!r} under {str(out)!r}")
    theirs = read_json(folder / STUDY_JSON).get("config", {}).get("space")
    if theirs != space_name(space):
        raise SearchError(
            f"--warm-start: study {study!r} searched space {theirs!r}, not {space_name(space)!r}"
        )
    rows = read_configurations(folder / TRIAL_TABLE)
    ranked = sorted((r for r in rows if r.get("rank")), key=lambda r: r["rank"])
    return ranked[:k]


def check(rows: list[Configuration], space: Space, source: str) -> list[Configuration]:
    """Each row reduced to the space's active hyperparameters, its values checked.

    Columns a leaderboard adds (rank, value, metrics, timings) are not hyperparameters and
    are dropped; a hyperparameter that a leaderboard prefixed (``hp_epochs``) is read back.
    """
    specs = {spec.name: spec for spec in declared_space(space).space}
    checked = []
    for number, row in enumerate(rows, start=1):
        values: Configuration = {}
        for name, value in row.items():
            name = name[3:] if name.startswith("hp_") and name[3:] in specs else name
            if name in specs and not (isinstance(value, float) and math.isnan(value)):
                values[name] = value
        unknown = [n for n in row if n not in specs and n[3:] not in specs and _is_param(n)]
        if unknown:
            raise SearchError(
                f"{source} row {number}: unknown hyperparameter {unknown[0]!r}; the space has "
                f"{', '.join(specs)}"
            )
        active: Configuration = {}
        for name, spec in specs.items():
            if not all(condition.is_active(active | values) for condition in spec.conditions):
                continue
            if name not in values:
                raise SearchError(f"{source} row {number}: {name!r} is missing")
            active[name] = _in_domain(spec, values[name], f"{source} row {number}")
        checked.append(active)
    return checked


# A leaderboard's own columns: not hyperparameters.
_TABLE_COLUMNS = {*TRIAL_COLUMNS_HEAD, PARETO_COLUMN, ENSEMBLE_WEIGHT_COLUMN, *TRIAL_COLUMNS_TAIL}


def _is_param(name: str) -> bool:
    return name not in _TABLE_COLUMNS and not name.startswith(("val_", "test_"))


def _in_domain(spec: Any, value: Any, where: str) -> Any:
    """``value`` as the type of ``spec``'s domain, or one line saying why it is outside it."""
    from keras_tuner.engine import hyperparameters as kt

    def outside(domain: str) -> SearchError:
        return SearchError(f"{where}: {spec.name}={value!r} is outside {domain}")

    if isinstance(spec, kt.Fixed):
        if value != spec.value:
            raise outside(f"its fixed value {spec.value!r}")
        return spec.value
    if isinstance(spec, kt.Boolean):
        if not isinstance(value, bool):
            raise outside("True or False")
        return value
    if isinstance(spec, kt.Choice):
        for choice in spec.values:
            if value == choice or str(value) == str(choice):
                return choice
        raise outside(f"the choices {list(spec.values)}")
    if isinstance(spec, kt.Int):
        if not isinstance(value, int | float) or float(value) != int(value):
            raise outside(f"the integers {spec.min_value}..{spec.max_value}")
        number = int(value)
        step = spec.step or 1
        if spec.sampling == "log" and step > 1:  # keras-tuner's stepped log range: min * step^k
            allowed, point = [], spec.min_value
            while point <= spec.max_value:
                allowed.append(point)
                point *= step
            if number not in allowed:
                raise outside(f"the values {allowed}")
            return number
        if not spec.min_value <= number <= spec.max_value or (number - spec.min_value) % step:
            raise outside(f"{spec.min_value}..{spec.max_value} in steps of {step}")
        return number
    if isinstance(spec, kt.Float):
        if not isinstance(value, int | float) or not spec.min_value <= value <= spec.max_value:
            raise outside(f"[{spec.min_value}, {spec.max_value}]")
        return float(value)
    return value
