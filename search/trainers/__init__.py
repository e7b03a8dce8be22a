"""Trainers: how a configuration's model is trained, behind one contract and one registry.

``numpy`` (the default) trains chains of Dense/Dropout layers in numpy, ``keras`` is Keras
``fit``, and ``compiled`` runs each training as one jitted JAX program. All three keep the
:class:`Trainer` contract; :func:`get_trainer` is the only way the study picks one.
"""

from __future__ import annotations

import importlib

from search.errors import SearchError
from search.trainers.base import (
    Build,
    Outcome,
    Report,
    Settings,
    TrainData,
    Trainer,
    TrialFailedError,
    TrialResult,
    averaged,
    test_scores,
    trial_seed,
)

TRAINERS: dict[str, str] = {
    "numpy": "fit's training of Dense/Dropout chains in numpy, every fold at once, on any "
    "backend (the default)",
    "keras": "Keras fit on cached input pipelines",
    "compiled": "each training as one jitted JAX program (KERAS_BACKEND=jax)",
}
DEFAULT_TRAINER = "numpy"
_CLASSES = {
    "numpy": "search.trainers.numpy_trainer:NumpyTrainer",
    "keras": "search.trainers.keras_fit:KerasFitTrainer",
    "compiled": "search.trainers.compiled:CompiledTrainer",
}


def check_trainer(name: str) -> str:
    if name not in TRAINERS:
        raise SearchError(f"unknown trainer {name!r}; choose one of {', '.join(TRAINERS)}")
    return name


def get_trainer(name: str) -> Trainer:
    """The trainer registered as ``name``."""
    # Imported when asked for: every trainer imports Keras (compiled also JAX), which a
    # bad-input error or `import search` need not wait for.
    module, _, attribute = _CLASSES[check_trainer(name)].partition(":")
    trainer: Trainer = getattr(importlib.import_module(module), attribute)()
    return trainer


__all__ = [
    "TRAINERS",
    "Build",
    "Outcome",
    "Report",
    "Settings",
    "TrainData",
    "Trainer",
    "TrialFailedError",
    "TrialResult",
    "averaged",
    "check_trainer",
    "get_trainer",
    "test_scores",
    "trial_seed",
]
