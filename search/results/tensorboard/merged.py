"""Reading studies back for ``search tensorboard``: their log folders, their HParams
experiments, and one merged view over several studies.

TensorBoard shows one HParams experiment per server, so several studies are served from a
temporary folder whose one experiment merges theirs. Serving it is the CLI's
(:mod:`search.cli.tensorboard_server`).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from search.errors import SearchError
from search.layout import TENSORBOARD, check_name
from search.results.tensorboard.events import read_events, replace_events
from search.results.tensorboard.hparams import (
    STUDY_COLUMN,
    experiment_summary,
    integer_widths,
    is_session_start,
    merge_experiments,
    plugin_summary,
)


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
        folder / TENSORBOARD
        for task_folder in tasks
        if task_folder.is_dir() and not task_folder.name.startswith(".")
        for folder in sorted(task_folder.iterdir())
        if (folder / TENSORBOARD).is_dir() and (study is None or folder.name == study)
    ]
    if not found:
        where = f"{task}/{study}" if study else (task or "any task")
        others = (
            sorted(p.parent.name for p in (out / task).glob(f"*/{TENSORBOARD}")) if task else []
        )
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
        for _, summary in read_events(folder):
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
    there again with its study's name (see :func:`_in_study`), its curves and the graph
    are linked as they are; the folder is removed afterwards. The studies' runs are read
    as they are when TensorBoard starts.
    """
    if len(logdirs) == 1:
        yield logdirs[0]
        return
    folder = Path(tempfile.mkdtemp(prefix="search-tensorboard-"))
    try:
        experiments = [e for e in map(read_experiment, logdirs) if e is not None]
        merged = merge_experiments(experiments, names) if experiments else None
        widths = integer_widths(merged) if merged is not None else {}
        digits = number_width(logdirs)
        for logdir, name in zip(logdirs, names, strict=True):
            for run in sorted(p for p in logdir.iterdir() if p.is_dir()):
                target = folder / name / run.name
                target.parent.mkdir(parents=True, exist_ok=True)
                summaries = read_events(run)
                if not any(is_session_start(s) for _, s in summaries):
                    target.symlink_to(run.resolve(), target_is_directory=True)
                    continue
                for child in (p for p in run.iterdir() if p.is_dir()):
                    (target / child.name).parent.mkdir(parents=True, exist_ok=True)
                    (target / child.name).symlink_to(child.resolve(), target_is_directory=True)
                rewritten = [(0, experiment_summary(merged))] if merged is not None else []
                label = trial_label(name, run.name, digits)
                rewritten += _in_study(summaries, name, label, widths)
                replace_events(target, rewritten)
                merged = None  # the first session holds the experiment
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def trial_label(study: str, run: str, width: int = 1) -> str:
    """A trial's name in the HParams table over several studies (its session group):
    ``trial_0015`` of ``mlp-optuna-tpe`` is ``15 mlp-optuna-tpe``, the number first so
    that the table's narrow trial column shows it. Its runs keep their paths
    (``mlp-optuna-tpe/trial_0015/validation``).

    The number is left-padded with spaces to ``width`` digits, as integer hyperparameters
    are: the table sorts names as text, and `` 9`` comes before ``10`` where ``9`` would not.
    """
    number = run.removeprefix("trial_")
    return f"{int(number):>{width}} {study}" if number.isdigit() else f"{run} {study}"


def number_width(logdirs: Sequence[Path]) -> int:
    """The digits of the largest trial number among the studies' runs (at least 1)."""
    numbers = [
        int(digits)
        for logdir in logdirs
        for run in logdir.glob("trial_*")
        if (digits := run.name.removeprefix("trial_")).isdigit()
    ]
    return len(str(max(numbers, default=0)))


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
        if is_session_start(summary):
            content = summary.value[0].metadata.plugin_data.content
            start = metadata.parse_session_start_info_plugin_data(content)
            start.group_name = label
            if STUDY_COLUMN not in start.hparams:
                start.hparams[STUDY_COLUMN].string_value = study
            for name, width in widths.items():
                value = start.hparams.get(name)
                if value is not None and value.string_value.strip().isdigit():
                    start.hparams[name].string_value = value.string_value.strip().rjust(width)
            summary = plugin_summary(
                summary_pb2,
                metadata.SESSION_START_INFO_TAG,
                plugin_data_pb2.HParamsPluginData(session_start_info=start),
            )
        kept.append((step, summary))
    return kept
