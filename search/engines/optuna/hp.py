"""keras-tuner's ``hp`` API on top of an Optuna trial.

Each ``hp.Int`` / ``hp.Float`` / ``hp.Choice`` / ``hp.Boolean`` becomes the ``trial.suggest_*``
call with the same meaning: inclusive bounds, ``step``, log sampling; a stepped log range
(keras-tuner's multiplicative steps, e.g. 16, 32, ... 256) becomes a categorical over exactly
keras-tuner's values. Inside ``conditional_scope`` a parameter is suggested only while its
parents hold one of the listed values, and is ``None`` otherwise, as in keras-tuner.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from typing import Any

import optuna
from keras_tuner.engine import hyperparameters as kt_hp

from search.errors import SearchError


class OptunaHyperParameters:
    """The subset of ``keras_tuner.HyperParameters`` a space uses, backed by an Optuna trial.

    Example:
        >>> trial = optuna.trial.FixedTrial({"units": 32})
        >>> OptunaHyperParameters(trial).Int("units", 16, 64, step=16)
        32
    """

    def __init__(self, trial: optuna.trial.BaseTrial) -> None:
        self.trial = trial
        self.values: dict[str, Any] = {}
        self._conditions: list[tuple[str, tuple[Any, ...]]] = []
        self._declared: set[str] = set()

    @contextlib.contextmanager
    def conditional_scope(self, parent_name: str, parent_values: Any) -> Iterator[None]:
        if parent_name not in self._declared:
            raise SearchError(
                f"conditional_scope: parent {parent_name!r} must be defined before its scope"
            )
        values = (
            tuple(parent_values) if isinstance(parent_values, (list, tuple)) else (parent_values,)
        )
        self._conditions.append((parent_name, values))
        try:
            yield
        finally:
            self._conditions.pop()

    def _active(self) -> bool:
        return all(self.values.get(name) in allowed for name, allowed in self._conditions)

    def _suggest(self, name: str, suggest: Any) -> Any:
        # Declared even when inactive: a scope under an inactive parent is inactive too
        # (as in keras-tuner), while an undeclared parent is a mistake in the space.
        self._declared.add(name)
        if not self._active():
            return None
        if name not in self.values:
            self.values[name] = suggest()
        return self.values[name]

    def _range(
        self,
        kind: type,
        cast: type,
        name: str,
        min_value: float,
        max_value: float,
        step: float | None = None,
        sampling: str = "linear",
        default: float | None = None,
        parent_name: str | None = None,
        parent_values: Any = None,
    ) -> Any:
        """``hp.Int`` or ``hp.Float`` (``kind``): keras-tuner's range, suggested to Optuna."""
        spec = kind(name, min_value, max_value, step=step, sampling=sampling, default=default)
        with self._parent(parent_name, parent_values):
            return self._numeric(spec, cast)

    # keras-tuner's spelling; both take the same arguments.
    Int = functools.partialmethod(_range, kt_hp.Int, int)
    Float = functools.partialmethod(_range, kt_hp.Float, float)

    def Choice(  # noqa: N802
        self,
        name: str,
        values: Sequence[Any],
        ordered: bool | None = None,
        default: Any = None,
        parent_name: str | None = None,
        parent_values: Any = None,
    ) -> Any:
        choices = list(values)
        with self._parent(parent_name, parent_values):
            return self._suggest(name, lambda: self.trial.suggest_categorical(name, choices))

    def Boolean(  # noqa: N802
        self,
        name: str,
        default: bool = False,
        parent_name: str | None = None,
        parent_values: Any = None,
    ) -> bool | None:
        with self._parent(parent_name, parent_values):
            return self._suggest(name, lambda: self.trial.suggest_categorical(name, [False, True]))

    def Fixed(  # noqa: N802
        self,
        name: str,
        value: Any,
        parent_name: str | None = None,
        parent_values: Any = None,
    ) -> Any:
        with self._parent(parent_name, parent_values):
            return self._suggest(name, lambda: value)

    def get(self, name: str) -> Any:
        if name not in self.values:
            raise KeyError(f"{name!r} has not been defined (or is inactive) in this trial")
        return self.values[name]

    def _numeric(self, spec: Any, cast: type) -> Any:
        name, low, high, step = spec.name, spec.min_value, spec.max_value, spec.step
        if spec.sampling == "reverse_log":
            raise SearchError(
                f"hyperparameter {name!r}: sampling='reverse_log' has no Optuna equivalent; "
                "use 'linear' or 'log'"
            )
        if spec.sampling == "log" and step is not None:
            # keras-tuner's stepped log range multiplies by `step`: offer exactly its values.
            choices = [cast(value) for value in spec.values]
            return self._suggest(name, lambda: self.trial.suggest_categorical(name, choices))
        log = spec.sampling == "log"
        if cast is int:
            return self._suggest(
                name, lambda: self.trial.suggest_int(name, low, high, step=step or 1, log=log)
            )
        return self._suggest(
            name, lambda: self.trial.suggest_float(name, low, high, step=step, log=log)
        )

    @contextlib.contextmanager
    def _parent(self, parent_name: str | None, parent_values: Any) -> Iterator[None]:
        if parent_name is None:
            yield
            return
        with self.conditional_scope(parent_name, parent_values):
            yield
