"""The private parts of keras-tuner, Optuna and Keras are reached through search/_compat.py
alone: no other module of the package imports a library's private module or names one of
the internals that _compat lists (an override of a private method, named there, aside)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys

from conftest import ROOT, cli_env

from search import _compat

LIBRARIES = ("keras_tuner", "keras", "optuna", "tensorflow")


def _private_module(name: str) -> bool:
    parts = name.split(".")
    return parts[0] in LIBRARIES and any(p == "src" or p.startswith("_") for p in parts[1:])


def test_only_compat_touches_the_libraries_internals() -> None:
    private = {name for item in _compat.INTERNALS for name in item.names if name[0] == "_"}
    found = []
    for path in sorted((ROOT / "search").rglob("*.py")):
        if path.name == "_compat.py":
            continue
        where = path.relative_to(ROOT)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and _private_module(node.module or ""):
                found.append(f"{where}:{node.lineno} imports {node.module}")
            if isinstance(node, ast.Import):
                found += [
                    f"{where}:{node.lineno} imports {alias.name}"
                    for alias in node.names
                    if _private_module(alias.name)
                ]
            if isinstance(node, ast.Attribute) and node.attr in private:
                found.append(f"{where}:{node.lineno} uses .{node.attr}")
    assert found == [], "reach these through search/_compat.py:\n" + "\n".join(found)


def test_compat_names_every_internal_it_touches() -> None:
    """Each private attribute that _compat's code reads is listed in INTERNALS."""
    source = (ROOT / "search" / "_compat.py").read_text(encoding="utf-8")
    listed = {name for item in _compat.INTERNALS for name in item.names}
    touched = {
        node.attr
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Attribute)
        and re.fullmatch(r"_[a-z]\w*", node.attr)
        and not (isinstance(node.value, ast.Name) and node.value.id in ("_compat", "self"))
    }
    assert touched - listed == set()


def test_importing_compat_loads_no_library() -> None:
    probe = (
        f"import sys; import search._compat; print([m for m in {LIBRARIES!r} if m in sys.modules])"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], env=cli_env(), capture_output=True, text=True, check=True
    )
    assert proc.stdout.strip() == "[]"
