"""The population's training: members, their intervals, exploits and results
(:mod:`search.study.pbt` says how PBT works here)."""

from __future__ import annotations

import copy
import csv
import io
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import optuna

from search.engines.base import Asked
from search.engines.optuna.hp import OptunaHyperParameters
from search.errors import SearchError, TrialFailedError
from search.faults import crash_point
from search.files import atomic_path, write_text
from search.space import Space, builder
from search.study.config import StudyConfig
from search.study.pbt import state as saved_state
from search.study.pbt.explore import Moves, pairs, perturb
from search.tasks.scoring import maximised
from search.trainers import TrainData
from search.trainers.base import Outcome, TrialResult, mean_curve, run_seed, set_seed
from search.trainers.numpy.members import Lockstep
from search.trainers.numpy.net import Net
from search.trainers.numpy.threads import one_blas_thread
from search.trainers.numpy.trainer import NumpyTrainer

_log = logging.getLogger("search")

SCHEDULE = "pbt.csv"
KEPT = "pbt"  # the folder of each member's kept weights


def interval_of(config: StudyConfig) -> int:
    """Epochs between exploits: ``--pbt-interval``, else a tenth of the epochs (at least 1)."""
    return config.pbt_interval or max(1, config.settings.epochs // 10)


@dataclass
class Member:
    """One trial of the population: its configuration, its model's state and its lineage."""

    number: int  # its trial's
    name: int  # in pbt.csv: the trial it continues after a kill (else its own number)
    seed: int
    params: dict[str, Any]
    domains: dict[str, Any]  # each hyperparameter's Optuna distribution
    net: Net
    model: keras.Model
    lockstep: Lockstep
    curves: list[dict[str, list[float]]]  # a run's (fold x execution's) each
    best: tuple[float, int, np.ndarray] | None = None  # signed value, epoch, weights (R, P)
    source: int = -1  # the member it copied at the last exploit (itself: none)
    # The configuration each epoch of its lineage trained with.
    schedule: list[dict[str, Any]] = field(default_factory=list)

    def numeric_schedule(self) -> dict[str, list[float]]:
        """Each numeric hyperparameter's value at every epoch of its lineage (TensorBoard's
        scalars; a choice of words has none)."""
        names = {name for epoch in self.schedule for name in epoch}
        return {
            name: [float(epoch.get(name, math.nan)) for epoch in self.schedule]
            for name in sorted(names)
            if all(isinstance(epoch.get(name, 0), (int, float)) for epoch in self.schedule)
        }


def train(
    config: StudyConfig, space: Space, data: TrainData, asked: list[Asked]
) -> tuple[list[Outcome], list[dict[str, list[float]]]]:
    """Train ``asked`` (the whole study's trials) as one population: each trial's result,
    its ``hyperparameters`` the configuration it ended with, and each member's numeric
    hyperparameters over its epochs."""
    folder = config.folder / KEPT
    state = saved_state.load(folder, [trial.checkpoint for trial in asked])
    rng = np.random.default_rng([config.settings.seed, 7])
    if state is None:
        members = [_first(config, space, data, trial) for trial in asked]
        moves = Moves()
        rows: list[dict[str, Any]] = []
        reached = 0
    else:  # a population killed after an interval: on from there
        by_name = {trial.checkpoint: trial for trial in asked}
        members = [_restored(config, space, data, m, by_name[m.name]) for m in state.members]
        rng.bit_generator.state = state.generator
        moves, rows, reached = Moves.of(state.moves), state.rows, state.reached
        _log.info(
            "%s/%s: the population continues from epoch %d, where it was last saved",
            config.task,
            config.study,
            reached,
        )
    epochs, every = config.settings.epochs, interval_of(config)
    with one_blas_thread():
        while reached < epochs:
            length = min(every, epochs - reached)
            for member in members:
                _advance(config, member, reached, length)
            reached += length
            values = [_value(config, member, reached - 1) for member in members]
            rows += [
                _row(member, reached, value) for member, value in zip(members, values, strict=True)
            ]
            _write_schedule(config.folder / SCHEDULE, rows)
            if reached >= epochs:
                break
            for member in members:
                member.source = member.name
            sign = -1.0 if maximised(config.objective) else 1.0
            ranked = [sign * value for value in values]
            for loser, winner in pairs(ranked, config.pbt_quantile, rng):
                members[loser] = _exploit(
                    config, space, data, members[loser], members[winner], reached, rng, moves
                )
            saved_state.save(folder, _state(members, rng, moves, rows, reached))
            crash_point("pbt")
    by_number = {member.number: member for member in members}
    ordered = [by_number[trial.number] for trial in asked]
    outcomes = [_outcome(config, member) for member in ordered]
    saved_state.remove(folder)
    return outcomes, [member.numeric_schedule() for member in ordered]


def _state(
    members: list[Member],
    rng: np.random.Generator,
    moves: Moves,
    rows: list[dict[str, Any]],
    reached: int,
) -> saved_state.State:
    saved = [
        saved_state.Saved(
            m.name,
            m.seed,
            m.params,
            m.domains,
            m.curves,
            m.best,
            m.source,
            m.schedule,
            m.lockstep.flat,
            m.lockstep.slots,
            m.lockstep.step,
            m.lockstep.rng.bit_generator.state,
        )
        for m in members
    ]
    return saved_state.State(reached, rng.bit_generator.state, moves.described(), rows, saved)


def _restored(
    config: StudyConfig, space: Space, data: TrainData, saved: saved_state.Saved, trial: Asked
) -> Member:
    """A member as the state saved it, now the trial ``trial`` (which continues it)."""
    model, batch_size, net = _build(space, _fixed(saved.params), saved.seed)
    lockstep = _lockstep(config, data, net, model, batch_size, 0)
    lockstep.flat[...] = saved.flat
    lockstep.slots, lockstep.step = saved.slots.copy(), saved.step.copy()
    lockstep.rng.bit_generator.state = saved.generator
    best = None if saved.best is None else (float(saved.best[0]), int(saved.best[1]), saved.best[2])
    return Member(
        trial.number,
        saved.name,
        saved.seed,
        saved.params,
        saved.domains,
        net,
        model,
        lockstep,
        saved.curves,
        best,
        source=saved.source,
        schedule=saved.schedule,
    )


def _lockstep(
    config: StudyConfig,
    data: TrainData,
    net: Net,
    model: keras.Model,
    batch_size: int,
    seed: int | list[int],
) -> Lockstep:
    """A member's lockstep, a row per fold x execution, each from ``model``'s weights (a
    copy's or a restored member's are then set)."""
    runs = _runs(config, data)
    lockstep = Lockstep(
        net,
        [net.weights(model)] * len(runs),
        data.x,
        data.y,
        [data.folds[f] for _, f in runs],
        batch_size,
        seed,
    )
    lockstep.snapshots = True
    return lockstep


def check_space(space: Space) -> None:
    """Refuse, before anything is written, a space whose first model (its defaults) the
    numpy trainer cannot train; a later model it cannot train stops the run as this does."""
    import keras_tuner

    try:
        model, _ = builder(space, keras_tuner.HyperParameters())()
    except Exception:  # noqa: BLE001 - the user's build: its trials report it as ever
        return
    _check_trainable(model)


def _check_trainable(model: keras.Model) -> None:
    why = NumpyTrainer().unsupported(model, None)
    if why is not None:
        raise SearchError(
            f"--algorithm pbt trains with the numpy trainer, which cannot train this space's "
            f"model ({why}); choose another algorithm"
        )


def _build(space: Space, hp: Any, seed: int) -> tuple[keras.Model, int, Net]:
    set_seed(seed)
    model, batch_size = builder(space, hp)()
    _check_trainable(model)
    return model, batch_size, Net(model)


def _first(config: StudyConfig, space: Space, data: TrainData, trial: Asked) -> Member:
    """A member as Optuna sampled it: its model built from its trial, trained from its
    seed on every fold x execution (the first run from the built model's weights)."""
    model, batch_size, net = _build(space, trial.hp, trial.seed)
    live = trial.hp.trial
    runs = _runs(config, data)
    initial = [
        net.weights(model) if k == 0 else net.drawn(run_seed(trial.seed, e, f))
        for k, (e, f) in enumerate(runs)
    ]
    lockstep = Lockstep(
        net, initial, data.x, data.y, [data.folds[f] for _, f in runs], batch_size, trial.seed
    )
    lockstep.snapshots = True
    return Member(
        trial.number,
        trial.checkpoint,
        trial.seed,
        dict(live.params),
        dict(live.distributions),
        net,
        model,
        lockstep,
        [{} for _ in runs],
        source=trial.checkpoint,
    )


def _runs(config: StudyConfig, data: TrainData) -> list[tuple[int, int]]:
    settings = config.settings
    return [(e, f) for e in range(settings.executions) for f in range(len(data.folds))]


def _advance(config: StudyConfig, member: Member, start: int, length: int) -> None:
    """Train ``member`` ``length`` epochs from ``start``; keep its best epoch's weights."""
    lockstep = member.lockstep
    sign = -1.0 if maximised(config.objective) else 1.0
    for epoch, logs in enumerate(lockstep.epochs(length), start=start):
        for curve, values in zip(member.curves, logs, strict=True):
            for name, value in zip(lockstep.net.log_names, values, strict=True):
                curve.setdefault(name, []).append(float(value))
        member.schedule.append(member.params)
        value = sign * _value(config, member, epoch)
        if math.isfinite(value) and (member.best is None or value < member.best[0]):
            member.best = (value, epoch, lockstep.snapshot()[0].copy())


def _value(config: StudyConfig, member: Member, epoch: int) -> float:
    """The objective at ``epoch``, the mean over the member's runs (NaN: diverged)."""
    values = [curve[config.objective][epoch] for curve in member.curves]
    return float(np.mean(values)) if all(math.isfinite(v) for v in values) else math.nan


def _exploit(
    config: StudyConfig,
    space: Space,
    data: TrainData,
    loser: Member,
    winner: Member,
    epoch: int,
    rng: np.random.Generator,
    moves: Moves,
) -> Member:
    """``loser`` as a copy of ``winner`` (weights, optimizer state, curves and
    configuration) whose hyperparameters are then explored. Its best epoch is looked for
    afresh from here: the weights its result keeps were last trained with the
    hyperparameters its trial records."""
    params, (model, batch_size, net, domains) = _explored(
        space, winner, loser.seed + epoch, rng, moves
    )
    lockstep = _lockstep(config, data, net, model, batch_size, [loser.seed, epoch])
    lockstep.flat[...] = winner.lockstep.flat
    lockstep.slots = winner.lockstep.slots.copy()
    lockstep.step = winner.lockstep.step.copy()
    return Member(
        loser.number,
        loser.name,
        loser.seed,
        params,
        winner.domains | domains,
        net,
        model,
        lockstep,
        copy.deepcopy(winner.curves),
        source=winner.name,
        schedule=list(winner.schedule),
    )


Built = tuple[keras.Model, int, Net, dict[str, Any]]  # a model, its batch size, net, domains


def _explored(
    space: Space, winner: Member, seed: int, rng: np.random.Generator, moves: Moves
) -> tuple[dict[str, Any], Built]:
    """``winner``'s configuration with every hyperparameter moved whose move keeps the
    weights' shapes and the optimizer's state, and the model it builds."""
    shapes = _shapes(winner)
    moved = {
        name: perturb(value, winner.domains[name], rng)
        for name, value in winner.params.items()
        if name not in moves.structural
    }
    keys = {n: moves.key(n, winner.params[n], v, winner.domains[n]) for n, v in moved.items()}
    hopeful = {name: value for name, value in moved.items() if keys[name] not in moves.broke}
    built = _try(space, winner.params | hopeful, seed)
    if built is not None and _fits(built, shapes):
        moves.kept |= {keys[name] for name in hopeful}
        return winner.params | hopeful, built
    # A move changes the weights' shapes (or the optimizer's state), or asks for a
    # hyperparameter the copied configuration lacks (more layers): each move not known to
    # fit is tried alone, and a name whose move changes the shapes is not moved again.
    params = dict(winner.params)
    for name, value in hopeful.items():
        tried = params | {name: value}
        if keys[name] in moves.kept:
            params = tried
            continue
        alone = _try(space, tried, seed)
        if alone is not None and _fits(alone, shapes):
            params = tried
            moves.kept.add(keys[name])
            continue
        moves.broke.add(keys[name])
        if alone is None or _weight_shapes(alone[2], alone[0]) != shapes[1]:
            moves.structural.add(name)
    built = _try(space, params, seed)
    if built is None or not _fits(built, shapes):  # a verdict learned elsewhere did not hold
        params = dict(winner.params)
        built = _try(space, params, seed)
        assert built is not None, "the copied configuration builds"
    return params, built


def _fits(built: Built, shapes: tuple[Any, ...]) -> bool:
    return _signature(built[2], built[0]) == shapes


def _try(space: Space, params: dict[str, Any], seed: int) -> Built | None:
    """The model of ``params`` and their domains, or None where the space asks for a
    hyperparameter they lack (a move to more layers than the copied configuration has)."""
    hp = _fixed(params)
    try:
        model, batch_size, net = _build(space, hp, seed)
    except ValueError:  # optuna's FixedTrial: a parameter it was not given
        return None
    assert isinstance(hp.trial, optuna.trial.FixedTrial)
    return model, batch_size, net, dict(hp.trial.distributions)


def _fixed(params: dict[str, Any]) -> OptunaHyperParameters:
    return OptunaHyperParameters(optuna.trial.FixedTrial(params))


def _weight_shapes(net: Net, model: keras.Model) -> tuple[tuple[int, ...], ...]:
    return tuple(w.shape for w in net.weights(model))


def _signature(net: Net, model: keras.Model) -> tuple[Any, ...]:
    """What a copied member's weights and optimizer state must fit: the output's kind,
    the weights' shapes, the optimizer's kind and its slots (SGD has one with momentum,
    none without)."""
    slots = len(net.optimizer.slots(np.zeros((1, 1), dtype=np.float32)))
    return (net.kind, _weight_shapes(net, model), net.optimizer.kind, slots)


def _shapes(member: Member) -> tuple[Any, ...]:
    return _signature(member.net, member.model)


def _row(member: Member, epoch: int, value: float) -> dict[str, Any]:
    return {"member": member.name, "epoch": epoch, **member.params, "value": value} | {
        "source": member.source
    }


def _write_schedule(path: Path, rows: list[dict[str, Any]]) -> None:
    """``pbt.csv``: a row per member per interval (its hyperparameters over the interval,
    its objective at the interval's end, and the member whose state it started it from)."""
    names: list[str] = []
    for row in rows:
        names += [name for name in row if name not in names]
    names = ["member", "epoch", *sorted(set(names) - {"member", "epoch", "value", "source"})]
    names += ["value", "source"]
    text = io.StringIO()
    writer = csv.DictWriter(text, names, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, text.getvalue())


def _outcome(config: StudyConfig, member: Member) -> Outcome:
    """The member's result at its best epoch since its last exploit (its curve is its
    lineage's, from epoch 1); its weights there kept (``pbt/<trial>.npy``) for scoring."""
    if member.best is None:
        return TrialFailedError(f"{config.objective} never finite: every run diverged")
    _, best, weights = member.best
    path = config.folder / KEPT / f"{member.number}.npy"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary, temporary.open("wb") as file:
        np.save(file, weights)
    mean = {k: v for k, v in mean_curve(member.curves, config.objective).items()}
    result = TrialResult(
        value=float(mean[config.objective][best]),
        metrics={k: float(v[best]) for k, v in mean.items() if k.startswith("val_")},
        epochs=len(mean[config.objective]),
        best_epoch=best + 1,
        params=member.model.count_params(),
        seconds=0.0,
        curves=member.curves,
    )
    result.hyperparameters = (member.params, member.domains)
    return result


def kept_model(
    config: StudyConfig, space: Space, params: dict[str, Any], number: int
) -> keras.Model | None:
    """A member's trained weights at its best epoch, as a model (the mean of its runs'
    models with ``--cv`` or ``--executions`` above 1); None if none were kept."""
    from search.trainers.base import averaged
    from search.trainers.numpy.tables import Layout

    path = config.folder / KEPT / f"{number}.npy"
    if not path.exists():
        return None
    flat = np.load(path)
    models = []
    for row in flat:
        model, _, net = _build(space, _fixed(dict(params)), 0)
        layout = Layout.of(net.weights(model))
        net.assign(model, [view[0] for view in layout.views(row[None, :])])
        models.append(model)
    return averaged(models)
