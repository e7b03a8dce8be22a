"""How a space is found: a built-in name, a user's file, a keras-tuner ``HyperModel`` or a
``build_model(hp)`` function, each made a :class:`search.space.Space` subclass."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from search.errors import SearchError
from search.space import Space
from search.tasks.scoring import KINDS

# Modules of search.spaces: three model families, and the grids of the tabular benchmarks.
BUILTIN_SPACES: tuple[str, ...] = ("linear", "logistic", "mlp", "fcnet", "hpobench", "nb201")


def is_file(name_or_path: str) -> bool:
    """Whether ``--space`` names a user's file (``FILE.py`` or ``FILE.py:NAME``) rather than
    a built-in space."""
    path, _ = _split(name_or_path)
    return path.endswith(".py") or "/" in path


def unknown_space(name_or_path: str) -> str | None:
    """The error for a ``--space`` that is neither built in nor a file; None if it is one."""
    if is_file(name_or_path) or name_or_path in BUILTIN_SPACES:
        return None
    return (
        f"unknown space {name_or_path!r}; choose one of {', '.join(BUILTIN_SPACES)} "
        "or give a path to a .py file"
    )


def space_class(name_or_path: str) -> type[Space]:
    """The space of a built-in name (``mlp``) or a user's file (``my_space.py``).

    A file holds a :class:`Space` subclass, a ``keras_tuner.HyperModel`` (a subclass or an
    instance), or a ``build_model(hp)`` function (or the one callable in its ``__all__``);
    ``FILE.py:NAME`` picks one by name. Loading a file runs its code, as ``python file.py``
    would.
    """
    error = unknown_space(name_or_path)
    if error is not None:
        raise SearchError(error)
    if not is_file(name_or_path):
        return _one_space(importlib.import_module(f"search.spaces.{name_or_path}"), name_or_path)
    path, name = _split(name_or_path)
    module = _load_file(Path(path))
    if name is None:
        return _one_space(module, name_or_path)
    if not hasattr(module, name):
        raise SearchError(f"space file {path!r} defines no {name!r}")
    return as_space(getattr(module, name), name)


def _split(reference: str) -> tuple[str, str | None]:
    """``FILE.py:NAME`` as (``FILE.py``, ``NAME``); anything else as (it, None)."""
    path, colon, name = reference.rpartition(":")
    if colon and path.endswith(".py") and name.isidentifier():
        return path, name
    return reference, None


def _one_space(module: Any, reference: str) -> type[Space]:
    """The one space a module defines: a Space subclass, else a keras-tuner HyperModel, else
    the one callable of ``__all__``, else ``build_model``."""
    own = [o for o in vars(module).values() if getattr(o, "__module__", None) == module.__name__]
    spaces = [o for o in own if inspect.isclass(o) and issubclass(o, Space) and o is not Space]
    if len(spaces) > 1:
        raise SearchError(
            f"space file {reference!r} defines {len(spaces)} subclasses of search.Space; "
            "choose one with FILE.py:NAME"
        )
    if spaces:
        return spaces[0]
    found = [o for o in vars(module).values() if _is_hypermodel(o)]
    exported = [getattr(module, n) for n in getattr(module, "__all__", ()) if hasattr(module, n)]
    exported = [o for o in exported if callable(o)]
    if not found and len(exported) == 1:
        found = exported
    if not found and inspect.isfunction(getattr(module, "build_model", None)):
        found = [module.build_model]
    if len(found) != 1:
        raise SearchError(
            f"space file {reference!r} must define one search.Space subclass, one "
            f"keras_tuner.HyperModel or a build_model(hp) function; found {len(found)} "
            "candidates (choose one with FILE.py:NAME)"
        )
    return as_space(found[0], getattr(found[0], "__name__", type(found[0]).__name__))


def _is_hypermodel(obj: Any) -> bool:
    """Whether ``obj`` is a user's keras_tuner.HyperModel subclass or instance (keras-tuner
    is imported only when a user's file is loaded: it loads Keras)."""
    import keras_tuner

    if inspect.isclass(obj):
        return issubclass(obj, keras_tuner.HyperModel) and not obj.__module__.startswith(
            "keras_tuner"
        )
    return isinstance(obj, keras_tuner.HyperModel)


def as_space(obj: Any, name: str) -> type[Space]:
    """A :class:`Space` subclass as it is; keras-tuner's HyperModel (class or instance) or a
    ``build_model(hp)`` function as a space that builds and compiles its models as written."""
    if inspect.isclass(obj) and issubclass(obj, Space) and obj is not Space:
        return obj
    if _is_hypermodel(obj):
        if inspect.isclass(obj):
            try:
                obj = obj()
            except TypeError as error:
                raise SearchError(
                    f"HyperModel {name!r} cannot be made without arguments ({error}); give an "
                    "instance instead (for example my_model = MyHyperModel(...) in the file)"
                ) from None
        return _written(name, obj.build, obj, _fit_override(obj))
    if callable(obj) and not inspect.isclass(obj):
        return _written(name, obj, None, None)
    raise SearchError(
        f"{name!r} is not a space: give a search.Space subclass, a keras_tuner.HyperModel or a "
        "build_model(hp) function"
    )


def _fit_override(hypermodel: Any) -> Callable[..., Any] | None:
    """The HyperModel's own ``fit``, where it overrides keras-tuner's (which calls model.fit)."""
    import keras_tuner

    own = type(hypermodel).fit is not keras_tuner.HyperModel.fit
    return hypermodel.fit if own else None


def _written(
    name: str, build: Callable[[Any], Any], hypermodel: Any, fit: Callable[..., Any] | None
) -> type[Space]:
    """A space of keras-tuner's kind: it fits every task whose kind its model's loss fits
    (checked on the first model, see :func:`check_loss`), and compiles as its author did."""

    def build_model(self: Space, hp: Any) -> Any:
        return build(hp)

    def declare(self: Space, hp: Any) -> None:
        if hypermodel is not None:
            hypermodel.declare_hyperparameters(hp)

    label = "HyperModel" if hypermodel is not None else "build_model function"
    return type(
        name,
        (Space,),
        {
            "kinds": KINDS,
            "description": f"keras-tuner {label} {name!r}, compiled as written",
            "as_written": True,
            "fit_override": staticmethod(fit) if fit is not None else None,
            "build": build_model,
            "declare_hyperparameters": declare,
        },
    )


def resolve_space(space: Any) -> tuple[type[Space], str]:
    """A study's space, given as a :class:`Space` subclass, a built-in name, a .py path, a
    keras-tuner HyperModel or a ``build_model(hp)`` function: the space class, and the name
    the study records it by (a class's or function's name, lowercased)."""
    if isinstance(space, str):
        return space_class(space), space
    name = getattr(space, "__name__", type(space).__name__)
    try:
        found = as_space(space, name)
    except SearchError:
        raise SearchError(
            "a space is a subclass of search.Space, a keras_tuner.HyperModel, a "
            f"build_model(hp) function, a built-in name ({', '.join(BUILTIN_SPACES)}) or a "
            f"path to a .py file; got {space!r}"
        ) from None
    return found, name.lower()


def space_name(name_or_path: str) -> str:
    """A short name for results folders: ``mlp``, or the file's stem for a user's space."""
    return Path(name_or_path).stem if is_file(name_or_path) else name_or_path


def spaces_for(kind: str, table: str = "") -> list[str]:
    """The built-in spaces that fit a task kind (a tabular benchmark's: its ``table``
    family's grid), in registry order."""
    return [
        name
        for name in BUILTIN_SPACES
        if kind in space_class(name).kinds and space_class(name).table == table
    ]


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
