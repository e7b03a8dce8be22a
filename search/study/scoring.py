"""Test scores: the best configurations retrained on the whole training split, as ensembles.

The ``top_k`` configurations by validation are each retrained ``ensemble`` times for their
best epoch count, and their test predictions are the mean of those models: one retraining's
test score varies with its initialisation about as much as good configurations differ. The
rank-1 configuration, chosen by validation only, is saved as ``best.keras``.
"""

from __future__ import annotations

from pathlib import Path

import keras

from search import _compat
from search.engines.base import Engine
from search.engines.records import TrialRecord
from search.errors import TrialFailedError
from search.faults import crash_point
from search.files import atomic_path, write_text
from search.layout import BEST_MODEL, BEST_SUMMARY
from search.results.leaderboard import rank_complete
from search.space import Space, builder
from search.study.config import ENSEMBLE_SEED_STEP, StudyConfig
from search.tasks.task import Task
from search.trainers import TrainData, averaged, get_trainer, test_scores
from search.trainers.base import without_tensorflow


def score_top(
    config: StudyConfig,
    task: Task,
    space: Space,
    engine: Engine,
    data: TrainData,
    records: list[TrialRecord],
) -> tuple[dict[int, dict[str, float]], keras.Model | None]:
    """Retrain the ``top_k`` configurations on the whole training split; score on test.

    Each is trained ``ensemble`` times for its best epoch count (from validation), from its
    trial's seed on, and its predictions are the mean of those models: one retraining's test
    score varies with its initialisation about as much as configurations differ. The rank-1
    configuration's model is saved as ``best.keras`` with the standardisation inside, so it
    takes raw feature rows.
    """
    scores: dict[int, dict[str, float]] = {}
    best_model = None
    trainer = get_trainer(config.trainer)
    for record in rank_complete(records, config.directions)[: config.top_k]:
        build = builder(space, engine.hyperparameters(record))
        seed = record.seed or 0
        seeds = [seed + ENSEMBLE_SEED_STEP * member for member in range(config.ensemble)]
        # A retraining may diverge (another seed than the trial's, or more data per epoch):
        # the ensemble averages the members that did not.
        retrained = trainer.retrain(build, record.best_epoch or 1, data, seeds)
        members = [m for m in retrained if not isinstance(m, TrialFailedError)]
        if not members:  # this configuration gets no test score; the next one may
            continue
        model = averaged(members)
        scores[record.number] = test_scores(model, task)
        crash_point("scoring")
        if best_model is None:
            best_model = with_standardization(model, task)
            save_model(best_model, config.folder / BEST_MODEL)
            write_text(config.folder / BEST_SUMMARY, model_summary(best_model))
    return scores, best_model


def with_standardization(model: keras.Model, task: Task) -> keras.Model:
    """An uncompiled copy of ``model`` behind a fixed Normalization layer holding the
    training split's mean/std: a model for inference (:func:`for_inference`)."""
    inputs = keras.Input((task.spec.n_features,), name="features")
    scaled = keras.layers.Normalization(
        mean=task.mean, variance=task.std.astype("float64") ** 2, name="standardize"
    )(inputs)
    return keras.Model(inputs, for_inference(model)(scaled), name="best")


def for_inference(model: keras.Model) -> keras.Model:
    """A copy of ``model``, nested models included, with its weights and without what
    ``compile`` gave it.

    A compiled model is saved with its optimizer, and loading it compiles it again and builds
    a fresh optimizer. The fast trainers never build the Keras optimizer (they run their own
    update), so the saved one has no slots and every load warned that it skipped the
    optimizer's variables, once per ensemble member. ``best.keras`` is for predictions: it
    keeps no optimizer, and loads without a word.
    """
    with without_tensorflow():  # cloning serializes each layer's config, as saving does
        copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def model_summary(model: keras.Model) -> str:
    """``model.summary()`` as text, nested models expanded (the best model wraps the space's)."""
    lines: list[str] = []
    # Keras draws the table with rich, which cuts it at 80 columns when not on a terminal
    # (and in a notebook would show an empty block under the cell: _compat says why).
    with _compat.rich_outside_jupyter():
        model.summary(
            line_length=78, expand_nested=True, print_fn=lambda text, **_: lines.append(text)
        )
    return "\n".join(lines).rstrip() + "\n"


def save_model(model: keras.Model, path: Path) -> None:
    """Save atomically: Keras writes a temporary file that then replaces ``path``."""
    with atomic_path(path) as temporary, without_tensorflow():
        model.save(temporary)
