"""Search-space modules: each holds one ``search.Space`` subclass.

``linear`` and ``logistic`` are the tutorial's linear and logistic regressions with tuned
optimisation and penalties; ``mlp`` is its small dropout network with a tuned shape.
"""

from __future__ import annotations

BUILTIN: tuple[str, ...] = ("linear", "logistic", "mlp")


def is_file(name_or_path: str) -> bool:
    """Whether ``--space`` names a user's file rather than a built-in space."""
    return name_or_path.endswith(".py") or "/" in name_or_path


def unknown(name_or_path: str) -> str | None:
    """The error for a ``--space`` that is neither built in nor a file; None if it is one.

    Kept here, free of Keras, so that a mistyped name is refused before Keras loads.
    """
    if is_file(name_or_path) or name_or_path in BUILTIN:
        return None
    return (
        f"unknown space {name_or_path!r}; choose one of {', '.join(BUILTIN)} "
        "or give a path to a .py file"
    )
