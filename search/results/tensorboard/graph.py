"""The best model's graph for TensorBoard's Graphs tab, in the study's ``best`` run.

Only TensorFlow traces a Keras model to a graph: the run on that backend writes it, and a
study that ran on another backend gets it traced from ``best.keras`` by a TensorFlow child
process (``python -m search.results.tensorboard``) when it is first served.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from search.layout import BEST_MODEL
from search.results.tensorboard.events import replace_events

GRAPH_RUN = "best"


def write_graph(logdir: Path, model: Any) -> bool:
    """Write ``model``'s traced graph for the Graphs tab; False where the backend has none.

    Only the TensorFlow backend traces to a TensorFlow graph. JAX and PyTorch models have no
    graph TensorBoard can show, so nothing is written for them.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf
    from tensorboard.compat.proto import event_pb2

    spec = model.inputs[0]
    function = tf.function(lambda x: model(x, training=False))
    graph = function.get_concrete_function(tf.TensorSpec(spec.shape, spec.dtype)).graph
    graph_def = graph.as_graph_def()
    _plain_scopes(graph_def, _layer_names(model))
    event = event_pb2.Event(graph_def=graph_def.SerializeToString())
    replace_events(logdir / GRAPH_RUN, [], [event])
    return True


def add_missing_graphs(logdirs: Sequence[Path]) -> None:
    """Trace ``best.keras`` into the ``best`` run of every study that has the model but no
    graph (it ran on another backend, as the CLI's numpy trainer does by default).

    The graph is a view of ``best.keras``, traced by a TensorFlow child process: importing
    TensorFlow takes seconds, paid once, when such a study is first served. Without
    TensorFlow installed, or for a model it cannot load, the Graphs tab stays empty.
    """
    missing = [
        str(logdir)
        for logdir in logdirs
        if (logdir.parent / BEST_MODEL).exists() and not (logdir / GRAPH_RUN).exists()
    ]
    if not missing or importlib.util.find_spec("tensorflow") is None:
        return
    subprocess.run(
        [sys.executable, "-m", "search.results.tensorboard", *missing],
        env=dict(os.environ, KERAS_BACKEND="tensorflow"),
        capture_output=True,
        check=False,
    )


def trace_saved(logdirs: Sequence[str]) -> None:
    """In the child of :func:`add_missing_graphs`: load each study's model and trace it."""
    import keras

    for logdir in map(Path, logdirs):
        with contextlib.suppress(Exception):  # a model TensorFlow cannot load: no graph
            write_graph(logdir, keras.saving.load_model(logdir.parent / BEST_MODEL))


def _layer_names(model: Any) -> set[str]:
    """The names of ``model`` and of every layer inside it, nested models' included."""
    names = {model.name}
    for layer in getattr(model, "layers", ()):
        names |= _layer_names(layer)
    return names


def _plain_scopes(graph_def: Any, layers: set[str]) -> None:
    """Name the traced graph's scopes after the layers: tracing a Keras model suffixes each
    layer's scope with ``_1`` (``best_1/mlp_1/dense_0_1``), which means nothing to a user."""

    def plain(part: str) -> str:
        return (
            part[:-2]
            if part.endswith("_1") and part[:-2] in layers and part not in layers
            else part
        )

    def rename(name: str) -> str:
        control = name.startswith("^")
        path, colon, port = name.lstrip("^").partition(":")
        path = "/".join(plain(part) for part in path.split("/"))
        return ("^" if control else "") + path + colon + port

    for node in graph_def.node:
        node.name = rename(node.name)
        node.input[:] = [rename(item) for item in node.input]
