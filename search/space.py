"""The base class of every search space, and how a space is found: a class, a name, a file.

A space is written once against keras-tuner's ``hp`` API (``hp.Int``, ``hp.Float``,
``hp.Choice``, ``hp.Boolean``, ``hp.Fixed``, ``hp.conditional_scope``). keras-tuner runs its
``build(hp)`` as a ``HyperModel``; the Optuna engine runs the same ``build(hp)`` through
:class:`search.engines.optuna_hp.OptunaHyperParameters`.

Keras is imported inside the methods that build models, not here: ``import search`` and a
class written against :class:`Space` load without it.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from search.errors import SearchError
from search.tasks.scoring import METRICS
from search.tasks.task import TaskSpec

if TYPE_CHECKING:
    import keras

BUILTIN_SPACES: tuple[str, ...] = ("linear", "logistic", "mlp")  # modules of search.spaces
OPTIMIZERS: tuple[str, ...] = ("sgd", "momentum", "nesterov", "rmsprop", "adam")


class Space:
    """A tunable model family for the tasks whose kind is in ``kinds``.

    Subclasses set ``kinds`` and ``description`` and implement ``build(hp)``, which returns a
    compiled model; :meth:`compile` gives the task's loss, metrics and output layer. The batch
    size is a hyperparameter too: :meth:`tune_training` declares it, and the trainer reads it
    back with ``hp.get("batch_size")``.

    Example:
        >>> import keras
        >>> class Tiny(Space):
        ...     kinds = ("regression",)
        ...     def build(self, hp):
        ...         inputs = keras.Input((self.task.n_features,))
        ...         outputs = self.output_layer()(inputs)
        ...         return self.compile(keras.Model(inputs, outputs), hp)
    """

    kinds: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""

    def __init__(self, task: TaskSpec) -> None:
        self.name = type(self).__name__.lower()
        if task.kind not in self.kinds:
            raise SearchError(
                f"space {self.name!r} does not fit task {task.name!r} (a {task.kind} task); "
                f"it fits {', '.join(self.kinds)} tasks"
            )
        self.task = task

    def build(self, hp: Any) -> keras.Model:
        """The compiled model for the hyperparameters ``hp`` asks for."""
        raise NotImplementedError(f"space {self.name!r} does not define build(hp)")

    def declare_hyperparameters(self, hp: Any) -> None:
        """Hyperparameters declared before any build (keras-tuner's hook); none by default."""

    def output_layer(self, **kwargs: Any) -> keras.layers.Dense:
        """The last layer for the task's kind: linear, sigmoid or softmax."""
        import keras  # noqa: F811 - deferred: see the module's docstring

        if self.task.kind == "regression":
            return keras.layers.Dense(1, name="output", **kwargs)
        if self.task.kind == "binary":
            return keras.layers.Dense(1, activation="sigmoid", name="output", **kwargs)
        return keras.layers.Dense(
            self.task.n_classes, activation="softmax", name="output", **kwargs
        )

    def tune_optimizer(self, hp: Any) -> keras.optimizers.Optimizer:
        """Optimizer, learning rate (log scale) and gradient clipping, as the tutorial varied."""
        import keras  # noqa: F811 - deferred: see the module's docstring

        name = hp.Choice("optimizer", list(OPTIMIZERS), default="adam")
        learning_rate = hp.Float("learning_rate", 1e-4, 1e-1, sampling="log", default=1e-3)
        clipnorm = hp.Choice("clipnorm", [0.0, 1.0, 5.0], default=0.0) or None
        if name == "sgd":
            return keras.optimizers.SGD(learning_rate, clipnorm=clipnorm)
        if name in ("momentum", "nesterov"):
            return keras.optimizers.SGD(
                learning_rate, momentum=0.9, nesterov=name == "nesterov", clipnorm=clipnorm
            )
        if name == "rmsprop":
            return keras.optimizers.RMSprop(learning_rate, clipnorm=clipnorm)
        return keras.optimizers.Adam(learning_rate, clipnorm=clipnorm)

    def tune_training(self, hp: Any) -> None:
        """Declare the batch size, which the trainer (not the model) uses."""
        hp.Choice("batch_size", [16, 32, 64, 128], default=32)

    def compile(self, model: keras.Model, hp: Any) -> keras.Model:
        """Compile ``model`` with a tuned optimizer and the task's loss and metrics."""
        self.tune_training(hp)
        model.compile(
            optimizer=self.tune_optimizer(hp),
            loss=loss_for(self.task.kind),
            metrics=metrics_for(self.task.kind),
        )
        return model


DEFAULT_BATCH_SIZE = 32  # when a space does not tune "batch_size"


def builder(space: Space, hp: Any) -> Callable[[], tuple[keras.Model, int]]:
    """What a trainer calls for each model of a configuration: a fresh model from
    ``space.build(hp)``, and the batch size ``hp`` holds."""

    def build() -> tuple[keras.Model, int]:
        model = space.build(hp)
        return model, int(hp.get("batch_size")) if _has(hp, "batch_size") else DEFAULT_BATCH_SIZE

    return build


def _has(hp: Any, name: str) -> bool:
    try:
        hp.get(name)
    except (KeyError, ValueError):
        return False
    return True


def loss_for(kind: str) -> keras.losses.Loss:
    import keras  # noqa: F811 - deferred: see the module's docstring

    if kind == "regression":
        return keras.losses.MeanSquaredError()
    if kind == "binary":
        return keras.losses.BinaryCrossentropy()
    return keras.losses.SparseCategoricalCrossentropy()


def metrics_for(kind: str) -> list[keras.metrics.Metric]:
    """The Keras metrics of the task's kind, named as in :data:`search.tasks.METRICS`: the
    history then has ``val_mse``, ``val_logloss``, ..."""
    classes = keras_metric_classes()
    return [classes[kind, name](name=name) for name in METRICS[kind]]


def keras_metric_classes() -> dict[tuple[str, str], type[keras.metrics.Metric]]:
    """The Keras metric class of each (kind, metric) of :data:`search.tasks.METRICS`."""
    import keras  # noqa: F811 - deferred: see the module's docstring

    return {
        ("regression", "mse"): keras.metrics.MeanSquaredError,
        ("regression", "mae"): keras.metrics.MeanAbsoluteError,
        ("binary", "logloss"): keras.metrics.BinaryCrossentropy,
        ("binary", "accuracy"): keras.metrics.BinaryAccuracy,
        ("multiclass", "logloss"): keras.metrics.SparseCategoricalCrossentropy,
        ("multiclass", "accuracy"): keras.metrics.SparseCategoricalAccuracy,
    }


def is_file(name_or_path: str) -> bool:
    """Whether ``--space`` names a user's file rather than a built-in space."""
    return name_or_path.endswith(".py") or "/" in name_or_path


def unknown_space(name_or_path: str) -> str | None:
    """The error for a ``--space`` that is neither built in nor a file; None if it is one."""
    if is_file(name_or_path) or name_or_path in BUILTIN_SPACES:
        return None
    return (
        f"unknown space {name_or_path!r}; choose one of {', '.join(BUILTIN_SPACES)} "
        "or give a path to a .py file"
    )


def space_class(name_or_path: str) -> type[Space]:
    """The Space subclass for a built-in name (``mlp``) or a user's file (``my_space.py``).

    Loading a file runs its code, as ``python file.py`` would.
    """
    error = unknown_space(name_or_path)
    if error is not None:
        raise SearchError(error)
    if is_file(name_or_path):
        module = _load_file(Path(name_or_path))
    else:
        module = importlib.import_module(f"search.spaces.{name_or_path}")
    found = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, Space)
        and obj is not Space
        and obj.__module__ == module.__name__
    ]
    if len(found) != 1:
        raise SearchError(
            f"space file {name_or_path!r} must define exactly one subclass of search.Space; "
            f"found {len(found)}"
        )
    return found[0]


def resolve_space(space: type[Space] | str) -> tuple[type[Space], str]:
    """A study's space, given as a :class:`Space` subclass, a built-in name or a .py path:
    the class, and the name the study records it by (the class name, lowercased)."""
    if isinstance(space, str):
        return space_class(space), space
    if inspect.isclass(space) and issubclass(space, Space) and space is not Space:
        return space, space.__name__.lower()
    raise SearchError(
        f"a space is a subclass of search.Space, a built-in name ({', '.join(BUILTIN_SPACES)}) "
        f"or a path to a .py file; got {space!r}"
    )


def space_name(name_or_path: str) -> str:
    """A short name for results folders: ``mlp``, or the file's stem for a user's space."""
    return Path(name_or_path).stem if is_file(name_or_path) else name_or_path


def spaces_for(kind: str) -> list[str]:
    """The built-in spaces that fit a task kind, in registry order."""
    return [name for name in BUILTIN_SPACES if kind in space_class(name).kinds]


def _load_file(path: Path) -> Any:
    if not path.is_file():
        raise SearchError(f"space file {str(path)!r} does not exist")
    module_name = f"search_user_space_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise SearchError(f"space file {str(path)!r} cannot be imported as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as error:
        raise SearchError(
            f"space file {str(path)!r} has a syntax error at line {error.lineno}: {error.msg}"
        ) from None
    except Exception as error:  # noqa: BLE001 - a user's file can raise anything on import
        raise SearchError(
            f"space file {str(path)!r} failed to import: {type(error).__name__}: {error}"
        ) from None
    return module
