"""Test scores: the best configurations retrained on the whole training split, as ensembles.

The ``top_k`` configurations by validation are each retrained ``ensemble`` times for their
best epoch count scaled to the whole split (:func:`retrain_epochs`), and their test
predictions are the mean of those models: one retraining's test score varies with its
initialisation about as much as good configurations differ. With ``ensemble_size`` > 0
(one objective), an ensemble is selected across the best trials
(:mod:`search.study.ensemble`), its members retrained the same way, and their weighted mean
is saved as ``best.keras``; otherwise the rank-1 configuration, chosen by validation only,
is.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

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
from search.study.ensemble import Selection, select
from search.tasks.tabular import TabularTask
from search.tasks.task import Task
from search.trainers import TrainData, Trainer, averaged, get_trainer, test_scores, weighted
from search.trainers.base import Settings, without_tensorflow


@dataclass
class Scored:
    """What scoring gives: the top-k trials' test metrics, the model saved as
    ``best.keras`` (None if no configuration could be retrained), and the selected ensemble
    as ``study.json`` keeps it (None without one)."""

    scores: dict[int, dict[str, float]]
    best: keras.Model | None
    ensemble: dict[str, Any] | None = None


def score_top(
    config: StudyConfig,
    task: Task,
    space: Space,
    engine: Engine,
    data: TrainData,
    records: list[TrialRecord],
) -> Scored:
    """Retrain the ``top_k`` configurations on the whole training split; score on test;
    select the ensemble (``ensemble_size`` > 0) and save ``best.keras``.

    Each configuration is trained ``ensemble`` times for its best epoch count (from
    validation, scaled to the whole split by :func:`retrain_epochs`), from its trial's seed
    on, and its predictions are the mean of those models. ``best.keras`` (the ensemble,
    else the rank-1 configuration's model) has the standardisation inside, so it takes raw
    feature rows. A tabular task's configurations are looked up instead
    (:func:`looked_up`): no model, no ensemble, no ``best.keras``.
    """
    if isinstance(task, TabularTask):
        return looked_up(config, task, space, engine, records)
    trainer = get_trainer(config.trainer)
    ranked = rank_complete(records, config.directions)
    final: dict[int, keras.Model | None] = {}  # each configuration retrained once

    def retrained(record: TrialRecord) -> keras.Model | None:
        if record.number not in final:
            final[record.number] = _retrain(config, trainer, space, engine, data, record)
        return final[record.number]

    scores: dict[int, dict[str, float]] = {}
    best = None
    for record in ranked[: config.top_k]:
        model = retrained(record)
        if model is None:  # this configuration gets no test score; the next one may
            continue
        scores[record.number] = test_scores(model, task)
        crash_point("scoring")
        if best is None:
            best = model
    scored = Scored(scores, best)
    # PBT's members keep their trained weights, which an ensemble's retrainings on fresh
    # folds could not: the rank-1 member is best.keras.
    selecting = config.algorithm != "pbt"
    if config.ensemble_size and len(config.objectives) == 1 and ranked and selecting:
        selection = select(
            trainer, space, engine, data, ranked, config.objective, config.ensemble_size
        )
        if selection is not None:
            by_number = {record.number: record for record in ranked}
            models = [retrained(by_number[member]) for member in selection.members]
            scored = _with_ensemble(scored, selection, models, task)
    if scored.best is not None:
        scored.best = with_standardization(scored.best, task)
        save_model(scored.best, config.folder / BEST_MODEL)
        write_text(config.folder / BEST_SUMMARY, model_summary(scored.best))
    return scored


def looked_up(
    config: StudyConfig,
    task: TabularTask,
    space: Space,
    engine: Engine,
    records: list[TrialRecord],
) -> Scored:
    """The ``top_k`` configurations' test values: each one's mean over the table's recorded
    runs (the package keeps no test metric; :mod:`search.tasks.tabular` says why this one)."""
    assert task.table is not None, "a tabular task has its table"
    scores: dict[int, dict[str, float]] = {}
    for record in rank_complete(records, config.directions)[: config.top_k]:
        configuration: Any = builder(space, engine.hyperparameters(record))()[0]
        found = task.table.lookup(configuration, record.seed or 0)
        scores[record.number] = {task.headline: found.mean}
    return Scored(scores, None)


def _retrain(
    config: StudyConfig,
    trainer: Trainer,
    space: Space,
    engine: Engine,
    data: TrainData,
    record: TrialRecord,
) -> keras.Model | None:
    """One configuration retrained ``ensemble`` times on the whole training split, as the
    mean of the retrainings that did not diverge (None if all did)."""
    if config.algorithm == "pbt":
        # A member's trained weights are its result: its schedule is not replayed.
        from search.study.pbt import kept_model

        return kept_model(config, space, record.params, record.number)
    build = builder(space, engine.hyperparameters(record))
    seed = record.seed or 0
    seeds = [seed + ENSEMBLE_SEED_STEP * member for member in range(config.ensemble)]
    # A retraining may diverge (another seed than the trial's, or more data per epoch):
    # the ensemble averages the members that did not.
    members = trainer.retrain(build, retrain_epochs(record.best_epoch, data.settings), data, seeds)
    kept = [m for m in members if not isinstance(m, TrialFailedError)]
    return averaged(kept) if kept else None


def retrain_epochs(best_epoch: int | None, settings: Settings) -> int:
    """The epochs of a retraining on the whole training split: the trial's best epoch count
    times the rows the whole split has over those its search trainings had (5/4 for 5-fold
    CV or a 20% holdout). With more rows a model overfits later; the factor was chosen on
    inner holdouts (docs/performance.md, "the retraining's epochs")."""
    scale = (
        settings.cv / (settings.cv - 1) if settings.cv > 1 else 1 / (1 - settings.validation_split)
    )
    return max(1, round((best_epoch or 1) * scale))


def _with_ensemble(
    scored: Scored, selection: Selection, models: list[keras.Model | None], task: Task
) -> Scored:
    """``scored`` with the selected ensemble as its best model, scored on test. A member
    whose every retraining diverged is left out, the others' weights scaled up to sum 1."""
    kept = [
        (model, trial, weight)
        for model, trial, weight in zip(models, selection.members, selection.weights, strict=True)
        if model is not None
    ]
    if not kept:
        return scored
    total = sum(weight for _, _, weight in kept)
    weights = tuple(weight / total for _, _, weight in kept)
    selection = replace(selection, members=tuple(t for _, t, _ in kept), weights=weights)
    model = weighted([m for m, _, _ in kept], list(weights))
    return Scored(scored.scores, model, selection.described(test_scores(model, task)))


def ensemble_summary(ensemble: dict[str, Any] | None, headline: str) -> dict[str, Any]:
    """The study table's ensemble columns: ``ensemble`` (``trial:weight`` of each member),
    its validation value on the fresh folds and its test ``headline`` metric."""
    if ensemble is None:
        return {"ensemble": None, "ensemble_value": None, "ensemble_test_value": None}
    return {
        "ensemble": " ".join(f"{m['trial']}:{m['weight']:.3g}" for m in ensemble["members"]),
        "ensemble_value": ensemble["validation"],
        "ensemble_test_value": (ensemble["test"] or {}).get(headline),
    }


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
        copy = keras.models.clone_model(model, clone_function=_layer_for_inference)
    copy.set_weights(model.get_weights())
    # Keras compiles the clone of a compiled model: a new model over the clone's graph is not.
    return keras.Model(copy.inputs, copy.outputs, name=model.name)


def _layer_for_inference(layer: keras.layers.Layer) -> keras.layers.Layer:
    """A fresh copy of one layer, a nested model through :func:`for_inference` at any
    depth: an ensemble of averaged retrainings nests the trained models two deep."""
    if isinstance(layer, keras.Model):
        return for_inference(layer)
    return type(layer).from_config(layer.get_config())


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
