"""TensorBoard logs of a study: trial curves, one HParams experiment, the best model's graph.

Layout of ``results/<task>/<study>/tensorboard/``::

    trial_0000/                the trial's session: its values, how it ended, its metrics;
                               the first trial's also holds the HParams experiment
    trial_0000/train/          per-epoch scalars (epoch_loss, epoch_mse, ...), averaged over
    trial_0000/validation/     the folds and executions: the curve the result is read from
    best/                      the best model's graph (traced on TensorFlow: by the run on
                               that backend, else when the study is first served)

Every folder holds one events file, written whole under a temporary name and renamed into
place; the folder's older events files are then removed. A rerun therefore rewrites the
sessions from the engine's storage without ever doubling a trial. The protos are written
with TensorBoard's own writer code, so nothing here needs TensorFlow except the graph.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import types
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import google_crc32c

from search import _compat
from search.engines.base import COSTS
from search.errors import SearchError
from search.files import atomic_path
from search.layout import BEST_MODEL, check_name
from search.trainers.base import best_epoch

FOLDER = "tensorboard"
GRAPH_RUN = "best"
STATE_COLUMN = "state"
STUDY_COLUMN = "study"
# The trial's own measures, shown beside its validation metrics.
_TIMING = {
    "epochs": "epochs the trial trained",
    "best_epoch": "the epoch of its val_* metrics",
} | {name: f"{description} ({name})" for name, description in COSTS.items()}
# Discrete domains longer than this are shown as intervals: a filter with thousands of
# checkboxes helps nobody.
_MAX_DISCRETE = 100


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
        _replace_events(logdir / run / split, events, durable=False)


def declared_space(space: Any) -> Any:
    """Every hyperparameter ``space`` declares, conditional ones included.

    Builds the space into a ``keras_tuner.HyperParameters`` as keras-tuner's tuners do before
    a search (``BaseTuner._activate_all_conditions``): a conditional scope that was never
    active gets its parents set to values that open it. Unlike keras-tuner, it also builds
    with every value of each parent and each small ``Int``: a space that enters a scope only
    inside ``for i in range(layers)`` shows ``units_2`` only when ``layers`` is 3, which
    keras-tuner would learn only when a trial happened to sample it.
    """
    import keras_tuner
    from keras_tuner.engine import hyperparameters as kt

    declared = keras_tuner.HyperParameters()
    space.declare_hyperparameters(declared)
    todo: list[dict[str, Any]] = [{}]
    done: list[dict[str, Any]] = []
    opened: list[Any] = []
    closed: list[Any] = []
    while todo:
        assignment = todo.pop(0)
        if assignment in done:
            continue
        done.append(assignment)
        hp = declared.copy()
        hp.values.update(assignment)
        hp.ensure_active_values()
        try:
            space.build(hp)
        except Exception as error:  # noqa: BLE001 - a user's space can raise anything
            raise SearchError(
                f"space {space.name!r} failed to build while listing its hyperparameters "
                f"with {assignment or 'its defaults'}: {type(error).__name__}: {error}"
            ) from None
        declared.merge(
            [p for p in hp.space if not _compat.declared(declared, p.name, p.conditions)]
        )
        opened += [scope for scope in hp.active_scopes if scope not in opened]
        closed += [scope for scope in hp.inactive_scopes if scope not in closed]
        todo += [
            {condition.name: condition.values[0] for condition in scope}
            for scope in closed
            if scope not in opened
        ]
        parents = {c.name for p in declared.space for c in p.conditions}
        for spec in declared.space:
            if spec.name in parents or isinstance(spec, kt.Int):
                todo += [{spec.name: value} for value in _few_values(spec)]
    return declared


def _few_values(spec: Any) -> list[Any]:
    """The values of a hyperparameter with at most 16 of them, else none."""
    from keras_tuner.engine import hyperparameters as kt

    if isinstance(spec, kt.Boolean):
        return [False, True]
    if isinstance(spec, kt.Choice):
        return list(spec.values)[:16]
    if isinstance(spec, kt.Int) and spec.step is not None and _compat.n_values(spec) <= 16:
        return [int(value) for value in spec.values]
    return []


def hparam(spec: Any) -> Any:
    """The HParams-plugin ``HParam`` for one keras-tuner hyperparameter, with its domain.

    Int: its values (as integers: see :func:`_discrete`), an interval where they are over
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
            domain = _discrete(values)
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
        domain = _discrete(spec.values)
    elif isinstance(spec, kt.Fixed):
        domain = _discrete([spec.value])
    description = ""
    if spec.conditions:
        description = "only when " + " and ".join(
            f"{c.name} in {list(c.values)}" for c in spec.conditions
        )
    return hp.HParam(spec.name, domain, description=description)


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
    from tensorboard.plugins.hparams import summary_v2 as hp

    records = sorted(records, key=lambda record: record.number)
    hparams = _unique([hparam(spec) for spec in declared_space(space).space])
    names = {h.name for h in hparams}
    # A HyperModel's fit declares its hyperparameters (epochs, batch size) only as a trial
    # trains: no build lists them, so their domain is the values the trials took.
    taken = sorted({name for record in records for name in record.params} - names)
    for name in taken:
        seen = _values(records, name)
        hparams.append(hp.HParam(name, _discrete(seen) if seen else None))
    names |= set(taken)
    shown = [name for name in getattr(space, "shown_first", ()) if name in names]
    shown = shown or [h.name for h in hparams[:4]]
    # The space's own hyperparameter wins should it be called "state" too.
    own_state = STATE_COLUMN not in names
    if own_state:
        hparams.append(
            hp.HParam(
                STATE_COLUMN,
                hp.Discrete(["complete", "pruned", "failed", "running"]),
                description="how the trial ended",
            )
        )
        shown.append(STATE_COLUMN)
    validation = [f"val_{m}" for m in metrics]
    validation.sort(key=lambda name: name != objective)
    # The dashboard shows the first five metrics by default, and its parallel coordinates
    # draw only the trials with a value in every column shown: the validation metrics and
    # the trial's epochs and time (every trial that trained has them) come first, the test
    # metrics of the top-k trials last.
    timing = ["epochs", "best_epoch", *dict.fromkeys(["seconds", *costs])]
    metric_infos = (
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
    trials = [
        (record, {k: v for k, v in record.params.items() if k in names and v is not None})
        for record in records
    ]
    if own_state:
        for record, values in trials:
            values[STATE_COLUMN] = record.state
    experiment = _experiment(hparams, metric_infos, shown)
    widths = _integer_widths(experiment)
    for index, (record, values) in enumerate(trials):
        run = logdir / run_name(record.number)
        step, measured = _validation_metrics(run, record, objective, validation)
        events = [(0, _experiment_summary(experiment))] if index == 0 else []
        events.append((0, _session_start(values, widths)))
        measured |= {"params": record.n_params, "seconds": record.seconds}
        measured |= {f"test_{m}": v for m, v in scores.get(record.number, {}).items()}
        events += [
            (step, _scalar(info.name.tag, float(value)))
            for info in experiment.metric_infos
            if (value := measured.get(info.name.tag)) is not None
        ]
        events.append((0, _session_end(record.state)))
        _replace_events(run, events)
    if not trials:
        _replace_events(logdir, [(0, _experiment_summary(experiment))])
        return
    # A study written before kept its experiment at the root: now the first session has it.
    for old in logdir.glob("*tfevents*"):
        old.unlink(missing_ok=True)


def _validation_metrics(
    run: Path, record: Any, objective: str, names: Sequence[str]
) -> tuple[int, dict[str, float | None]]:
    """The trial's best epoch (1-based), its ``val_*`` metrics there and its epochs: the
    engine's for a complete trial, else read off the curve the trial wrote (no metrics if
    it wrote none or none of its epochs is finite)."""
    if record.metrics:
        found: dict[str, float | None] = {
            n: record.metrics[n] for n in names if n in record.metrics
        }
        found |= {"epochs": record.epochs, "best_epoch": record.best_epoch}
        return record.best_epoch or 0, found
    curve = read_curve(run / "validation", prefix="val_")
    best = best_epoch(curve, objective)
    if best is None:
        return 0, {}
    found = {n: curve[n][best] for n in names if len(curve.get(n, ())) > best}
    found |= {"epochs": len(curve[objective]), "best_epoch": best + 1}
    return best + 1, found


def read_curve(folder: Path, prefix: str = "") -> dict[str, list[float]]:
    """The per-epoch scalars of one run folder, ``epoch_mse`` read as ``<prefix>mse``, in
    epoch order; empty where the folder has none."""
    from tensorboard.util import tensor_util

    points: dict[str, dict[int, float]] = {}
    for step, summary in _read_events(folder):
        for value in summary.value:
            if value.tag.startswith("epoch_"):
                number = float(tensor_util.make_ndarray(value.tensor))
                name = prefix + value.tag[len("epoch_") :]
                points.setdefault(name, {})[step] = number
    return {name: [steps[k] for k in sorted(steps)] for name, steps in points.items()}


def _events_without_tensorflow() -> None:
    """Let TensorBoard's event readers use their own file layer where TensorFlow is not
    loaded and Keras runs on another backend: they would import TensorFlow (2.7 s) for its
    file system alone. ``tensorboard.compat.notf`` is TensorBoard's own switch for that, and
    it holds for the whole process (nothing here needs TensorFlow off its backend)."""
    keras = sys.modules.get("keras")
    if "tensorflow" in sys.modules or keras is None or keras.backend.backend() == "tensorflow":
        return
    sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))


def _experiment(hparams: Sequence[Any], metrics: Sequence[Any], shown: Sequence[str]) -> Any:
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


def write_graph(logdir: Path, model: Any) -> bool:
    """Write ``model``'s traced graph for the Graphs tab; False where the backend has none.

    Only the TensorFlow backend traces to a TensorFlow graph. JAX and PyTorch models have no
    graph TensorBoard can show, so nothing is written for them.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf
    from tensorboard.compat.proto import event_pb2

    spec = model.inputs[0]
    function = tf.function(lambda x: model(x, training=False))
    graph = function.get_concrete_function(tf.TensorSpec(spec.shape, spec.dtype)).graph
    graph_def = graph.as_graph_def()
    _plain_scopes(graph_def, _layer_names(model))
    event = event_pb2.Event(graph_def=graph_def.SerializeToString())
    _replace_events(logdir / GRAPH_RUN, [], [event])
    return True


def add_missing_graphs(logdirs: Sequence[Path]) -> None:
    """Trace ``best.keras`` into the ``best`` run of every study that has the model but no
    graph (it ran on another backend, as the CLI's numpy trainer does by default).

    The graph is a view of ``best.keras``, traced by a TensorFlow child process: importing
    TensorFlow takes seconds, paid once, when such a study is first served. Without
    TensorFlow installed, or for a model it cannot load, the Graphs tab stays empty.
    """
    missing = [
        str(logdir)
        for logdir in logdirs
        if (logdir.parent / BEST_MODEL).exists() and not (logdir / GRAPH_RUN).exists()
    ]
    if not missing or importlib.util.find_spec("tensorflow") is None:
        return
    subprocess.run(
        [sys.executable, "-m", "search.results.tensorboard", *missing],
        env=dict(os.environ, KERAS_BACKEND="tensorflow"),
        capture_output=True,
        check=False,
    )


def _trace_saved(logdirs: Sequence[str]) -> None:
    """In the child of :func:`add_missing_graphs`: load each study's model and trace it."""
    import keras

    for logdir in map(Path, logdirs):
        with contextlib.suppress(Exception):  # a model TensorFlow cannot load: no graph
            write_graph(logdir, keras.saving.load_model(logdir.parent / BEST_MODEL))


def _layer_names(model: Any) -> set[str]:
    """The names of ``model`` and of every layer inside it, nested models' included."""
    names = {model.name}
    for layer in getattr(model, "layers", ()):
        names |= _layer_names(layer)
    return names


def _plain_scopes(graph_def: Any, layers: set[str]) -> None:
    """Name the traced graph's scopes after the layers: tracing a Keras model suffixes each
    layer's scope with ``_1`` (``best_1/mlp_1/dense_0_1``), which means nothing to a user."""

    def plain(part: str) -> str:
        return (
            part[:-2]
            if part.endswith("_1") and part[:-2] in layers and part not in layers
            else part
        )

    def rename(name: str) -> str:
        control = name.startswith("^")
        path, colon, port = name.lstrip("^").partition(":")
        path = "/".join(plain(part) for part in path.split("/"))
        return ("^" if control else "") + path + colon + port

    for node in graph_def.node:
        node.name = rename(node.name)
        node.input[:] = [rename(item) for item in node.input]


# ---- reading a study back, and serving studies ---------------------------------------------


def study_logdirs(out: Path, task: str | None = None, study: str | None = None) -> list[Path]:
    """The TensorBoard folders of one study, of every study of a task, or of every task."""
    if study is not None and task is None:
        raise SearchError("give the task of the study: python -m search tensorboard TASK STUDY")
    if task is not None:
        check_name("task", task)
    if study is not None:
        check_name("study", study)
    if not out.is_dir():
        raise SearchError(f"no results under {str(out)!r}; run a search first or pass --out")
    tasks = [out / task] if task else sorted(p for p in out.iterdir() if p.is_dir())
    found = [
        folder / FOLDER
        for task_folder in tasks
        if task_folder.is_dir() and not task_folder.name.startswith(".")
        for folder in sorted(task_folder.iterdir())
        if (folder / FOLDER).is_dir() and (study is None or folder.name == study)
    ]
    if not found:
        where = f"{task}/{study}" if study else (task or "any task")
        others = sorted(p.parent.name for p in (out / task).glob(f"*/{FOLDER}")) if task else []
        hint = f"; studies with logs: {', '.join(others)}" if others and study else ""
        raise SearchError(
            f"no TensorBoard logs for {where} under {str(out)!r}{hint}; run "
            "'python -m search TASK' first (without --no-tensorboard)"
        )
    return found


def read_experiment(logdir: Path) -> Any:
    """The HParams experiment proto of ``logdir`` (in its first session), or None."""
    from tensorboard.plugins.hparams import metadata

    folders = [logdir, *sorted(p for p in logdir.iterdir() if p.is_dir())]
    for folder in folders:
        for _, summary in _read_events(folder):
            for value in summary.value:
                if value.tag == metadata.EXPERIMENT_TAG:
                    return metadata.parse_experiment_plugin_data(value.metadata.plugin_data.content)
    return None


@contextlib.contextmanager
def view(logdirs: Sequence[Path], names: Sequence[str]) -> Iterator[Path]:
    """One logdir for TensorBoard over ``logdirs``: the folder itself, or a merged view.

    TensorBoard shows one HParams experiment per server and picks an arbitrary one when
    several runs hold one. Several studies are therefore served from a temporary folder
    with one experiment that merges theirs (the union of their hyperparameters and
    metrics) and a ``study`` column to sort and filter by. Each trial's session is written
    there again with its study's name (see :func:`merged_run`), its curves and the graph
    are linked as they are; the folder is removed afterwards. The studies' runs are read
    as they are when TensorBoard starts.
    """
    if len(logdirs) == 1:
        yield logdirs[0]
        return
    folder = Path(tempfile.mkdtemp(prefix="search-tensorboard-"))
    try:
        experiments = [e for e in map(read_experiment, logdirs) if e is not None]
        merged = _merge_experiments(experiments, names) if experiments else None
        widths = _integer_widths(merged) if merged is not None else {}
        for logdir, name in zip(logdirs, names, strict=True):
            for run in sorted(p for p in logdir.iterdir() if p.is_dir()):
                target = folder / name / run.name
                target.parent.mkdir(parents=True, exist_ok=True)
                summaries = _read_events(run)
                if not any(_is_session_start(s) for _, s in summaries):
                    target.symlink_to(run.resolve(), target_is_directory=True)
                    continue
                for child in (p for p in run.iterdir() if p.is_dir()):
                    (target / child.name).parent.mkdir(parents=True, exist_ok=True)
                    (target / child.name).symlink_to(child.resolve(), target_is_directory=True)
                rewritten = [(0, _experiment_summary(merged))] if merged is not None else []
                rewritten += _in_study(summaries, name, trial_label(name, run.name), widths)
                _replace_events(target, rewritten)
                merged = None  # the first session holds the experiment
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def trial_label(study: str, run: str) -> str:
    """A trial's name in the HParams table over several studies (its session group):
    ``trial_0015`` of ``mlp-optuna-tpe`` is ``15 mlp-optuna-tpe``, the number first so
    that the table's narrow trial column shows it. Its runs keep their paths
    (``mlp-optuna-tpe/trial_0015/validation``)."""
    number = run.removeprefix("trial_")
    return f"{int(number)} {study}" if number.isdigit() else f"{run} {study}"


def _in_study(
    summaries: Sequence[tuple[int, Any]], study: str, label: str, widths: Mapping[str, int]
) -> list[tuple[int, Any]]:
    """A session's summaries for the merged view: no experiment of its own, its study in
    its values, ``label`` as its name, and its integers as wide as the merged columns'."""
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2

    kept = []
    for step, summary in summaries:
        if any(value.tag == metadata.EXPERIMENT_TAG for value in summary.value):
            continue
        if _is_session_start(summary):
            content = summary.value[0].metadata.plugin_data.content
            start = metadata.parse_session_start_info_plugin_data(content)
            start.group_name = label
            if STUDY_COLUMN not in start.hparams:
                start.hparams[STUDY_COLUMN].string_value = study
            for name, width in widths.items():
                value = start.hparams.get(name)
                if value is not None and value.string_value.strip().isdigit():
                    start.hparams[name].string_value = value.string_value.strip().rjust(width)
            summary = _plugin_summary(
                summary_pb2,
                metadata.SESSION_START_INFO_TAG,
                plugin_data_pb2.HParamsPluginData(session_start_info=start),
            )
        kept.append((step, summary))
    return kept


def _is_session_start(summary: Any) -> bool:
    from tensorboard.plugins.hparams import metadata

    return any(value.tag == metadata.SESSION_START_INFO_TAG for value in summary.value)


def _read_events(folder: Path) -> list[tuple[int, Any]]:
    """The (step, summary) pairs of ``folder``'s own events files (not its subfolders')."""
    _events_without_tensorflow()
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    return [
        (event.step, event.summary)
        for path in sorted(folder.glob("*tfevents*"))
        for event in EventFileLoader(str(path)).Load()
        if event.HasField("summary")
    ]


def free_port(host: str) -> int:
    """A TCP port nobody listens on now (the OS picks it)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
            return int(probe.getsockname()[1])
    except OSError as error:
        raise SearchError(f"cannot open a port on host {host!r}: {error}") from None


def server_command(logdir: Path, host: str, port: int) -> list[str]:
    """The command line of a TensorBoard server over ``logdir``."""
    return [
        sys.executable,
        "-m",
        "tensorboard.main",
        "--logdir",
        str(logdir),
        "--host",
        host,
        "--port",
        str(port),
    ]


def wait_until_serving(process: subprocess.Popen[Any], url: str, timeout: float = 120) -> None:
    """Return once ``url`` answers; SearchError if the server exits or never answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SearchError(
                f"TensorBoard exited with code {process.returncode} before serving {url} "
                "(see its messages above)"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    raise SearchError(f"TensorBoard did not answer at {url} within {timeout:.0f} s")


# ---- events files ---------------------------------------------------------------------------


def _replace_events(
    folder: Path,
    summaries: Sequence[tuple[int, Any]],
    extra: Sequence[Any] = (),
    durable: bool = True,
) -> None:
    """Make ``folder``'s only events file one holding ``summaries`` (step, Summary).

    The file is written under a name TensorBoard ignores, synced, then renamed into place;
    only then are the folder's older events files removed. A reader sees the old run or the
    new one, and a rerun never leaves a second copy of a trial.
    """
    from tensorboard.compat.proto import event_pb2

    folder.mkdir(parents=True, exist_ok=True)
    now = time.time()
    events = [event_pb2.Event(wall_time=now, file_version="brain.Event:2")]
    events += [event_pb2.Event(wall_time=now, step=step, summary=s) for step, s in summaries]
    for event in extra:
        event.wall_time = now
        events.append(event)
    # The name sorts after any older one, so a live TensorBoard moves on to the new file.
    name = f"events.out.tfevents.{time.time_ns():020d}.{socket.gethostname()}.{os.getpid()}.v2"
    records = b"".join(_record(event.SerializeToString()) for event in events)
    with atomic_path(folder / name, durable) as temporary:
        temporary.write_bytes(records)
    for old in folder.glob("*tfevents*"):
        if old.name != name and old.is_file():
            old.unlink(missing_ok=True)


def _record(data: bytes) -> bytes:
    """One record of an events file (TFRecord framing): the length, its masked CRC-32C, the
    data, its masked CRC-32C. tensorboard's writer computes the checksums in a Python loop
    over the bytes when TensorFlow is absent: a third of a trial's curve-writing time under
    the profiler."""
    length = struct.pack("<Q", len(data))
    return length + _masked_crc(length) + data + _masked_crc(data)


def _masked_crc(data: bytes) -> bytes:
    crc = google_crc32c.value(data)
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


def _experiment_summary(experiment: Any) -> Any:
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2

    return _plugin_summary(
        summary_pb2,
        metadata.EXPERIMENT_TAG,
        plugin_data_pb2.HParamsPluginData(experiment=experiment),
    )


def _merge_experiments(experiments: Sequence[Any], studies: Sequence[str]) -> Any:
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
                continue
            known = infos[info.name]
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


def _values(records: Sequence[Any], name: str) -> list[Any]:
    """The distinct values the trials took for ``name``, in first-seen order."""
    seen = [r.params[name] for r in records if r.params.get(name) is not None]
    return list(dict.fromkeys(seen))


def _discrete(values: Sequence[Any]) -> Any:
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


def _integer_widths(experiment: Any) -> dict[str, int]:
    """The hyperparameters whose integer values are written as text, with their widths: a
    text domain of digits (a trial's value of such a text choice stays text)."""
    widths = {}
    for info in experiment.hparam_infos:
        texts = [value.string_value for value in info.domain_discrete.values]
        if texts and all(t.strip().isdigit() and len(t) == len(texts[0]) for t in texts):
            widths[info.name] = len(texts[0])
    return widths


def _unique(hparams: list[Any]) -> list[Any]:
    """keras-tuner allows one name under several conditions; the dashboard needs one each."""
    seen: dict[str, Any] = {}
    for item in hparams:
        seen.setdefault(item.name, item)
    return list(seen.values())


def _session_start(values: Mapping[str, Any], widths: Mapping[str, int] | None = None) -> Any:
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
    return _plugin_summary(
        summary_pb2,
        metadata.SESSION_START_INFO_TAG,
        plugin_data_pb2.HParamsPluginData(session_start_info=start),
    )


def _session_end(state: str) -> Any:
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    status = {
        "complete": api_pb2.STATUS_SUCCESS,
        "failed": api_pb2.STATUS_FAILURE,
        "running": api_pb2.STATUS_RUNNING,
    }.get(state, api_pb2.STATUS_UNKNOWN)
    end = plugin_data_pb2.SessionEndInfo(status=status, end_time_secs=time.time())
    return _plugin_summary(
        summary_pb2,
        metadata.SESSION_END_INFO_TAG,
        plugin_data_pb2.HParamsPluginData(session_end_info=end),
    )


def _plugin_summary(summary_pb2: Any, tag: str, data: Any) -> Any:
    from tensorboard.plugins.hparams import metadata

    summary = summary_pb2.Summary()
    summary.value.add(
        tag=tag, metadata=metadata.create_summary_metadata(data), tensor=metadata.NULL_TENSOR
    )
    return summary


def _scalar(tag: str, value: float) -> Any:
    from tensorboard.plugins.scalar.summary_v2 import scalar_pb

    return scalar_pb(tag, float(value))


if __name__ == "__main__":
    _trace_saved(sys.argv[1:])
