"""Writing a study's runs: each trial's per-epoch curves as it ends, and after the search the
HParams experiment with one session per trial, from the engine's records.

A trial's curves are read back (:func:`read_curve`) for the metrics of a trial the engine
kept none of (pruned or failed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from search.declared_space import declared_space
from search.engines.base import COSTS
from search.engines.records import FINISHED, RUNNING
from search.results.tensorboard.events import read_events, replace_events
from search.results.tensorboard.hparams import (
    STATE_COLUMN,
    discrete,
    experiment_summary,
    hparam,
    integer_widths,
    make_experiment,
    session_end,
    session_start,
)
from search.trainers.base import best_epoch

# The trial's costs, shown as metrics beside its validation metrics.
_TIMING = {name: f"{description} ({name})" for name, description in COSTS.items()}
# Whole numbers of the trial, shown as hyperparameter columns: the HParams plugin's metrics
# are floats ("10.000"), its hyperparameters may be text of one width (see hparams.discrete).
_COUNTS = {
    "epochs": "epochs the trial trained",
    "best_epoch": "the epoch of its val_* metrics",
}


def run_name(number: int) -> str:
    """The run (folder) of trial ``number``: ``trial_0000``."""
    return f"trial_{number:04d}"


def write_trial(logdir: Path, run: str, curve: Mapping[str, Sequence[float]]) -> None:
    """Write one trial's per-epoch curves (``loss``, ``mse``... and ``val_*``) as scalars.

    Written once at the end of the trial rather than by a Keras callback: it costs no time
    inside ``fit`` and works the same on every Keras backend. A pruned or failed trial
    writes the epochs it ran. Renamed into place without an fsync: the two took about 2 ms
    a trial here, and only a power cut could empty these runs of the last trials (the
    study's storage keeps their results).
    """
    from tensorboard.plugins.scalar.summary_v2 import scalar_pb

    for split, prefix in (("train", ""), ("validation", "val_")):
        series = {
            key[len(prefix) :]: values
            for key, values in curve.items()
            if key.startswith("val_") == bool(prefix)
        }
        if not series:
            continue
        events = []
        for name, values in series.items():
            # scalar_pb's summary once per metric, its value set per epoch: building each
            # anew took a third of a trial's curve-writing time under the profiler.
            scalar = scalar_pb(f"epoch_{name}", 0.0)
            for epoch, value in enumerate(values, start=1):
                summary = type(scalar)()
                summary.CopyFrom(scalar)
                summary.value[0].tensor.float_val[0] = value
                events.append((epoch, summary))
        replace_events(logdir / run / split, events, durable=False)


def read_curve(folder: Path, prefix: str = "") -> dict[str, list[float]]:
    """The per-epoch scalars of one run folder, ``epoch_mse`` read as ``<prefix>mse``, in
    epoch order; empty where the folder has none."""
    from tensorboard.util import tensor_util

    points: dict[str, dict[int, float]] = {}
    for step, summary in read_events(folder):
        for value in summary.value:
            if value.tag.startswith("epoch_"):
                number = float(tensor_util.make_ndarray(value.tensor))
                name = prefix + value.tag[len("epoch_") :]
                points.setdefault(name, {})[step] = number
    return {name: [steps[k] for k in sorted(steps)] for name, steps in points.items()}


def write_study(
    logdir: Path,
    space: Any,
    records: Iterable[Any],
    scores: Mapping[int, Mapping[str, float]],
    objective: str,
    metrics: Sequence[str],
    costs: Sequence[str] = (),
) -> None:
    """Write the HParams experiment and one session per trial, from the engine's records.

    The experiment declares the space's hyperparameters with their declared domains, a
    ``state`` column (complete, pruned, failed) and the metrics: ``val_<metric>`` at the
    best epoch (the objective first) and ``test_<metric>`` of the top-k trials. Each
    session gets the trial's values, its end status (TensorBoard has no "pruned": a pruned
    trial ends as UNKNOWN, a failed one as FAILURE) and its metrics as scalars. A pruned or
    failed trial that ran epochs gets its ``val_*`` at the best epoch of the curve it wrote.

    The experiment is written into the first trial's session rather than a run of its own:
    a run at the root would show in every run list as an empty ``.``.
    """
    records = sorted(records, key=lambda record: record.number)
    validation = [f"val_{m}" for m in metrics]
    validation.sort(key=lambda name: name != objective)
    measured = {
        record.number: _measured(logdir / run_name(record.number), record, objective, validation)
        for record in records
    }
    hparams, shown, own_state, counts = _study_hparams(space, records, measured)
    names = {h.name for h in hparams}
    infos = _metric_infos(validation, objective, metrics, costs)
    experiment = make_experiment(hparams, infos, shown)
    widths = integer_widths(experiment)
    for index, record in enumerate(records):
        values = {k: v for k, v in record.params.items() if k in names and v is not None}
        if own_state:
            values[STATE_COLUMN] = record.state
        step, found = measured[record.number]
        values |= {column: found[name] for name, column in counts.items() if name in found}
        run = logdir / run_name(record.number)
        events = [(0, experiment_summary(experiment))] if index == 0 else []
        events.append((0, session_start(values, widths)))
        found |= {"params": record.n_params, "seconds": record.seconds}
        found |= {f"test_{m}": v for m, v in scores.get(record.number, {}).items()}
        events += [
            (step, _scalar(info.name.tag, float(value)))
            for info in experiment.metric_infos
            if (value := found.get(info.name.tag)) is not None
        ]
        events.append((0, session_end(record.state)))
        replace_events(run, events)
    if not records:
        replace_events(logdir, [(0, experiment_summary(experiment))])
        return
    # A study written before kept its experiment at the root: now the first session has it.
    for old in logdir.glob("*tfevents*"):
        old.unlink(missing_ok=True)


def _study_hparams(
    space: Any, records: Sequence[Any], measured: Mapping[int, tuple[int, dict[str, Any]]]
) -> tuple[list[Any], list[str], bool, dict[str, str]]:
    """The experiment's hyperparameters (the space's declared ones, then those only the
    trials took, then the trial's counts (``epochs``, ``best_epoch``) and a ``state``
    column), those shown first, whether the ``state`` column is the one added here, and
    the column of each count (``trial_epochs`` where the space has an ``epochs`` of its
    own)."""
    from tensorboard.plugins.hparams import summary_v2 as hp

    hparams = _unique([hparam(spec) for spec in declared_space(space).space])
    names = {h.name for h in hparams}
    # A HyperModel's fit declares its hyperparameters (epochs, batch size) only as a trial
    # trains: no build lists them, so their domain is the values the trials took.
    taken = sorted({name for record in records for name in record.params} - names)
    for name in taken:
        seen = _values(records, name)
        hparams.append(hp.HParam(name, discrete(seen) if seen else None))
    names |= set(taken)
    shown = [name for name in getattr(space, "shown_first", ()) if name in names]
    shown = shown or [h.name for h in hparams[:4]]
    counts = {name: f"trial_{name}" if name in names else name for name in _COUNTS}
    for name, column in counts.items():
        seen = sorted({int(found[name]) for _, found in measured.values() if name in found})
        if seen:
            hparams.append(hp.HParam(column, discrete(seen), description=_COUNTS[name]))
    # The space's own hyperparameter wins should it be called "state" too.
    own_state = STATE_COLUMN not in names
    if own_state:
        hparams.append(
            hp.HParam(
                STATE_COLUMN,
                hp.Discrete([*FINISHED, RUNNING]),
                description="how the trial ended",
            )
        )
        shown.append(STATE_COLUMN)
    return hparams, shown, own_state, counts


def _metric_infos(
    validation: Sequence[str], objective: str, metrics: Sequence[str], costs: Sequence[str]
) -> list[Any]:
    """The experiment's metrics: ``validation`` (the objective first), the same metrics on
    the training rows at that epoch, the trial's costs, then the test metrics.

    The dashboard shows the first five metrics by default, and its parallel coordinates
    draw only the trials with a value in every column shown: the metrics every trial that
    trained has come first (two validation, two training metrics and the seconds for a
    regression), the test metrics of the top-k trials last.
    """
    from tensorboard.plugins.hparams import summary_v2 as hp

    training = [f"train_{name[4:]}" for name in validation]
    timing = list(dict.fromkeys(["seconds", *costs]))
    return (
        [
            hp.Metric(
                name,
                display_name=name,
                description=f"validation {name[4:]} at the best epoch"
                + (" (the objective)" if name == objective else ""),
                dataset_type=hp.Metric.VALIDATION,
            )
            for name in validation
        ]
        + [
            hp.Metric(
                name,
                display_name=name,
                description=f"{name[6:]} on the training rows at the best epoch",
                dataset_type=hp.Metric.TRAINING,
            )
            for name in training
        ]
        + [
            hp.Metric(
                name,
                display_name=name,
                description=_TIMING[name] + (" (an objective)" if name in costs else ""),
            )
            for name in timing
        ]
        + [
            hp.Metric(
                f"test_{m}",
                display_name=f"test_{m}",
                description=f"test-split {m} after retraining on the whole training split "
                "(top-k trials only)",
            )
            for m in metrics
        ]
    )


def _measured(
    run: Path, record: Any, objective: str, names: Sequence[str]
) -> tuple[int, dict[str, Any]]:
    """The trial's best epoch (1-based), its ``val_*`` metrics there (the engine's for a
    complete trial, else read off the curve the trial wrote), its ``train_*`` metrics at
    that epoch (off its training curve), and its ``epochs`` and ``best_epoch``; no metrics
    if it wrote no curve or none of its epochs is finite."""
    training = read_curve(run / "train", prefix="train_")
    if record.metrics:
        found: dict[str, Any] = {n: record.metrics[n] for n in names if n in record.metrics}
        found |= {"epochs": record.epochs, "best_epoch": record.best_epoch}
        best = (record.best_epoch or 1) - 1
    else:
        curve = read_curve(run / "validation", prefix="val_")
        at = best_epoch(curve, objective)
        if at is None:
            return 0, {}
        best = at
        found = {n: curve[n][best] for n in names if len(curve.get(n, ())) > best}
        found |= {"epochs": len(curve[objective]), "best_epoch": best + 1}
    found |= {name: values[best] for name, values in training.items() if len(values) > best}
    return best + 1, {k: v for k, v in found.items() if v is not None}


def _values(records: Sequence[Any], name: str) -> list[Any]:
    """The distinct values the trials took for ``name``, in first-seen order."""
    seen = [r.params[name] for r in records if r.params.get(name) is not None]
    return list(dict.fromkeys(seen))


def _unique(hparams: list[Any]) -> list[Any]:
    """keras-tuner allows one name under several conditions; the dashboard needs one each."""
    seen: dict[str, Any] = {}
    for item in hparams:
        seen.setdefault(item.name, item)
    return list(seen.values())


def _scalar(tag: str, value: float) -> Any:
    from tensorboard.plugins.scalar.summary_v2 import scalar_pb

    return scalar_pb(tag, float(value))
