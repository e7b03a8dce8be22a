"""Benchmark suites: several (task, space, options) entries, compared as one benchmark.

A suite is a TOML file (or a built-in name, see :func:`builtin_suites`)::

    [settings]             # optional: the options of every entry
    epochs = 50
    cv = 1

    [[entry]]              # one per task and space
    task = "boston"
    space = "mlp"
    patience = 5           # this entry's own options, over [settings]

    [[entry]]
    task = "csv"
    space = "my_space.py"  # a path relative to the suite file, as data is
    data = "houses.csv"
    target = "price"
    name = "houses"        # the entry's folder name (default TASK-SPACE)

An option given on the command line overrides both for every entry.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from search.errors import SearchError
from search.layout import check_name
from search.space_lookup import space_name
from search.study.options import OPTIONS, TRAINING

# The options an entry or [settings] may set, with their types: how each study trains.
TRAINING_OPTIONS: dict[str, type] = {name: OPTIONS[name].type for name in TRAINING}
# The csv task's options (an entry's own: they name its data).
TASK_OPTIONS: dict[str, type] = {"data": str, "target": str, "kind": str, "test_size": float}
ENTRY_KEYS = ("task", "space", "name")


@dataclass(frozen=True)
class SuiteEntry:
    name: str  # its folder under the suite's
    task: str
    space: str
    options: dict[str, Any] = field(default_factory=dict)  # TRAINING_OPTIONS, merged
    task_options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Suite:
    name: str
    source: str  # "built-in" or the file's path
    entries: tuple[SuiteEntry, ...]


def builtin_suites() -> list[str]:
    """The built-in suites' names (the TOML files shipped in ``search/bench/suites``)."""
    folder = files("search.bench") / "suites"
    return sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    )


def load_suite(name: str | Path) -> Suite:
    """A built-in suite by name, or a suite file; raises :class:`SearchError` for a file that
    is missing, not TOML, or names an option that no entry takes."""
    text = str(name)
    if text in builtin_suites():
        source = (files("search.bench") / "suites" / f"{text}.toml").read_text(encoding="utf-8")
        return parse_suite(source, text, "built-in", Path.cwd())
    path = Path(name)
    if not path.is_file():
        raise SearchError(
            f"no suite {text!r}: neither a built-in suite ({', '.join(builtin_suites())}) nor "
            "a file"
        )
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SearchError(f"cannot read suite file {text}: {error}") from None
    return parse_suite(source, check_name("suite", path.stem), str(path), path.parent)


def parse_suite(text: str, name: str, source: str, base: Path) -> Suite:
    """A suite from its TOML ``text``; relative paths (space files, csv data) are taken
    from ``base``, the suite file's folder."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SearchError(f"suite {source}: not valid TOML: {error}") from None
    _unknown(source, "the file", document, ("settings", "entry"))
    settings = document.get("settings", {})
    if not isinstance(settings, dict):
        raise SearchError(f"suite {source}: [settings] must be a table")
    _unknown(source, "[settings]", settings, tuple(TRAINING_OPTIONS))
    _check_types(source, "[settings]", settings)
    raw = document.get("entry", [])
    if not isinstance(raw, list) or not raw:
        raise SearchError(f"suite {source}: no [[entry]]; each names a task and a space")
    entries = []
    for position, item in enumerate(raw, start=1):
        where = f"entry {position}"
        _unknown(source, where, item, (*ENTRY_KEYS, *TRAINING_OPTIONS, *TASK_OPTIONS))
        for key in ("task", "space"):
            if not isinstance(item.get(key), str) or not item[key]:
                raise SearchError(f'suite {source}: {where} needs {key} = "..."')
        _check_types(source, where, item)
        space = item["space"]
        if space.split(":")[0].endswith(".py") and not Path(space).is_absolute():
            space = str(base / space)
        task_options = {k: item[k] for k in TASK_OPTIONS if k in item}
        if "data" in task_options and not Path(task_options["data"]).is_absolute():
            task_options["data"] = str(base / task_options["data"])
        entry_name = item.get("name") or f"{item['task']}-{space_name(space)}"
        entries.append(
            SuiteEntry(
                name=check_name("entry", str(entry_name)),
                task=item["task"],
                space=space,
                options=settings | {k: item[k] for k in TRAINING_OPTIONS if k in item},
                task_options=task_options,
            )
        )
    names = [entry.name for entry in entries]
    for entry_name in names:
        if names.count(entry_name) > 1:
            raise SearchError(
                f'suite {source}: two entries are named {entry_name!r}; give one a name = "..."'
            )
    return Suite(name, source, tuple(entries))


def _unknown(source: str, where: str, table: Any, valid: tuple[str, ...]) -> None:
    if not isinstance(table, dict):
        raise SearchError(f"suite {source}: {where} must be a table")
    for key in table:
        if key not in valid:
            raise SearchError(
                f"suite {source}: {where} has unknown key {key!r}; valid keys: {', '.join(valid)}"
            )


def _check_types(source: str, where: str, table: dict[str, Any]) -> None:
    for key, value in table.items():
        expected = {**TRAINING_OPTIONS, **TASK_OPTIONS}.get(key)
        if expected is None:
            continue
        fits = isinstance(value, expected) and not isinstance(value, bool)
        if expected is float:
            fits = isinstance(value, int | float) and not isinstance(value, bool)
        if not fits:
            raise SearchError(
                f"suite {source}: {where}: {key} must be {expected.__name__}, got {value!r}"
            )
