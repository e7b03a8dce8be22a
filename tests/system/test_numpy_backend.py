"""The CLI's choice of Keras' numpy backend for the numpy trainer, in fresh processes.

Where no backend is named, ``python -m search`` builds the numpy trainer's models on Keras'
numpy backend and never loads TensorFlow: that is decided when the process starts, so each
case is a new process with its own environment (no ``KERAS_BACKEND``, its own
``NUMBA_NUM_THREADS``).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import cli_env, describe
from tensorboard.compat.proto import graph_pb2

from search.files import read_json
from search.results import tensorboard

pytestmark = [
    pytest.mark.slow,
    pytest.mark.backend(
        "tensorflow", why="the CLI chooses its own backend, compared with TensorFlow here"
    ),
]

_RUN_AND_REPORT = (
    "import sys; from search.cli import main; code = main(sys.argv[1:]); "
    "print('tensorflow loaded:', 'tensorflow' in sys.modules); sys.exit(code)"
)
Run = tuple[str, dict[str, Any], pd.DataFrame]


def _cli_study(out: Path, env: dict[str, str], *extra: str) -> Run:
    """A two-trial Boston MLP study through the CLI in a subprocess: its stdout, study.json
    and leaderboard."""
    args = ["boston", "--space", "mlp", "--trials", "2", "--epochs", "4", "--out", str(out)]
    args += ["--ensemble-size", "0", *extra]  # the ensemble is tested in tests/study
    proc = subprocess.run(
        [sys.executable, "-c", _RUN_AND_REPORT, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, describe(proc)
    folder = out / "boston" / "mlp-optuna-tpe"
    return proc.stdout, read_json(folder / "study.json"), pd.read_csv(folder / "leaderboard.csv")


def unnamed_backend(tmp_path: Path) -> dict[str, str]:
    """The test's environment without KERAS_BACKEND, and a Keras home of its own (Keras
    writes its keras.json there)."""
    env = {k: v for k, v in cli_env().items() if k != "KERAS_BACKEND"}
    env["KERAS_HOME"] = str(tmp_path / "keras-home")
    return env


@pytest.fixture(scope="module")
def numpy_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    """The study on the numpy backend, with 5 folds (the task's default) and one holdout
    split, each with 1 and 2 of the compiled loop's threads: the results roots by (cv,
    threads)."""
    base = unnamed_backend(tmp_path_factory.mktemp("numpy-backend"))
    roots = {}
    for cv in ("5", "1"):
        for threads in ("1", "2"):
            out = tmp_path_factory.mktemp(f"cv-{cv}-threads-{threads}")
            stdout, summary, _ = _cli_study(out, base | {"NUMBA_NUM_THREADS": threads}, "--cv", cv)
            assert "tensorflow loaded: False" in stdout
            assert summary["versions"]["backend"] == "numpy"
            roots[(cv, threads)] = out
    return roots


def test_the_cli_builds_on_the_numpy_backend_and_threads_change_nothing(
    numpy_runs: dict[tuple[str, str], Path], tmp_path: Path
) -> None:
    """With no backend named, the CLI builds the numpy trainer's models on Keras' numpy
    backend and never loads TensorFlow; the compiled loop's threads split the members
    (5 folds), or train a holdout trial's next epoch ahead (``--cv 1``), without changing
    what a seed produces; a named backend stays the user's."""
    columns = ["trial", "value", "val_mse", "test_mse", "epochs", "best_epoch"]
    for cv in ("5", "1"):
        one, two = (
            pd.read_csv(numpy_runs[(cv, threads)] / "boston" / "mlp-optuna-tpe" / "leaderboard.csv")
            .sort_values("trial")[columns]
            .reset_index(drop=True)
            for threads in "12"
        )
        assert one["value"].notna().all()
        pd.testing.assert_frame_equal(one, two)
    env = unnamed_backend(tmp_path) | {"KERAS_BACKEND": "tensorflow"}
    _, summary, _ = _cli_study(tmp_path / "named", env)
    assert summary["versions"]["backend"] == "tensorflow"


def test_a_study_off_tensorflow_gets_its_graph_when_served(
    numpy_runs: dict[tuple[str, str], Path], tmp_path: Path
) -> None:
    """The numpy backend traces no graph; the first serving traces ``best.keras`` into it
    (here in this process, whose backend is TensorFlow)."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    out = tmp_path / "out"
    shutil.copytree(numpy_runs[("5", "1")], out)
    logdir = out / "boston" / "mlp-optuna-tpe" / "tensorboard"
    assert not (logdir / tensorboard.GRAPH_RUN).exists()
    tensorboard.add_missing_graphs([logdir])
    events = [
        event
        for path in (logdir / tensorboard.GRAPH_RUN).glob("*tfevents*")
        for event in EventFileLoader(str(path)).Load()
        if event.graph_def
    ]
    assert len(events) == 1
    graph = graph_pb2.GraphDef.FromString(events[0].graph_def)
    assert any(node.op == "MatMul" for node in graph.node)


def test_predict_with_a_builtin_space_never_loads_tensorflow(
    numpy_runs: dict[tuple[str, str], Path], tmp_path: Path
) -> None:
    """``predict`` on a built-in space's study, with no backend named, loads the model on
    Keras' numpy backend (five rows need no TensorFlow) and prints nothing but the
    predictions: the same as the model gives on TensorFlow (this process's backend)."""
    import keras
    import numpy as np

    from search.tasks import load_task

    task = load_task("boston")
    data = tmp_path / "five.csv"
    pd.DataFrame(task.x_test[:5], columns=list(task.spec.feature_names)).to_csv(data, index=False)
    out = numpy_runs[("1", "1")]
    proc = subprocess.run(
        [sys.executable, "-c", _RUN_AND_REPORT, "predict", "boston", "--data", data, "--out", out],
        env=unnamed_backend(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, describe(proc)
    assert proc.stderr == "", describe(proc)  # no warning, no TensorFlow start-up lines
    table, _, loaded = proc.stdout.rpartition("tensorflow loaded: ")
    assert loaded.strip() == "False"
    written = pd.read_csv(io.StringIO(table))["prediction"].to_numpy()
    model = keras.saving.load_model(out / "boston" / "mlp-optuna-tpe" / "best.keras")
    expected = np.asarray(model.predict(task.x_test[:5], verbose=0)).reshape(-1)
    np.testing.assert_allclose(written, expected, rtol=1e-5, atol=1e-5)
