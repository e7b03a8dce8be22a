"""The engine contract, and the names of engines, algorithms and pruners with their checks.

An engine asks its sampler for configurations, runs each through the harness's objective
(which builds the space's model and trains it with a :mod:`search.trainers` trainer), and
keeps every trial in its own storage: an Optuna journal file or a keras-tuner project
folder. That storage is the source of truth; :meth:`Engine.records` reads every trial back
as :mod:`search.engines.records`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from search.engines.records import RUNNING, Records, TrialRecord
from search.errors import SearchError

if TYPE_CHECKING:  # these import Keras and Optuna: seconds a bad-input error need not wait
    import optuna

    from search.trainers.base import Outcome, Report, TrialResult

ENGINES: dict[str, dict[str, str]] = {
    "optuna": {
        "tpe": "Tree-structured Parzen Estimator (Optuna's default)",
        "random": "independent uniform / log-uniform sampling",
        "cmaes": "CMA-ES on the numeric parameters, random on the categorical ones",
        "gp": "Gaussian-process Bayesian optimisation (needs torch: pip install '.[gp]')",
        "qmc": "quasi-Monte Carlo (scrambled Sobol) sampling",
        "nsga2": "NSGA-II, a genetic algorithm (Pareto fronts with several objectives)",
        "nsga3": "NSGA-III, a genetic algorithm for many objectives (reference points)",
        "pbt": "population-based training: --trials members trained together, the worst "
        "copying the best every --pbt-interval epochs (numpy trainer; docs/pbt.md)",
    },
    "keras-tuner": {
        "random": "keras-tuner RandomSearch",
        "bayesian": "keras-tuner BayesianOptimization (Gaussian process)",
        "hyperband": "keras-tuner Hyperband: many short trials, the best trained longer",
        "grid": "keras-tuner GridSearch over Choice/Int/stepped values (unstepped Floats "
        "stay at their default)",
    },
}
PRUNERS: dict[str, str] = {
    "none": "every trial runs all its epochs (or until early stopping)",
    "median": "stop a trial whose value is worse than the median of earlier trials at that epoch",
    "hyperband": "Optuna's Hyperband pruner over epochs",
    "successive-halving": "asynchronous successive halving over epochs",
    "wilcoxon": "after a trial's folds, a Wilcoxon signed-rank test against the best trial's "
    "folds marks it pruned when it is surely worse (needs --cv 4 or more)",
}
# Pruners that compare trials fold by fold (the cross-validation folds are their steps).
FOLD_PRUNERS = ("wilcoxon",)
# The folds the Wilcoxon pruner needs to prune at all: it prunes at p < 0.1, and the least
# p-value its one-sided signed-rank test gives K folds is 1/2^K (K = 3: 0.125).
LEAST_FOLDS = 4
# What `python -m search bench` compares by default: every sampler with a trial-by-trial
# budget (grid and qmc cover a space rather than search it).
CONTENDERS = (
    "keras-tuner:random",
    "keras-tuner:bayesian",
    "keras-tuner:hyperband",
    "optuna:tpe",
    "optuna:random",
    "optuna:cmaes",
    "optuna:gp",
)
DEFAULT_ENGINE = "optuna"
DEFAULT_ALGORITHM = {"optuna": "tpe", "keras-tuner": "random"}
DEFAULT_PRUNER = {"optuna": "median", "keras-tuner": "none"}


@dataclass(frozen=True)
class Asked:
    """A trial an engine hands to the objective: its hyperparameters and how to train it."""

    hp: Any
    number: int
    seed: int
    report: Report | None = None  # called after every epoch; raises to prune the trial
    epochs: int | None = None  # overrides the study's epochs (Hyperband's rounds)
    # The trial whose checkpoint it continues: an interrupted trial that Optuna runs again
    # under a new number continues the first attempt's (None: its own number).
    continues: int | None = None

    @property
    def checkpoint(self) -> int:
        """The number the trial's checkpoint file is named by."""
        return self.number if self.continues is None else self.continues


Objective = Callable[[list[Asked]], list["Outcome"]]
"""objective(trials) -> each trial's result, or the exception that ended it. The trials of
one call may train together (a population: ``--population``)."""


class Engine(Protocol):
    def optimize(
        self,
        objective: Objective,
        n_trials: int,
        on_trial: Callable[[list[TrialRecord]], None],
    ) -> None:
        """Run trials until the study holds ``n_trials`` finished trials.

        ``on_trial`` gets every record of the study (all workers') after each trial.
        """

    def records(self) -> Records:
        """Every trial in the engine's storage, in trial order, counted by the engine's
        ledger: ``fresh`` holds those that finished since the previous call."""

    def hyperparameters(self, record: TrialRecord) -> Any:
        """An ``hp`` object that rebuilds the model of ``record``."""

    def enqueue(self, configurations: list[dict[str, Any]]) -> None:
        """Have the search try these configurations first; one given before (a resumed
        study) is not tried again."""

    def chief(self, n_trials: int, address: str) -> Chief | None:
        """A server that worker processes dial for their trials (keras-tuner's oracle), or
        None where workers share the storage itself (Optuna)."""

    def native(self) -> Any:
        """The engine's own object: an ``optuna.Study``, or keras-tuner's tuner."""

    def optuna_study(self) -> optuna.Study:
        """The ``optuna.Study`` that callbacks ``(study, frozen_trial)`` get: the study
        itself (Optuna), or an in-memory one with the study's name and direction."""

    def frozen_trial(self, record: TrialRecord) -> optuna.trial.FrozenTrial:
        """``record`` as Optuna's ``FrozenTrial``, for callbacks."""


class Chief(Protocol):
    """A study's server for worker processes: hands out trials, hears of dead workers."""

    def worker_env(self, tuner_id: str, host: str = "127.0.0.1") -> dict[str, str]:
        """The environment a worker needs to dial this chief as ``tuner_id``."""

    def interrupt(self, tuner_id: str, reason: str) -> str | None:
        """End (or queue again) the trial of a worker that is gone."""

    def check_heartbeats(self) -> list[str]:
        """End the trials of workers that stopped beating."""

    def stop_new_trials(self) -> None:
        """Start no more trials: the search stopped itself."""

    def done(self) -> bool:
        """Whether every trial of the budget has ended."""

    def mark_interrupted(self) -> None:
        """Ctrl-C: the running trials are kept to run again on resume."""

    def close(self) -> None:
        """Stop serving."""


@dataclass(frozen=True)
class EngineConfig:
    engine: str
    algorithm: str
    pruner: str
    objective: str
    direction: str
    seed: int
    epochs: int
    retries: int = 0
    max_failures: int = 10
    storage: str | None = None  # an Optuna storage URL; None: the study folder's journal
    study_name: str = "study"
    # Wall-clock time (time.time()) after which no new trial is started: a time budget.
    deadline: float | None = None
    # Training seconds charged to the finished trials after which no new trial starts: the
    # time budget of a simulated clock (a tabular task's recorded training times); None: none.
    charged_budget: float | None = None
    population: int = 1  # trials asked at once and handed to the objective together
    folds: int = 1  # the cross-validation folds (--cv): a fold pruner's steps
    # Every objective and its direction, when there are several (a Pareto search).
    objectives: tuple[str, ...] = ()
    directions: tuple[str, ...] = ()


# Costs a study can minimise beside its validation metrics (several objectives).
COSTS: dict[str, str] = {
    "params": "the model's weights",
    "seconds": "the trial's training seconds",
}


def objective_values(result: TrialResult, objectives: Sequence[str]) -> list[float]:
    """Each objective's value for a trained configuration: a validation metric at the best
    epoch of the first objective, or a cost (:data:`COSTS`)."""
    costs = {"params": float(result.params), "seconds": float(result.seconds)}
    return [costs[name] if name in costs else float(result.metrics[name]) for name in objectives]


def past(deadline: float | None) -> bool:
    """Whether a time budget's deadline (``time.time()``) has passed; None never passes."""
    return deadline is not None and time.time() >= deadline


def out_of_time(
    deadline: float | None, charged_budget: float | None, records: Sequence[TrialRecord]
) -> bool:
    """Whether a time budget is spent: its wall-clock ``deadline`` passed, or the training
    seconds charged to the finished trials (a simulated clock) reached ``charged_budget``."""
    if past(deadline):
        return True
    if charged_budget is None:
        return False
    return sum(r.seconds or 0.0 for r in records if r.state != RUNNING) >= charged_budget


@contextlib.contextmanager
def heartbeat(beat: Callable[[], None], interval: float) -> Iterator[None]:
    """Call ``beat`` now and every ``interval`` seconds, in a thread, while the block runs:
    a worker's sign of life to the others (or to its chief) while it trains."""
    stop = threading.Event()

    def loop() -> None:
        try:
            beat()
            while not stop.wait(interval):
                beat()
        except Exception:  # noqa: BLE001
            # The storage or the chief is gone for good (its retries are spent): the main
            # thread meets the same fault when it next uses it, and ends the run in one
            # line; a traceback from this thread would only add noise.
            return

    thread = threading.Thread(target=loop, daemon=True, name="heartbeat")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


# Optuna's samplers that search several objectives for their Pareto front.
PARETO_ALGORITHMS = ("tpe", "nsga2", "nsga3", "random", "qmc")


def _check_pareto(engine: str, algorithm: str, pruner: str | None) -> None:
    """Several objectives: a Pareto search, which only some engines and samplers do."""
    if engine == "keras-tuner":
        raise SearchError(
            "several objectives need --engine optuna: keras-tuner's MultiObjective sums the "
            "objectives into one, which is not a Pareto search"
        )
    if algorithm not in PARETO_ALGORITHMS:
        raise SearchError(
            f"algorithm {algorithm!r} searches one objective; with several choose one of "
            f"{', '.join(PARETO_ALGORITHMS)}"
        )
    if pruner not in (None, "none"):
        raise SearchError(
            f"pruner {pruner!r} cannot prune a search of several objectives (Optuna prunes "
            "single-objective studies only); use --pruner none"
        )


def _check_pbt(
    engine: str, pruner: str | None, population: int, workers: int, objectives: int
) -> str:
    """Population-based training: the Optuna engine's, one process, its own pruning."""
    if engine != "optuna":
        raise SearchError(
            "algorithm 'pbt' is for the optuna engine (keras-tuner has no population-based "
            "training); use --engine optuna"
        )
    if objectives > 1:
        raise SearchError(
            "--algorithm pbt ranks its members by one objective; with several choose one of "
            f"{', '.join(PARETO_ALGORITHMS)}"
        )
    if pruner not in (None, "none"):
        raise SearchError(
            f"pruner {pruner!r} does not apply to --algorithm pbt, whose exploits replace "
            "the worst members; use --pruner none"
        )
    if population > 1 or workers > 1:
        raise SearchError(
            "--algorithm pbt trains its --trials members together in one process: "
            "--population and --workers do not apply"
        )
    return "none"


def check_engine(
    engine: str,
    algorithm: str | None = None,
    pruner: str | None = None,
    *,
    storage: str | None = None,
    population: int = 1,
    workers: int = 1,
    objectives: int = 1,
) -> tuple[str, str]:
    """Validate the engine's names and options together; returns the algorithm and the
    pruner (the engine's defaults where None; no pruner with several objectives)."""
    if engine not in ENGINES:
        raise SearchError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    algorithm = algorithm or DEFAULT_ALGORITHM[engine]
    if algorithm == "pbt":
        return algorithm, _check_pbt(engine, pruner, population, workers, objectives)
    if algorithm not in ENGINES[engine]:
        raise SearchError(
            f"unknown algorithm {algorithm!r} for {engine}; choose one of "
            f"{', '.join(ENGINES[engine])}"
        )
    if objectives > 1:
        _check_pareto(engine, algorithm, pruner)
        pruner = pruner or "none"
    pruner = pruner or DEFAULT_PRUNER[engine]
    if pruner not in PRUNERS:
        raise SearchError(f"unknown pruner {pruner!r}; choose one of {', '.join(PRUNERS)}")
    if engine == "keras-tuner" and pruner != "none":
        raise SearchError(
            f"pruner {pruner!r} is for the optuna engine; keras-tuner prunes with "
            "--algorithm hyperband (use --pruner none)"
        )
    if engine == "keras-tuner" and storage:
        raise SearchError(
            "--storage is for the optuna engine; keras-tuner's study lives in the chief's "
            "project folder (several hosts: set KERASTUNER_TUNER_ID, KERASTUNER_ORACLE_IP "
            "and KERASTUNER_ORACLE_PORT, see the README)"
        )
    if engine == "keras-tuner" and population > 1 and workers > 1:
        raise SearchError(
            "--population with --workers is for the optuna engine; keras-tuner's workers "
            "take one trial at a time from the chief (use one of the two)"
        )
    return algorithm, pruner


def check_folds(pruner: str, folds: int, table: bool = False) -> None:
    """A pruner that compares trials fold by fold needs enough folds to compare
    (:data:`LEAST_FOLDS`), which a tabular benchmark (``table``: one recorded value a
    configuration) never has."""
    if pruner not in FOLD_PRUNERS:
        return
    others = ", ".join(name for name in PRUNERS if name not in FOLD_PRUNERS)
    if table:
        raise SearchError(
            f"pruner {pruner!r} compares trials fold by fold, and a tabular benchmark "
            f"recorded one value a configuration; choose another pruner ({others})"
        )
    if folds < LEAST_FOLDS:
        raise SearchError(
            f"pruner {pruner!r} compares trials fold by fold and prunes at p < 0.1, which "
            f"--cv {folds} never reaches (K folds: p >= 1/2^K); use --cv {LEAST_FOLDS} or "
            f"more, or another pruner ({others})"
        )
