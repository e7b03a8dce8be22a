"""Packaging: the console script, --version, the license, and the keras-tuner internals the
engine builds on (these fail loudly if a keras-tuner release moves them)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib

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


def test_the_keras_tuner_internals_the_engine_uses_are_where_it_expects() -> None:
    """search/engines/keras_tuner_engine.py imports and subclasses these private parts."""
    from keras_tuner.engine import base_tuner, hyperparameters
    from keras_tuner.src import config, protos
    from keras_tuner.src.distribute import oracle_chief, oracle_client
    from keras_tuner.src.engine import trial

    assert hasattr(base_tuner.BaseTuner, "_try_run_and_update_trial")
    assert hasattr(base_tuner.BaseTuner, "_is_worker")
    assert hasattr(oracle_chief, "OracleServicer")
    assert hasattr(oracle_client, "OracleClient")
    assert hasattr(protos.get_service_grpc(), "add_OracleServicer_to_server")
    assert hasattr(trial.TrialStatus, "IDLE")
    assert hasattr(hyperparameters.HyperParameters, "conditional_scope")
    assert config is not None


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
