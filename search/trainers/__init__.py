"""Trainers: how a configuration's model is trained, behind one contract and one registry.

``numpy`` (:data:`DEFAULT_TRAINER`) trains chains of Dense/Dropout layers in a compiled numba
loop (:mod:`search.trainers.numpy`), ``keras`` is Keras ``fit`` (:mod:`.keras_fit`), and
``compiled`` runs each training as one jitted JAX program (:mod:`search.trainers.compiled`).
All three keep the :class:`Trainer` contract (:mod:`.base`); the two fast ones train groups
of configurations through one driver (:mod:`.population`) and share their model checks
(:mod:`.checks`). :func:`get_trainer` is the only way the study picks one.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from pathlib import Path

from search.errors import SearchError
from search.tasks.task import TaskSpec
from search.trainers.base import (
    Build,
    Job,
    Outcome,
    Report,
    Settings,
    TrainData,
    Trainer,
    TrialResult,
    averaged,
    fold_rows,
    predict,
    run_seed,
    test_scores,
    trial_seed,
    weighted,
)

DEFAULT_TRAINER = "numpy"
"""The trainer a study uses where none is named."""
TRAINERS: dict[str, str] = {
    "numpy": "fit's training of Dense/Dropout chains in a compiled loop, every fold at once "
    "on every core, on any backend",
    "keras": "Keras fit on cached input pipelines",
    "compiled": "each training as one jitted JAX program (KERAS_BACKEND=jax)",
    "lookup": "a tabular benchmark's trial: its configuration looked up in the table, "
    "charged the recorded training time (the tabular tasks' only trainer)",
}
TRAINERS[DEFAULT_TRAINER] += " (the default)"
_CLASSES = {
    "numpy": "search.trainers.numpy:NumpyTrainer",
    "keras": "search.trainers.keras_fit:KerasFitTrainer",
    "compiled": "search.trainers.compiled:CompiledTrainer",
    "lookup": "search.trainers.lookup:LookupTrainer",
}
LOOKUP = "lookup"


def check_trainer(name: str) -> str:
    if name not in TRAINERS:
        raise SearchError(f"unknown trainer {name!r}; choose one of {', '.join(TRAINERS)}")
    return name


def trainer_for(task: TaskSpec, trainer: str) -> str:
    """The trainer a study of ``task`` uses when ``trainer`` is asked for: a tabular
    benchmark's trials are looked up (the default trainer stands for the lookup there), and
    only theirs are."""
    if task.table:
        if trainer not in (DEFAULT_TRAINER, LOOKUP):
            raise SearchError(
                f"task {task.name!r} is a tabular benchmark: its trials are looked up, not "
                f"trained, so --trainer {trainer} does not apply (its trainer is {LOOKUP!r})"
            )
        return LOOKUP
    if trainer == LOOKUP:
        trained = ", ".join(name for name in TRAINERS if name != LOOKUP)
        raise SearchError(
            f"--trainer {LOOKUP} looks trials up in a tabular benchmark's table; task "
            f"{task.name!r} is trained (choose one of {trained})"
        )
    return trainer


def light_backend(trainer: str) -> str | None:
    """The Keras backend to run ``trainer`` on where the user named none, or None for Keras'
    own choice (TensorFlow).

    The numpy trainer needs Keras only to build each configuration's model, read it and save
    the best: Keras' numpy backend does that in 5 ms a model against TensorFlow's 37, and
    imports in half the time. The lookup trainer builds no model at all: Keras is only
    imported. It needs JAX installed (Keras' numpy backend uses it). A
    ``KERAS_BACKEND`` variable is the user's choice and stays, and so is a backend other
    than TensorFlow in ``keras.json`` (Keras writes that file itself, naming TensorFlow).
    """
    if (
        trainer not in ("numpy", LOOKUP)
        or "keras" in sys.modules
        or os.environ.get("KERAS_BACKEND")
    ):
        return None
    config = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "keras.json"
    try:
        if json.loads(config.read_text()).get("backend", "tensorflow") != "tensorflow":
            return None
    except (OSError, ValueError, AttributeError):
        pass  # no readable keras.json: Keras' default would apply
    return "numpy" if importlib.util.find_spec("jax") is not None else None


def get_trainer(name: str) -> Trainer:
    """The trainer registered as ``name``."""
    # Imported when asked for: every trainer imports Keras (compiled also JAX), which a
    # bad-input error or `import search` need not wait for.
    module, _, attribute = _CLASSES[check_trainer(name)].partition(":")
    trainer: Trainer = getattr(importlib.import_module(module), attribute)()
    return trainer


def compile_ahead(trainer: str) -> None:
    """Start compiling what ``trainer`` compiles once, beside what the process does before
    its first trial (the numpy trainer's loop, :mod:`.numpy.loop.background`; the other
    trainers compile per model). Once per process: the run command calls it as soon as its
    task is loaded, and every study's process before its first trial."""
    if trainer == "numpy":
        importlib.import_module("search.trainers.numpy.loop.background").start()


__all__ = [
    "DEFAULT_TRAINER",
    "TRAINERS",
    "Build",
    "Job",
    "Outcome",
    "Report",
    "Settings",
    "TrainData",
    "Trainer",
    "TrialResult",
    "averaged",
    "check_trainer",
    "trainer_for",
    "compile_ahead",
    "fold_rows",
    "get_trainer",
    "light_backend",
    "predict",
    "run_seed",
    "test_scores",
    "trial_seed",
    "weighted",
]
