"""Every hyperparameter a space declares, conditional ones included, and their description.

Beside :mod:`search.space` (the Space base class) and :mod:`search.space_lookup` (how a
space is found): the TensorBoard experiment reads a space's declared domains from here, and
so do enqueued configurations and a study's identity (:func:`domains`: what a resumed
study's space must still declare). keras-tuner is imported inside the functions: ``import
search`` does not load it.
"""

from __future__ import annotations

import weakref
from typing import Any

from search import _compat
from search.errors import SearchError, raised_at

# Each space object's declared hyperparameters: listing them builds the space a dozen times
# (0.6 s for the built-in mlp on the numpy backend), and a study asks for them up to three
# times (its identity, its enqueued configurations, its TensorBoard experiment).
_DECLARED: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def declared_space(space: Any) -> Any:
    """Every hyperparameter ``space`` declares, conditional ones included (listed once per
    space object; the result is shared, not to be changed).

    Builds the space into a ``keras_tuner.HyperParameters`` as keras-tuner's tuners do before
    a search (``BaseTuner._activate_all_conditions``): a conditional scope that was never
    active gets its parents set to values that open it. Unlike keras-tuner, it also builds
    with every value of each parent and each small ``Int``: a space that enters a scope only
    inside ``for i in range(layers)`` shows ``units_2`` only when ``layers`` is 3, which
    keras-tuner would learn only when a trial happened to sample it.
    """
    if space not in _DECLARED:
        _DECLARED[space] = _listed(space)
    return _DECLARED[space]


def _listed(space: Any) -> Any:
    """:func:`declared_space`'s search: the space built until no new scope opens."""
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
                f"with {assignment or 'its defaults'}: {raised_at(error)}"
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


def domains(space: Any) -> dict[str, str]:
    """Each hyperparameter ``space`` declares, by name, as one line of text: its type, range
    or values, step, sampling and the conditions it is active under (its default is left
    out: it does not change what the search may try). Two spaces whose domains are equal
    search the same configurations; a study records them to refuse a resume with another
    space (:mod:`search.study.config`)."""
    return {spec.name: describe(spec) for spec in declared_space(space).space}


def describe(spec: Any) -> str:
    """One hyperparameter's domain in words: ``Int 16..128 step 16``, ``Float 0.0001..0.1
    log``, ``Choice ['relu', 'tanh']``, with ``if layers in [2, 3]`` for a condition."""
    config = spec.get_config()
    kind = type(spec).__name__
    if "min_value" in config:
        text = f"{kind} {config['min_value']}..{config['max_value']}"
        if config.get("step") is not None:
            text += f" step {config['step']}"
        if config.get("sampling") not in (None, "linear"):
            text += f" {config['sampling']}"
    elif "values" in config:
        text = f"{kind} {list(config['values'])}"
    elif "value" in config:
        text = f"{kind} {config['value']!r}"
    else:
        text = kind
    for condition in config.get("conditions", []):
        parent = condition.get("config", {})
        text += f" if {parent.get('name')} in {list(parent.get('values', []))}"
    return text
