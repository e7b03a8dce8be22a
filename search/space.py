"""The base class of every search space, and what a space's models get from the task.

A space is written once against keras-tuner's ``hp`` API (``hp.Int``, ``hp.Float``,
``hp.Choice``, ``hp.Boolean``, ``hp.Fixed``, ``hp.conditional_scope``). keras-tuner runs its
``build(hp)`` as a ``HyperModel``; the Optuna engine runs the same ``build(hp)`` through
:class:`search.engines.optuna.hp.OptunaHyperParameters`.

Keras is imported inside the methods that build models, not here: ``import search`` and a
class written against :class:`Space` load without it. How a space is found (a name, a
file, a keras-tuner ``HyperModel``): :mod:`search.space_lookup`.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from search.errors import SearchError
from search.tasks.scoring import METRICS
from search.tasks.tabular import unfit_space
from search.tasks.task import TaskSpec

if TYPE_CHECKING:
    import keras

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
    # The hyperparameters that matter most, which TensorBoard's HParams dashboard shows
    # first (beside the trial's state); empty: the first ones the space declares.
    shown_first: ClassVar[tuple[str, ...]] = ()
    # A space written for keras-tuner (a build_model function, a HyperModel) compiles its
    # models itself; the harness adds only the task's metrics (see search.study.prepared).
    as_written: ClassVar[bool] = False
    # Its HyperModel's own fit(hp, model, x, y, **kwargs), where it has one.
    fit_override: ClassVar[Callable[..., Any] | None] = None
    # Read off a keras-tuner space's loss by check_written: the labels its loss expects
    # ("codes" or "one-hot") and the objective that follows the loss (None: the task's).
    labels: str | None = None
    objective: str | None = None
    # The family of tabular benchmark whose grid the space is (search.tabular_space): it
    # fits that family's tasks alone, and they fit no other space. "" for a model family.
    table: ClassVar[str] = ""

    def __init__(self, task: TaskSpec) -> None:
        self.name = type(self).__name__.lower()
        if task.table != self.table:
            raise SearchError(unfit_space(self.name, self.table, task))
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
        """The last layer for the task's kind: linear, sigmoid or softmax. A regression
        output's bias starts at the training split's target mean."""
        import keras  # noqa: F811 - deferred: see the module's docstring

        if self.task.kind == "regression":
            # The target is not standardised: an optimizer's step moves the bias by about
            # the learning rate, so from zero a low-rate model spends its epochs reaching
            # the mean (Boston's 22.4: after 50 epochs at 1e-4, validation MSE 193 against
            # 45 from the mean). docs/performance.md measures what the search gains.
            mean = keras.initializers.Constant(self.task.target_mean)
            kwargs.setdefault("bias_initializer", mean)
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


DEFAULT_BATCH_SIZE = 32  # when a space does not tune "batch_size" (Keras' own default)


def builder(space: Space, hp: Any) -> Callable[[], tuple[keras.Model, int]]:
    """What a trainer calls for each model of a configuration: a fresh model from
    ``space.build(hp)``, and the batch size ``hp`` holds.

    A model of a space written for keras-tuner is built for the task's features (it may
    have no ``Input``) and given the task's metrics beside its own; its HyperModel's
    ``fit``, where it has one, rides along as ``model.search_fit`` for the ``fit`` trainer.
    """

    def build() -> tuple[keras.Model, int]:
        model = space.build(hp)
        if space.as_written:
            model = _with_task_metrics(space, model)
            if space.fit_override is not None:
                model.search_fit = functools.partial(space.fit_override, hp)
        return model, int(hp.get("batch_size")) if _has(hp, "batch_size") else DEFAULT_BATCH_SIZE

    return build


def compile_arguments(model: keras.Model) -> dict[str, Any]:
    """What ``model.compile`` was given (optimizer, loss, metrics objects), or {}.

    Read from Keras' private record of the call: the public ``get_compile_config`` serialises
    it, which imports TensorFlow on the JAX backend (about five seconds).
    """
    record = getattr(model, "_compile_config", None)
    config = getattr(record, "config", None)
    return config if isinstance(config, dict) else {}


# A keras-tuner space's loss decides the kinds of task it fits, its default objective and its
# labels: the snake_case names of Keras' loss functions and classes.
_LOSS_KINDS = {
    "binary_crossentropy": "binary",
    "binary_focal_crossentropy": "binary",
    "sparse_categorical_crossentropy": "multiclass",
    "categorical_crossentropy": "multiclass",
    "categorical_focal_crossentropy": "multiclass",
}
_ONE_HOT = ("categorical_crossentropy", "categorical_focal_crossentropy")
_LOSS_OBJECTIVES = {"mean_squared_error": "val_mse", "mean_absolute_error": "val_mae"}
_ALIASES = {"mse": "mean_squared_error", "mae": "mean_absolute_error"}
_SUGGESTED = {
    "regression": "'mse'",
    "binary": "'binary_crossentropy' with a sigmoid unit",
    "multiclass": "'sparse_categorical_crossentropy' (or 'categorical_crossentropy': the "
    "labels are then one-hot encoded)",
}


def loss_name(loss: Any) -> str:
    """A Keras loss (a name, a function or an object) as a snake_case name."""
    if isinstance(loss, str):
        name = loss
    elif inspect.isfunction(loss):
        name = loss.__name__
    else:
        name = re.sub(r"(?<!^)(?=[A-Z])", "_", type(loss).__name__)
    name = name.lower()
    return _ALIASES.get(name, name)


def check_written(space: Space) -> None:
    """Build a keras-tuner space's first model (its default hyperparameters) and read its
    loss: refuse a loss that does not fit the task, and set the space's ``objective`` and
    ``labels`` from it. Nothing to do for a :class:`Space` of the harness's own."""
    if not space.as_written or space.labels is not None:
        return
    import keras_tuner  # the default hyperparameters keras-tuner's own tuners start from

    try:
        model = space.build(keras_tuner.HyperParameters())
    except Exception as error:  # noqa: BLE001 - a user's build can raise anything
        raise SearchError(
            f"space {space.name!r} failed to build a model: {type(error).__name__}: {error}"
        ) from None
    compiled = compile_arguments(model)
    if not compiled.get("loss"):
        raise SearchError(
            f"space {space.name!r} returns a model that is not compiled with a loss; call "
            "model.compile(loss=...) before returning it"
        )
    loss = loss_name(compiled["loss"])
    fits = _LOSS_KINDS.get(loss, "regression")
    kind = space.task.kind
    if fits != kind:
        raise SearchError(
            f"space {space.name!r} compiles with loss {loss!r}, which fits {fits} tasks; task "
            f"{space.task.name!r} is a {kind} task: use {_SUGGESTED[kind]}"
        )
    space.labels = "one-hot" if loss in _ONE_HOT else "codes"
    space.objective = _LOSS_OBJECTIVES.get(loss, f"val_{METRICS[kind][0]}")


def _with_task_metrics(space: Space, model: keras.Model) -> keras.Model:
    """``model`` built for the task's features, compiled as its author compiled it plus the
    task's metrics it lacks (the leaderboard's ``val_*`` and the objective are read off
    them); its training is unchanged."""
    if not model.built:
        model.build((None, space.task.n_features))
    compiled = compile_arguments(model)
    theirs = list(compiled.get("metrics") or [])
    named = {m if isinstance(m, str) else getattr(m, "name", "") for m in theirs}
    classes = keras_metric_classes(one_hot=space.labels == "one-hot")
    ours = [
        classes[space.task.kind, name](name=name)
        for name in METRICS[space.task.kind]
        if name not in named
    ]
    if ours:
        model.compile(**(compiled | {"metrics": [*theirs, *ours]}))
    return model


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


def keras_metric_classes(
    one_hot: bool = False,
) -> dict[tuple[str, str], type[keras.metrics.Metric]]:
    """The Keras metric class of each (kind, metric) of :data:`search.tasks.METRICS`; with
    ``one_hot``, a multiclass task's labels are one-hot rows rather than class codes."""
    import keras  # noqa: F811 - deferred: see the module's docstring

    if one_hot:
        return keras_metric_classes() | {
            ("multiclass", "logloss"): keras.metrics.CategoricalCrossentropy,
            ("multiclass", "accuracy"): keras.metrics.CategoricalAccuracy,
        }
    return {
        ("regression", "mse"): keras.metrics.MeanSquaredError,
        ("regression", "mae"): keras.metrics.MeanAbsoluteError,
        ("binary", "logloss"): keras.metrics.BinaryCrossentropy,
        ("binary", "accuracy"): keras.metrics.BinaryAccuracy,
        ("multiclass", "logloss"): keras.metrics.SparseCategoricalCrossentropy,
        ("multiclass", "accuracy"): keras.metrics.SparseCategoricalAccuracy,
    }
