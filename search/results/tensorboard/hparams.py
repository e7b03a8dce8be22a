"""The HParams plugin's protos: each hyperparameter's domain, the experiment, a session's
start and end, and the merge of several studies' experiments into one.

TensorBoard's HParams types have no integer (every number shows with five significant
digits: ``2.0000``), so whole numbers are written as text of one width (see
:func:`discrete`), in the domains and in the sessions' values alike.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from search.engines.records import COMPLETE, FAILED, RUNNING

STATE_COLUMN = "state"
STUDY_COLUMN = "study"
# Discrete domains longer than this are shown as intervals: a filter with thousands of
# checkboxes helps nobody.
_MAX_DISCRETE = 100


def hparam(spec: Any) -> Any:
    """The HParams-plugin ``HParam`` for one keras-tuner hyperparameter, with its domain.

    Int: its values (as integers: see :func:`discrete`), an interval where they are over
    100; Float: an interval, or its values when stepped; Choice, Boolean and Fixed: their
    values.
    """
    from keras_tuner.engine import hyperparameters as kt
    from tensorboard.plugins.hparams import summary_v2 as hp

    domain: Any = None
    if isinstance(spec, kt.Int):
        every = spec.step is None or (spec.sampling == "linear" and spec.step == 1)
        span = int(spec.max_value) - int(spec.min_value)
        if not every:
            values = [round(value) for value in _stepped_values(spec)]
        elif span < _MAX_DISCRETE:
            values = list(range(int(spec.min_value), int(spec.max_value) + 1))
        else:
            values = []
        if values and len(values) <= _MAX_DISCRETE:
            domain = discrete(values)
        else:
            domain = hp.IntInterval(int(spec.min_value), int(spec.max_value))
    elif isinstance(spec, kt.Float):
        steps = _stepped_values(spec) if spec.step is not None else []
        if steps and len(steps) <= _MAX_DISCRETE:
            domain = hp.Discrete([_tidy(float(value)) for value in steps])
        else:
            domain = hp.RealInterval(float(spec.min_value), float(spec.max_value))
    elif isinstance(spec, kt.Boolean):
        domain = hp.Discrete([False, True])
    elif isinstance(spec, kt.Choice):
        domain = discrete(spec.values)
    elif isinstance(spec, kt.Fixed):
        domain = discrete([spec.value])
    description = ""
    if spec.conditions:
        description = "only when " + " and ".join(
            f"{c.name} in {list(c.values)}" for c in spec.conditions
        )
    return hp.HParam(spec.name, domain, description=description)


def _stepped_values(spec: Any) -> list[float]:
    """A stepped range's values, the upper bound included when the steps reach it.

    keras-tuner's own list can stop one step short of a reachable bound (0.0 to 0.5 by 0.1
    ends at 0.4 by float rounding) while Optuna samples the bound; the domain holds both.
    """
    if spec.sampling != "linear":
        return [float(value) for value in spec.values]
    steps = (spec.max_value - spec.min_value) / spec.step
    if steps > 10 * _MAX_DISCRETE:
        return []
    count = round(steps) if abs(steps - round(steps)) < 1e-6 else int(steps)
    return [spec.min_value + i * spec.step for i in range(count + 1)]


def _tidy(value: Any) -> Any:
    """Floats to 12 significant digits, in domains and values alike: 0.30000000000000004 is
    0.3 in the dashboard, and a value still matches its domain's entry."""
    if isinstance(value, float):
        return float(f"{value:.12g}")
    return value


def discrete(values: Sequence[Any]) -> Any:
    """A Discrete domain; numbers of mixed int and float types become floats.

    TensorBoard's HParams types have no integer (every number shows with five significant
    digits: ``2.0000``), so whole numbers are written as text, right-aligned with spaces to
    one width: they show as ``2`` and ``16``, and sort (in the table, the filters and the
    parallel coordinates' axis) in numeric order. Negative integers stay numbers.
    """
    from tensorboard.plugins.hparams import summary_v2 as hp

    items = list(dict.fromkeys(values))
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in items)
    if numbers and all(isinstance(v, int) and v >= 0 for v in items):
        width = max(len(str(v)) for v in items)
        return hp.Discrete([_integer_text(v, width) for v in items])
    if numbers:
        items = [_tidy(float(v)) for v in items]
    elif not all(isinstance(v, bool) for v in items):
        items = [str(v) for v in items]
    return hp.Discrete(items)


def _integer_text(value: int, width: int) -> str:
    """An integer as its digits, left-padded with spaces to ``width``: text sorts as numbers."""
    return str(int(value)).rjust(width)


def integer_widths(experiment: Any) -> dict[str, int]:
    """The hyperparameters whose integer values are written as text, with their widths: a
    text domain of digits (a trial's value of such a text choice stays text)."""
    widths = {}
    for info in experiment.hparam_infos:
        texts = [value.string_value for value in info.domain_discrete.values]
        if texts and all(t.strip().isdigit() and len(t) == len(texts[0]) for t in texts):
            widths[info.name] = len(texts[0])
    return widths


def make_experiment(hparams: Sequence[Any], metrics: Sequence[Any], shown: Sequence[str]) -> Any:
    """The experiment proto, the hyperparameters in ``shown`` first.

    TensorBoard's HParams dashboard shows the first five hyperparameters by default, after
    its server sorts them by ``differs`` (true first), then by name (see
    ``_sort_and_reduce_to_hparams_limit`` in its ``backend_context``): ``differs`` is what
    it offers to pick the columns shown first, so exactly ``shown`` set it.
    """
    from tensorboard.plugins.hparams import api_pb2

    experiment = api_pb2.Experiment(time_created_secs=time.time())
    for item in hparams:
        info = experiment.hparam_infos.add(name=item.name, description=item.description)
        if item.domain is not None:
            item.domain.update_hparam_info(info)
        info.differs = item.name in shown
    experiment.metric_infos.extend(metric.as_proto() for metric in metrics)
    return experiment


def experiment_summary(experiment: Any) -> Any:
    """The summary that carries ``experiment`` in an events file."""
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2

    return plugin_summary(
        summary_pb2,
        metadata.EXPERIMENT_TAG,
        plugin_data_pb2.HParamsPluginData(experiment=experiment),
    )


def session_start(values: Mapping[str, Any], widths: Mapping[str, int] | None = None) -> Any:
    """A session start without a group name: each trial is its own group, named by its run.
    An integer whose column is written as text (``widths``) is written as its text."""
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2

    widths = widths or {}
    start = plugin_data_pb2.SessionStartInfo(start_time_secs=time.time())
    for name, value in sorted(values.items()):
        if isinstance(value, bool):
            start.hparams[name].bool_value = value
        elif name in widths and isinstance(value, int | float) and float(value).is_integer():
            start.hparams[name].string_value = _integer_text(int(value), widths[name])
        elif isinstance(value, int | float):
            start.hparams[name].number_value = _tidy(float(value))
        else:
            start.hparams[name].string_value = str(value)
    return plugin_summary(
        summary_pb2,
        metadata.SESSION_START_INFO_TAG,
        plugin_data_pb2.HParamsPluginData(session_start_info=start),
    )


def is_session_start(summary: Any) -> bool:
    """Whether ``summary`` starts a session (a trial's values)."""
    from tensorboard.plugins.hparams import metadata

    return any(value.tag == metadata.SESSION_START_INFO_TAG for value in summary.value)


def session_end(state: str) -> Any:
    """A session's end: TensorBoard has no "pruned", so a pruned trial ends as UNKNOWN."""
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    status = {
        COMPLETE: api_pb2.STATUS_SUCCESS,
        FAILED: api_pb2.STATUS_FAILURE,
        RUNNING: api_pb2.STATUS_RUNNING,
    }.get(state, api_pb2.STATUS_UNKNOWN)
    end = plugin_data_pb2.SessionEndInfo(status=status, end_time_secs=time.time())
    return plugin_summary(
        summary_pb2,
        metadata.SESSION_END_INFO_TAG,
        plugin_data_pb2.HParamsPluginData(session_end_info=end),
    )


def plugin_summary(summary_pb2: Any, tag: str, data: Any) -> Any:
    """A summary of the HParams plugin holding ``data`` under ``tag``."""
    from tensorboard.plugins.hparams import metadata

    summary = summary_pb2.Summary()
    summary.value.add(
        tag=tag, metadata=metadata.create_summary_metadata(data), tensor=metadata.NULL_TENSOR
    )
    return summary


def merge_experiments(experiments: Sequence[Any], studies: Sequence[str]) -> Any:
    """One experiment with every hyperparameter and metric of ``experiments``, and a
    ``study`` column of ``studies`` (unless a space has its own ``study``).

    A hyperparameter in several studies keeps the first one's description; its domain
    becomes the union of theirs (values, or the enclosing interval) when the kinds agree.
    Integers written as text are padded to the widest study's width.
    """
    from tensorboard.plugins.hparams import api_pb2

    merged = api_pb2.Experiment(time_created_secs=time.time())
    infos: dict[str, Any] = {}
    metrics: dict[tuple[str, str], Any] = {}
    for experiment in experiments:
        for info in experiment.hparam_infos:
            if info.name not in infos:
                infos[info.name] = api_pb2.HParamInfo()
                infos[info.name].CopyFrom(info)
            else:
                _widen(infos[info.name], info)
        for metric in experiment.metric_infos:
            metrics.setdefault((metric.name.group, metric.name.tag), metric)
    for info in infos.values():
        texts = [value.string_value for value in info.domain_discrete.values]
        if texts and all(text.strip().isdigit() for text in texts):
            numbers = sorted({int(text) for text in texts})
            width = max(len(str(number)) for number in numbers)
            info.domain_discrete.Clear()
            info.domain_discrete.extend([_integer_text(n, width) for n in numbers])
    if STUDY_COLUMN not in infos:
        infos[STUDY_COLUMN] = api_pb2.HParamInfo(
            name=STUDY_COLUMN,
            description="the study the trial belongs to",
            type=api_pb2.DATA_TYPE_STRING,
            differs=True,
        )
        infos[STUDY_COLUMN].domain_discrete.extend(sorted(set(studies)))
    merged.hparam_infos.extend(infos.values())
    merged.metric_infos.extend(metrics.values())
    return merged


def _widen(known: Any, info: Any) -> None:
    """Widen the merged ``known`` hyperparameter by another study's ``info`` of that name."""
    known.differs = known.differs or info.differs
    if known.HasField("domain_discrete") and info.HasField("domain_discrete"):
        values = list(known.domain_discrete.values)
        for value in info.domain_discrete.values:
            if value not in values:
                known.domain_discrete.values.append(value)
    elif known.HasField("domain_interval") and info.HasField("domain_interval"):
        low = min(known.domain_interval.min_value, info.domain_interval.min_value)
        high = max(known.domain_interval.max_value, info.domain_interval.max_value)
        known.domain_interval.min_value, known.domain_interval.max_value = low, high
