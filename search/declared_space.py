"""Every hyperparameter a space declares, conditional ones included.

Beside :mod:`search.space` (the Space base class and how a space is found): the TensorBoard
experiment reads a space's declared domains from here, and so do enqueued configurations.
keras-tuner is imported inside the functions: ``import search`` does not load it.
"""

from __future__ import annotations

from typing import Any

from search import _compat
from search.errors import SearchError


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
