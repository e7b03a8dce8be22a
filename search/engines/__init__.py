"""Engines: keras-tuner and Optuna behind one :class:`Engine` contract.

:func:`open_engine` opens a study's engine over its storage; the names of engines,
algorithms and pruners (what the CLI offers) are declared here once.
"""

from __future__ import annotations

from search.engines.base import (
    CONTENDERS,
    DEFAULT_ALGORITHM,
    DEFAULT_ENGINE,
    DEFAULT_PRUNER,
    ENGINES,
    PRUNERS,
    Asked,
    Chief,
    Engine,
    EngineConfig,
    Objective,
    SearchStoppedError,
    TrialRecord,
    budget_used,
    check_engine,
    open_engine,
    too_many_failures,
)

__all__ = [
    "CONTENDERS",
    "DEFAULT_ALGORITHM",
    "DEFAULT_ENGINE",
    "DEFAULT_PRUNER",
    "ENGINES",
    "PRUNERS",
    "Asked",
    "Chief",
    "Engine",
    "EngineConfig",
    "Objective",
    "SearchStoppedError",
    "TrialRecord",
    "budget_used",
    "check_engine",
    "open_engine",
    "too_many_failures",
]
