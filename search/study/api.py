"""The public face of a study: ``search.Study`` and the ``search.Result`` it returns.

Example:
    >>> import search
    >>> study = search.Study("boston", "linear", out="results", epochs=5)  # doctest: +SKIP
    >>> result = study.run(trials=3)  # doctest: +SKIP
    >>> result.leaderboard.head()  # doctest: +SKIP

Every option is checked when the study is made, before anything is written; a mistake
raises :class:`search.SearchError` naming the problem and the valid choices. The command
line is a thin layer over this class.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search.engines.base import DEFAULT_ENGINE, check_engine, check_folds
from search.engines.optuna.storage import check_url
from search.engines.records import TrialRecord, budget_used
from search.errors import SearchError
from search.files import read_json
from search.layout import BEST_MODEL, STUDY_JSON, TRASH
from search.space import Space, check_written
from search.space_lookup import resolve_space
from search.study.config import StudyConfig, check_objectives, check_resume, study_config
from search.study.enqueue import check as check_configurations
from search.study.enqueue import top_configurations
from search.study.options import DEFAULT_TRIALS, DEFAULTS, OPTIONS, TRIALS, check_values
from search.tasks.builtin import load_task
from search.tasks.task import Task
from search.trainers import DEFAULT_TRAINER, check_trainer, trainer_for

if TYPE_CHECKING:
    import keras
    import pandas as pd

    from search.study.run import Callback, Outcomes


@dataclass
class Result:
    """What a study's run leaves: its trials, test scores and summary, and the files written.

    ``leaderboard`` is the trial table (the rows of ``leaderboard.csv``), ``best_model()``
    loads ``best.keras``, and ``study`` is the engine's own object: an ``optuna.Study``, or
    keras-tuner's tuner.
    """

    folder: Path
    records: list[TrialRecord]
    scores: dict[int, dict[str, float]]
    summary: dict[str, Any]
    written: list[Path]
    stopped: str | None  # why the search stopped before its budget, if it did
    leaderboard: pd.DataFrame
    _native: Callable[[], Any]
    _home: Path  # the folder, absolute: a notebook may change its working directory

    @property
    def study(self) -> Any:
        return self._native()

    @property
    def best_value(self) -> float | None:
        value = self.summary.get("best_value")
        return None if value is None else float(value)

    @property
    def best_params(self) -> dict[str, Any]:
        """The hyperparameters of the best trial by validation ({} if none completed)."""
        best = self.summary.get("best_trial")
        return next((dict(r.params) for r in self.records if r.number == best), {})

    def best_model(self) -> keras.Model:
        """The study's model (``best.keras``: the selected ensemble, or the rank-1
        configuration's model): it takes raw feature rows."""
        path = self._home / BEST_MODEL
        if not path.exists():
            raise SearchError(
                f"no best model at {path}: no trial completed, top_k is 0, or the task is a "
                "tabular benchmark (its trials are looked up: no model is trained)"
            )
        import keras  # loaded here: a Result is usable without Keras until a model is asked

        return keras.saving.load_model(path, safe_mode=True)


class Study:
    """One search of ``space`` on ``task`` with an engine; ``run`` runs or resumes it.

    Args:
        task: a :class:`search.Task`, or a built-in task's name (``"boston"``).
        space: a :class:`search.Space` subclass, a built-in space's name (``"mlp"``), a
            path to a ``.py`` file defining one, or a space written for keras-tuner: a
            ``build_model(hp)`` function or a ``keras_tuner.HyperModel`` (class or instance),
            whose models are compiled and trained as written.
        engine: ``"optuna"`` or ``"keras-tuner"``.
        algorithm: the engine's sampler or tuner (``search.ENGINES``); None: its default
            (``tpe`` for Optuna, ``random`` for keras-tuner). ``pbt``: population-based
            training of the study's trials as one population (docs/pbt.md).
        pruner: Optuna's pruner (``search.PRUNERS``); None: ``median`` for Optuna.
            ``wilcoxon`` compares each trained trial's folds with the best trial's, and
            needs ``cv`` >= 4 (docs/options.md).
        objective: a validation metric of the task (``val_mse``, ``val_accuracy``, ...);
            None: ``val_mse`` for regression, ``val_logloss`` otherwise. Several objectives
            (``"val_mse,params"`` or a list; costs ``params`` and ``seconds`` may follow the
            first) make a Pareto search (Optuna only).
        name: the study's folder under ``out/<task>/``; None: ``SPACE-ENGINE-ALGORITHM``.
        out: the results root.
        seed: seeds the sampler, the validation split and every trial.
        epochs: maximum epochs per training.
        patience: early stopping on the objective; 0 turns it off.
        cv: K-fold cross-validation on the training split; None: the task's default.
        executions: trainings per configuration from different initialisations, averaged.
        validation_split: the holdout fraction when ``cv`` is 1.
        top_k: best trials retrained on the whole training split and scored on test.
        ensemble: retrainings of each top-k configuration, their predictions averaged.
        ensemble_size: greedy picks, with replacement, of the ensemble selected across the
            best trials (:mod:`search.study.ensemble`), saved as ``best.keras``; 0 saves the
            rank-1 trial's model alone.
        tensorboard: write a TensorBoard run per trial and the HParams experiment.
        retries: times an interrupted trial runs again when the study resumes.
        max_failures: stop after this many failed trials in a row (or once every trial of
            a smaller budget failed); 0 never stops.
        storage: an Optuna storage URL shared by workers; None: a journal file.
        workers: worker processes on this machine sharing the study.
        trainer: ``numpy``, ``keras`` (fit) or ``compiled`` (``search.TRAINERS``).
        population: trials asked of the engine at once, trained together where they can.
        max_params: a configuration whose model has more weights is not trained (recorded
            with the reason, at the cost of one model build); None: no limit.
        checkpoint_epochs, checkpoint_seconds: a running trial writes its checkpoint (so an
            interrupted one continues from its last one) at most every this many epochs
            and seconds; ``checkpoint_epochs`` 0 writes none (docs/reliability.md).
        cluster: run the ``workers`` as tasks on a Dask cluster (``pip install
            'search[dask]'``): a scheduler's address (``"tcp://HOST:8786"``), ``"local"``
            (a ``LocalCluster`` of this machine's cores), or a Dask ``Client`` or cluster
            object (``dask_jobqueue.SLURMCluster(...)``); None: processes of this machine.
            See docs/workers.md for the storage each cluster needs.
        pbt_interval: ``algorithm="pbt"``: epochs between exploits; None: a tenth of
            ``epochs`` (at least 1). docs/pbt.md.
        pbt_quantile: ``algorithm="pbt"``: the fraction of the members that copy the best
            as many (at most 0.5).
    """

    def __init__(
        self,
        task: Task | str,
        space: type[Space] | str | Any,
        *,
        engine: str = DEFAULT_ENGINE,
        algorithm: str | None = None,
        pruner: str | None = None,
        objective: str | Sequence[str] | None = None,
        name: str | None = None,
        out: str | Path = DEFAULTS["out"],
        seed: int = DEFAULTS["seed"],
        epochs: int = DEFAULTS["epochs"],
        patience: int = DEFAULTS["patience"],
        cv: int | None = None,
        executions: int = DEFAULTS["executions"],
        validation_split: float = DEFAULTS["validation_split"],
        top_k: int = DEFAULTS["top_k"],
        ensemble: int = DEFAULTS["ensemble"],
        ensemble_size: int = DEFAULTS["ensemble_size"],
        tensorboard: bool = DEFAULTS["tensorboard"],
        retries: int = DEFAULTS["retries"],
        max_failures: int = DEFAULTS["max_failures"],
        storage: str | None = None,
        workers: int = DEFAULTS["workers"],
        trainer: str = DEFAULT_TRAINER,
        population: int = DEFAULTS["population"],
        max_params: int | None = None,
        checkpoint_epochs: int = DEFAULTS["checkpoint_epochs"],
        checkpoint_seconds: int = DEFAULTS["checkpoint_seconds"],
        cluster: Any = None,
        pbt_interval: int | None = None,
        pbt_quantile: float = DEFAULTS["pbt_quantile"],
    ) -> None:
        # The keyword options by name, the rows of search.study.options.OPTIONS: the
        # signature takes their defaults from there (None, no value, is written as itself).
        options = {key: value for key, value in locals().items() if key in OPTIONS}
        self.task = load_task(task) if isinstance(task, str) else task
        if not isinstance(self.task, Task):
            raise SearchError(f"a task is a search.Task or a built-in task's name; got {task!r}")
        space_class, reference = resolve_space(space)
        self.space = space_class(self.task.spec)  # refuses a space that does not fit the task
        # A space written for keras-tuner: its first model's loss must fit the task, and
        # decides the labels and the default objective (Keras loads here for it).
        check_written(self.space)
        check_values(options)
        objectives, directions = check_objectives(objective or self.space.objective, self.task)
        algorithm, pruner = check_engine(
            engine,
            algorithm,
            pruner,
            storage=storage,
            population=population,
            workers=workers,
            objectives=len(objectives),
        )
        options["trainer"] = trainer_for(self.task.spec, check_trainer(trainer))
        if algorithm == "pbt":
            _check_pbt(options["trainer"], pbt_quantile, self.space)
        if storage:
            check_url(storage)
        folds = cv or self.task.default_cv
        check_folds(pruner, folds, table=bool(self.task.spec.table))
        if self.task.spec.table and folds > 1:
            raise SearchError(
                f"task {self.task.spec.name!r} is a tabular benchmark: each configuration was "
                "validated once when the table was made, so --cv does not apply"
            )
        if not self.task.spec.table and folds > len(self.task.x_train) // 2:
            raise SearchError(f"--cv {folds} is too many folds for {len(self.task.x_train)} rows")
        _check_portable(space, self.task, "workers > 1" if workers > 1 else None)
        _check_writable(Path(out))
        resolved = {"algorithm": algorithm, "pruner": pruner, "cv": folds}
        self.config = study_config(self.task, reference, options | resolved, objectives, directions)
        if cluster is not None:
            # Before the storage is opened: opening it writes (an SQLite file, a database's
            # tables), and a cluster whose workers cannot reach it is refused without a trace.
            self.config = replace(self.config, cluster=_check_cluster(cluster, space, self))
        if storage:
            from search.engines.optuna.storage import open_storage

            open_storage(storage, self.folder)  # connects: a bad URL fails before any write

    @property
    def name(self) -> str:
        return self.config.study

    @property
    def folder(self) -> Path:
        """``out/<task>/<study>``: the study's files."""
        return self.config.folder

    def enqueue(self, configurations: Sequence[dict[str, Any]], source: str = "enqueue") -> None:
        """Try these configurations first (Optuna's ``enqueue_trial``; keras-tuner's oracle
        proposes them first). Each is checked against the space now: an unknown name, a value
        outside its domain or a missing one raises :class:`search.SearchError`. A resumed
        study does not try a configuration it was given before again."""
        if self.config.algorithm == "hyperband" and self.config.engine == "keras-tuner":
            raise SearchError(
                "--enqueue and --warm-start are not for keras-tuner's hyperband, whose rounds "
                "choose the trials; use --algorithm random or bayesian"
            )
        rows = check_configurations(list(configurations), self.space, source)
        self.config = replace(self.config, enqueue=(*self.config.enqueue, *rows))

    def warm_start(self, study: str) -> None:
        """Enqueue the ``top_k`` best configurations of another study of this task and space."""
        rows = top_configurations(
            self.config.out, self.config.task, study, self.config.space, max(self.config.top_k, 1)
        )
        self.enqueue(rows, f"--warm-start {study}")

    def check(self, fresh: bool = False) -> None:
        """Refuse, before anything is written, a space whose build raises, and to resume a
        stored study of the same name as another search (another space or hyperparameter
        domains, engine, objective, training, validation, seed or data); with ``fresh`` the
        stored study will be set aside instead.

        The space is built here to list its hyperparameters (once per Study: keras-tuner's
        and TensorBoard's uses share the listing). A study written before studies recorded
        their hyperparameters resumes with them unchecked, and records them from then on.
        """
        if not self.config.hyperparameters:
            from search.declared_space import domains  # loads keras-tuner (and Keras)

            self.config = replace(self.config, hyperparameters=domains(self.space))
        existing = self.folder / STUDY_JSON
        if not existing.exists() or fresh:
            return
        check_resume(self.config, self.task, read_json(existing).get("config", {}))

    def run(
        self,
        trials: int = DEFAULT_TRIALS,
        *,
        timeout: float | None = None,
        callbacks: Sequence[Callback] = (),
        fresh: bool = False,
        progress: bool = True,
        on_trial: Callable[[list[TrialRecord]], None] | None = None,
    ) -> Result:
        """Run (or resume) the study until it holds ``trials`` trials, then score it.

        Args:
            trials: trials in the study in total: a second run resumes up to this number.
            timeout: seconds after which no new trial starts (the running ones finish); on a
                tabular task, seconds of recorded training time (its simulated clock).
            callbacks: each called as ``callback(study, frozen_trial)`` after every trial
                that finishes, as Optuna's ``study.optimize`` calls them (an
                ``optuna.Study`` and a ``FrozenTrial``, for either engine), so Optuna's
                integrations such as ``optuna_integration.MLflowCallback`` work unchanged.
            fresh: start over; the stored study is moved to ``out/.trash/``.
            progress: show a progress bar (on stderr) with the best value so far.
            on_trial: called with every trial record after each batch of trials.
        """
        TRIALS.check(trials)
        if timeout is not None and not 0 < timeout < float("inf"):
            raise SearchError(f"timeout must be a number of seconds > 0, got {timeout!r}")
        self.check(fresh)
        if fresh:
            self.set_aside()
        simulated = bool(self.task.spec.table)
        config = replace(
            self.config,
            trials=trials,
            # A tabular task's trials are charged their recorded training time: its budget
            # is read on that simulated clock, not the wall clock.
            deadline=None if timeout is None or simulated else time.time() + timeout,
            charged_budget=timeout if simulated else None,
        )
        # The study's modules import Keras, the engines and the trainers: loaded on the
        # first run, so that `import search` and a refused option stay fast.
        from search.study.run import run

        watch = _progress(config, on_trial) if progress else (on_trial or (lambda _: None))
        start = getattr(watch, "start", lambda _: None)
        try:
            outcomes = run(config, self.task, self.space, watch, tuple(callbacks), start)
        finally:
            getattr(watch, "close", lambda: None)()
        return self._result(outcomes)

    def set_aside(self) -> Path | None:
        """Move the stored study to ``out/.trash/<task>/<study>-<time>``; its new place."""
        if not self.folder.exists():
            return None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        trash = self.config.out / TRASH / self.config.task / f"{self.config.study}-{stamp}"
        trash.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(self.folder), trash)
        return trash

    def _result(self, outcomes: Outcomes) -> Result:
        # pandas loads here, with the first result: `import search` need not wait for it.
        from search.results.leaderboard import ensemble_weights, trial_table
        from search.study.stored import open_stored

        table = trial_table(
            outcomes.records,
            outcomes.scores,
            self.config.directions,
            self.task.metrics,
            ensemble_weights(outcomes.ensemble),
        )
        storage, home = self.config.storage, outcomes.folder.resolve()
        return Result(
            outcomes.folder,
            outcomes.records,
            outcomes.scores,
            outcomes.summary,
            outcomes.written,
            outcomes.stopped,
            table,
            lambda: open_stored(home, storage)[0].native(),
            home,
        )

    def __repr__(self) -> str:
        c = self.config
        return (
            f"Study({c.task}/{c.study}: space={c.space!r}, engine={c.engine!r}, "
            f"algorithm={c.algorithm!r}, objective={c.objective!r})"
        )


def _check_portable(space: Any, task: Task, why: str | None) -> None:
    """Refuse workers in other processes (``why``: what asks for them; None: none do)
    where a worker process could not load the space or the task."""
    if why and not isinstance(space, str):
        raise SearchError(
            f"{why} need a space they can load: a built-in name or a .py file (a "
            "class defined in a notebook or a test cannot be sent to worker processes)"
        )
    if why and task.source is None:
        raise SearchError(
            f"{why} need a task they can load: a built-in task or a CSV file (a task "
            "made from arrays or a DataFrame cannot be sent to worker processes)"
        )


def _check_pbt(trainer: str, quantile: float, space: Any) -> None:
    """Population-based training copies weights between members of the numpy trainer, so
    the space's models must be ones it trains."""
    if trainer != DEFAULT_TRAINER:
        raise SearchError(
            f"--algorithm pbt trains with the numpy trainer (it copies weights between "
            f"members); --trainer {trainer} does not apply"
        )
    if quantile > 0.5:
        raise SearchError(
            f"--pbt-quantile must be at most 0.5 (the bottom and top quantiles may not "
            f"overlap), got {quantile!r}"
        )
    from search.study.pbt import check_space  # Keras and the numpy trainer load here

    check_space(space)


def _check_cluster(cluster: Any, space: Any, study: Study) -> str:
    """The cluster's address, once its workers can run this study: they load its space
    and task, and write where its storage and TensorBoard runs are (connects to it)."""
    # Dask loads only for a study on a cluster.
    from search.study.cluster import address_of, check_study, connect

    address = address_of(cluster)
    _check_portable(space, study.task, "workers on a cluster")
    config = study.config
    client = connect(address)
    check_study(client, address, config.out, config.storage, config.tensorboard, config.engine)
    return address


def _check_writable(out: Path) -> None:
    """Refuse an unwritable results root before anything runs (nothing is created yet)."""
    probe = out
    while not probe.exists():
        probe = probe.parent
    message = f"results directory {str(out)!r} is not writable; pass --out DIR"
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise SearchError(message)
    # os.access says yes to root everywhere, /proc and read-only mounts included: only
    # creating something there tells (the probe is removed at once).
    try:
        tempfile.TemporaryDirectory(dir=probe, prefix=".search-probe-").cleanup()
    except OSError as error:
        raise SearchError(f"{message} ({error.strerror})") from None


def _progress(
    config: StudyConfig, also: Callable[[list[TrialRecord]], None] | None
) -> Callable[[list[TrialRecord]], None]:
    """A tqdm progress bar over the study's budget with the best value so far."""
    import sys

    # Loaded with the first bar: pandas (the leaderboard's module) takes about a second.
    from tqdm.auto import tqdm

    from search.results.leaderboard import best_value

    bars: list[Any] = []  # the bar, made as the run starts: where the study stands then

    def start(records: list[TrialRecord]) -> None:
        # A resumed study's bar starts at its trials so far (its rate counts only this
        # run's), a finished one's at 100%: never at 0%.
        if not bars:
            used = budget_used(records)
            bars.append(
                tqdm(
                    total=config.trials,
                    initial=used,
                    desc=f"{config.task}/{config.study}",
                    unit="trial",
                    file=sys.stderr,
                    dynamic_ncols=True,
                    leave=True,
                )
            )

    def on_trial(records: list[TrialRecord]) -> None:
        if also is not None:
            also(records)
        start(records)
        bar = bars[0]
        bar.n = budget_used(records)
        best = best_value(records, config.directions)
        if best is not None:
            bar.set_postfix_str(f"best {config.objective}={best:.4g}", refresh=False)
        bar.refresh()

    on_trial.start = start  # type: ignore[attr-defined]
    on_trial.close = lambda: [bar.close() for bar in bars]  # type: ignore[attr-defined]
    return on_trial
