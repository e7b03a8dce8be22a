"""TensorBoard inspection, checked through a real TensorBoard server's own HTTP API.

Two tiny studies of the same space, one per engine, are written into one results root. The
space is the MLP where each trial's seed decides whether it trains, stalls (so Optuna's
successive-halving pruner stops it) or overflows (so it fails). A TensorBoard subprocess
then serves each study, and the tests read back what its HParams, Scalars and Graphs
plugins show: every trial exactly once, its values, the space's declared domains, the
metrics and how the trial ended. The ``tensorboard`` command is run as a user would, and
stopped with Ctrl-C (SIGINT).
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import json
import math
import os
import platform
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import keras
import pandas as pd
import pytest
from conftest import Study, chromium, cli_env, run_main
from spaces_fixtures import FATED, write_space

from search.results.tensorboard.graph import GRAPH_RUN, write_graph

STUDY_SEED = 132
# The fates of trials 0-3 under STUDY_SEED: train, train, stall, explode. Optuna's
# successive-halving pruner stops the stalled trial; keras-tuner has no pruner.
FATES = ("train", "train", "stall", "explode")
RUNS = {
    "optuna": ("--pruner", "successive-halving"),
    "keras-tuner": (),
}
END_STATES = {
    "optuna": ["complete", "complete", "pruned", "failed"],
    "keras-tuner": ["complete", "complete", "complete", "failed"],
}
STATUS = {
    "complete": "STATUS_SUCCESS",
    "failed": "STATUS_FAILURE",
    "pruned": "STATUS_UNKNOWN",
}
ALL_STATUSES = ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]
MLP_HPARAMS = {
    "layers",
    "activation",
    "l2",
    "units_0",
    "dropout_0",
    "units_1",
    "dropout_1",
    "units_2",
    "dropout_2",
    "batch_size",
    "optimizer",
    "learning_rate",
    "clipnorm",
}
SERVER_TIMEOUT = 240  # TensorBoard imports TensorFlow: slow on a busy two-core machine


def run_study(out: Path, space: Path, engine: str, cv: int = 1) -> tuple[Study, str]:
    """Run (or rerun) one study in this process; returns it with what it printed."""
    printed = io.StringIO()
    args = ["boston", "--space", str(space), "--engine", engine, "--out", str(out)]
    args += [
        "--trials",
        "4",
        "--epochs",
        "2",
        "--top-k",
        "1",
        "--seed",
        str(STUDY_SEED),
        "--cv",
        str(cv),
        # One retraining, with the trial's own seed: its fate is the trial's (other seeds
        # would draw other fates).
        "--ensemble",
        "1",
    ]
    args += RUNS[engine]
    with contextlib.redirect_stdout(printed):
        assert run_main(args) == 0
    algorithm = {"optuna": "tpe", "keras-tuner": "random"}[engine]
    return Study(out, "boston", f"fated-{engine}-{algorithm}"), printed.getvalue()


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Study]:
    """Both studies in one results root, each run twice: the rerun adds no trial but
    rewrites every session from the engine's storage."""
    root = tmp_path_factory.mktemp("tensorboard")
    space = write_space(root / "fated.py", FATED)
    out = root / "results"
    found = {}
    for engine in RUNS:
        study, printed = run_study(out, space, engine)
        command = f"python -m search tensorboard boston {study.study} --out {out}"
        assert command in printed, printed
        again, _ = run_study(out, space, engine)
        assert again == study
        found[engine] = study
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """A TensorBoard subprocess (or our CLI serving one) on 127.0.0.1 and its HTTP API."""

    def __init__(self, command: list[str], port: int, log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self._log_file = log.open("w")
        self.process = subprocess.Popen(
            command,
            # A process that does not end when told: SIGABRT dumps every thread's stack.
            env=cli_env() | {"PYTHONFAULTHANDLER": "1"},
            stdout=subprocess.PIPE,
            stderr=self._log_file,
            text=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def wait_until_serving(self) -> None:
        deadline = time.monotonic() + SERVER_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"server exited: {self.log.read_text()[-3000:]}"
            with contextlib.suppress(OSError):
                urllib.request.urlopen(self.url, timeout=2).close()
                return
            time.sleep(0.5)
        pytest.fail(f"no answer at {self.url}: {self.log.read_text()[-3000:]}")

    def get(self, path: str, **query: str) -> Any:
        url = f"{self.url}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        with urllib.request.urlopen(url, timeout=30) as response:
            return json.load(response)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def experiment(self) -> Any:
        return self.post("/data/plugin/hparams/experiment", {"experimentName": ""})

    def session_groups(self) -> list[dict[str, Any]]:
        body = {
            "experimentName": "",
            "allowedStatuses": ALL_STATUSES,
            "colParams": [],
            "startIndex": 0,
            "sliceSize": 1000,
        }
        answer = self.post("/data/plugin/hparams/session_groups", body)
        groups: list[dict[str, Any]] = answer.get("sessionGroups", [])
        assert answer.get("totalSize", 0) == len(groups)
        return groups

    def eventually(self, check: Callable[[], bool], what: str) -> None:
        """TensorBoard loads runs in the background: wait until ``check`` holds."""
        deadline = time.monotonic() + SERVER_TIMEOUT
        while not check():
            if time.monotonic() > deadline:
                pytest.fail(f"TensorBoard never showed {what}")
            time.sleep(1)

    def stop(self, sig: int = signal.SIGTERM, side_thread: bool = False) -> int:
        """Signal the process by its id (``side_thread``: one of its threads other than the
        main one, where it has one); if it does not exit, abort it (its log gets the stack
        of each of its threads) and kill it."""
        if self.process.poll() is None:
            if not (side_thread and signal_a_side_thread(self.process.pid, sig)):
                os.kill(self.process.pid, sig)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                for last in (signal.SIGABRT, signal.SIGKILL):
                    os.kill(self.process.pid, last)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        self.process.wait(timeout=10)
                        break
        self._log_file.close()
        return self.process.returncode


# tgkill(2), a signal to one thread of another process, by its number on this architecture.
TGKILL = {"x86_64": 234, "aarch64": 131}.get(platform.machine())


def signal_a_side_thread(pid: int, sig: int) -> bool:
    """Send ``sig`` to a thread of ``pid`` other than its main one that does not block it,
    as the kernel may deliver a Ctrl-C (a BLAS library's threads take signals too); False
    where ``pid`` has no such thread or tgkill is not known here. (A signal sent to a thread
    that blocks it waits there for ever: it is not passed on to another.)"""
    takers = [
        int(tid)
        for tid in os.listdir(f"/proc/{pid}/task")
        if int(tid) != pid and not _blocked(pid, int(tid)) & (1 << (sig - 1))
    ]
    if TGKILL is None or not takers:
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.syscall(TGKILL, pid, takers[0], sig) == 0


def _blocked(pid: int, tid: int) -> int:
    """The thread's blocked signals, as a bit mask (signal n is bit n - 1)."""
    for line in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines():
        if line.startswith("SigBlk:"):
            return int(line.split()[1], 16)
    return 0


def tensorboard_server(logdir: Path, log: Path) -> Server:
    port = free_port()
    command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir)]
    return Server([*command, "--host", "127.0.0.1", "--port", str(port)], port, log)


@pytest.fixture(scope="module")
def servers(
    studies: dict[str, Study], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Server]]:
    """One TensorBoard per study, started together; stopped by process id at the end."""
    logs = tmp_path_factory.mktemp("tensorboard-logs")
    started: dict[str, Server] = {}
    try:
        for engine, study in studies.items():
            started[engine] = tensorboard_server(
                study.folder / "tensorboard", logs / f"{engine}.log"
            )
        for server in started.values():
            server.wait_until_serving()
        for engine, server in started.items():
            trials = len(studies[engine].trials())
            server.eventually(
                lambda server=server, trials=trials: len(server.session_groups()) >= trials,
                f"{trials} sessions",
            )
        yield started
    finally:
        for server in started.values():
            server.stop()


ENGINES = pytest.mark.parametrize("engine", list(RUNS))
slow = pytest.mark.slow


def hparam_infos(server: Server) -> dict[str, dict[str, Any]]:
    infos = server.experiment()["hparamInfos"]
    names = [info["name"] for info in infos]
    assert len(names) == len(set(names)), names
    return {info["name"]: info for info in infos}


@slow
@ENGINES
def test_experiment_holds_the_declared_domains(servers: dict[str, Server], engine: str) -> None:
    infos = hparam_infos(servers[engine])
    # Every hyperparameter the space declares, conditional ones included (units_2 only
    # exists when layers is 3), plus the trial's epochs, best epoch and end state.
    assert set(infos) == MLP_HPARAMS | {"epochs", "best_epoch", "state"}
    # Integers are text right-aligned to one width: they show as integers (TensorBoard has
    # no integer type) and sort as numbers.
    assert infos["units_0"]["type"] == "DATA_TYPE_STRING"
    assert infos["units_0"]["domainDiscrete"] == [" 16", " 32", " 64", "128", "256"]
    assert infos["units_2"]["domainDiscrete"] == [" 16", " 32", " 64", "128", "256"]
    assert infos["units_2"]["description"] == "only when layers in [3]"
    assert infos["dropout_1"]["domainDiscrete"] == [0.0, 0.125, 0.25, 0.375, 0.5]
    assert infos["learning_rate"]["domainInterval"] == {"minValue": 1e-4, "maxValue": 0.1}
    assert infos["l2"]["domainInterval"] == {"minValue": 1e-6, "maxValue": 0.01}
    assert infos["layers"]["domainDiscrete"] == ["1", "2", "3"]
    assert infos["optimizer"]["type"] == "DATA_TYPE_STRING"
    assert infos["optimizer"]["domainDiscrete"] == [
        "adam",
        "momentum",
        "nesterov",
        "rmsprop",
        "sgd",
    ]
    assert infos["activation"]["domainDiscrete"] == ["elu", "relu", "tanh"]
    assert infos["batch_size"]["domainDiscrete"] == [" 16", " 32", " 64", "128"]
    assert infos["clipnorm"]["domainDiscrete"] == [0.0, 1.0, 5.0]
    assert infos["state"]["domainDiscrete"] == ["complete", "failed", "pruned", "running"]
    # The dashboard shows the first five of those marked "differs": the space's chosen ones
    # (MLP.shown_first) and the state.
    shown = {name for name, info in infos.items() if info.get("differs")}
    assert shown == {"layers", "units_0", "optimizer", "learning_rate", "state"}
    assert [info["name"] for info in servers[engine].experiment()["hparamInfos"]][:5] == sorted(
        shown
    )


@slow
@ENGINES
def test_experiment_holds_the_metrics(servers: dict[str, Server], engine: str) -> None:
    metrics = servers[engine].experiment()["metricInfos"]
    tags = [metric["name"]["tag"] for metric in metrics]
    # The objective first; the test metrics of the top-k trials after the five shown by
    # default, which every trial that trained has. The trial's epochs and best epoch are
    # whole numbers: hyperparameter columns (below), not metrics (floats, "10.000").
    assert tags == [
        "val_mse",
        "val_mae",
        "train_mse",
        "train_mae",
        "seconds",
        "test_mse",
        "test_mae",
    ]
    assert metrics[0]["datasetType"] == "DATASET_VALIDATION"
    assert metrics[2]["datasetType"] == "DATASET_TRAINING"
    assert "objective" in metrics[0]["description"]
    infos = {info["name"]: info for info in servers[engine].experiment()["hparamInfos"]}
    for count in ("epochs", "best_epoch"):
        texts = infos[count]["domainDiscrete"]
        assert all(text.strip().isdigit() and len(text) == len(texts[0]) for text in texts)


def close(a: float, b: float, relative: float) -> bool:
    return math.isclose(a, b, rel_tol=relative, abs_tol=1e-12)


def best_so_far(server: Server, run: str) -> dict[str, float]:
    """The val_* metrics at the best (lowest val_mse) finite epoch of a run's curve."""
    curves = {
        f"val_{m}": server.get(
            "/data/plugin/scalars/scalars", run=f"{run}/validation", tag=f"epoch_{m}"
        )
        for m in ("mse", "mae")
    }
    # JSON has no NaN or infinity: TensorBoard sends them as the strings "NaN", "Infinity".
    values = [(float(value), step) for _, step, value in curves["val_mse"]]
    finite = [(value, step) for value, step in values if math.isfinite(value)]
    if not finite:
        return {}
    _, best = min(finite)
    return {
        name: float(next(v for _, s, v in points if s == best)) for name, points in curves.items()
    }


@slow
@ENGINES
def test_every_trial_once_with_values_metrics_and_end_state(
    servers: dict[str, Server], studies: dict[str, Study], engine: str
) -> None:
    table = studies[engine].trials().set_index("trial").sort_index()
    groups = {group["name"]: group for group in servers[engine].session_groups()}
    assert sorted(groups) == [f"trial_{n:04d}" for n in table.index]
    assert list(table["state"]) == END_STATES[engine]
    parameters = sorted(MLP_HPARAMS)
    for number, row in table.iterrows():
        group = groups[f"trial_{number:04d}"]
        (session,) = group["sessions"]
        assert session["status"] == STATUS[row["state"]], number
        values = group["hparams"]
        assert values["state"] == row["state"]
        for name in parameters:
            # Inactive conditional hyperparameters are empty in the CSV (or, when no trial
            # used them, absent from it), and absent from the session.
            if pd.isna(row.get(name)):
                assert name not in values, (number, name)
            elif isinstance(values[name], str) and values[name].strip().isdigit():
                assert int(values[name]) == int(row[name]), (number, name)
            elif isinstance(values[name], str | bool):
                assert values[name] == row[name], (number, name)
            else:
                assert close(values[name], float(row[name]), 1e-9), (number, name)
        measured = {m["name"]["tag"]: m["value"] for m in group["metricValues"]}
        metrics = {k: v for k, v in measured.items() if k.startswith(("val_", "test_"))}
        if row["state"] == "complete":
            # Whole numbers, as text of one width (they show as integers, sort as numbers).
            assert int(values["epochs"]) == row["epochs"], number
            assert int(values["best_epoch"]) == row["best_epoch"], number
        if "val_mse" in metrics:
            assert {"epochs", "best_epoch"} <= set(values), number
            assert {"train_mse", "train_mae", "seconds"} <= set(measured), number
        expected = {
            f"{split}_{m}": row[f"{split}_{m}"]
            for split in ("val", "test")
            for m in ("mse", "mae")
            if not pd.isna(row[f"{split}_{m}"])
        }
        if row["state"] != "complete":
            # A pruned or failed trial: its metrics at the best epoch of the curve it ran.
            expected |= best_so_far(servers[engine], f"trial_{number:04d}")
        assert set(metrics) == set(expected), number
        for name, value in expected.items():
            assert close(metrics[name], value, 1e-6), (number, name)  # stored as float32
        if row["state"] in ("complete", "pruned"):
            assert "val_mse" in metrics
        if row["rank"] == 1:
            assert "test_mse" in metrics


@slow
@ENGINES
def test_every_trial_has_its_curves(
    servers: dict[str, Server], studies: dict[str, Study], engine: str
) -> None:
    server = servers[engine]
    table = studies[engine].trials().set_index("trial")
    tags = server.get("/data/plugin/scalars/tags")
    for number, row in table.iterrows():
        run = f"trial_{number:04d}"
        for split in ("train", "validation"):
            assert set(tags[f"{run}/{split}"]) == {"epoch_loss", "epoch_mse", "epoch_mae"}
        # The session's one-point metrics (what the HParams columns read) sort after the
        # curves, so Time Series, which orders its cards by tag, opens on the curves.
        assert min(tags.get(run, {"~": None})) > "epoch_mse", (number, tags.get(run))
        points = server.get(
            "/data/plugin/scalars/scalars", run=f"{run}/validation", tag="epoch_mse"
        )
        steps = [step for _, step, _ in points]
        assert steps == list(range(1, len(steps) + 1)), (number, steps)  # no epoch twice
        if row["state"] == "failed":
            assert len(steps) == 1  # it overflowed at the first epoch
            continue
        assert len(steps) == row["epochs"], number
        if row["state"] == "complete":
            best = min(value for _, _, value in points)
            assert close(best, row["val_mse"], 1e-6), number


@pytest.fixture(scope="module")
def graph_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """TensorBoard on a study of its own: the graph is the results layer's, whatever the
    engine, and the tensorflow env runs this module for it alone (the two studies above,
    each run twice, and their two servers cost more than the check)."""
    root = tmp_path_factory.mktemp("graph")
    args = ["boston", "--space", "mlp", "--trials", "2", "--epochs", "2", "--cv", "1"]
    args += ["--top-k", "1", "--ensemble", "1", "--ensemble-size", "2", "--out", str(root)]
    with contextlib.redirect_stdout(io.StringIO()):
        assert run_main(args) == 0
    folder = Study(root, "boston", "mlp-optuna-tpe").folder
    server = tensorboard_server(folder / "tensorboard", root / "tensorboard.log")
    try:
        server.wait_until_serving()
        # Loaded once both trials' sessions show: the graph is there by then.
        server.eventually(lambda: len(server.session_groups()) >= 2, "2 sessions")
        yield server
    finally:
        server.stop()


@pytest.mark.backend
def test_a_graph_is_written_on_tensorflow_alone(tmp_path: Path) -> None:
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(1, name="dense_0")(inputs), name="tiny")
    on_tensorflow = keras.backend.backend() == "tensorflow"
    assert write_graph(tmp_path, model) is on_tensorflow
    assert bool(list(tmp_path.glob(f"{GRAPH_RUN}/*tfevents*"))) is on_tensorflow


@slow
@pytest.mark.backend("tensorflow", why="the graph TensorBoard shows; JAX's: the test above")
def test_the_best_model_graph_is_served_with_the_layers_scopes(graph_server: Server) -> None:
    server = graph_server
    graphs = server.get("/data/plugin/graphs/info")
    assert graphs["best"]["run_graph"] is True
    url = f"{server.url}/data/plugin/graphs/graph?run=best&conceptual=false"
    with urllib.request.urlopen(url, timeout=30) as response:
        graph = response.read().decode()
    # Scopes named after the layers, without the _1 that tracing a Keras model adds.
    names = set(re.findall(r'name: "([^"]+)"', graph))
    scopes = {part for name in names for part in name.split("/")[:-1]}
    assert {"best", "dense_0"} <= scopes, sorted(scopes)
    # The space's model by its name, or, where an ensemble of several trials was
    # selected (--ensemble-size), the ensemble of members that are such models.
    assert "mlp" in scopes or {"ensemble", "member_0"} <= scopes, sorted(scopes)
    # A layer may be named dense_1 in its own right: only a doubled scope is tracing's.
    # Layers are snake_case; TensorFlow's own op scopes (Cast_1: the ensemble's two
    # Rescaling casts) are capitalised and not layers.
    traced = [
        s for s in scopes if s.endswith("_1") and s.removesuffix("_1") in scopes and s == s.lower()
    ]
    assert not traced, sorted(scopes)


@slow
@ENGINES
def test_one_events_file_per_run_after_a_rerun(studies: dict[str, Study], engine: str) -> None:
    folder = studies[engine].folder
    logdir = folder / "tensorboard"
    events = sorted(folder.rglob("*tfevents*"))
    # Nothing outside our logdir: keras-tuner's own TensorBoard logging never runs.
    assert all(logdir in path.parents for path in events), events
    runs = [path.parent for path in events]
    assert len(runs) == len(set(runs)), events
    trials = len(studies[engine].trials())
    sessions = [run for run in runs if run.parent == logdir and run.name.startswith("trial_")]
    assert len(sessions) == trials
    assert not list(logdir.rglob("*.tmp"))


def events(folder: Path) -> list[Any]:
    """The events of the one events file in ``folder`` (not its subfolders)."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    (path,) = folder.glob("*tfevents*")
    return list(EventFileLoader(str(path)).Load())


def scalars(folder: Path) -> dict[str, dict[int, float]]:
    """Every scalar of a run folder's events file: tag -> {step: value}."""
    from tensorboard.util import tensor_util

    found: dict[str, dict[int, float]] = {}
    for event in events(folder):
        for value in event.summary.value:
            if value.metadata.plugin_data.plugin_name == "scalars":
                found.setdefault(value.tag, {})[event.step] = float(
                    tensor_util.make_ndarray(value.tensor)
                )
    return found


@slow
def test_cross_validated_metrics_are_on_the_trials_curves(tmp_path: Path) -> None:
    """With --cv 5 a trial's run is the curve averaged over the folds, which its result is
    read from: each val_* of its HParams session is that curve's value at the reported
    best epoch. A pruned trial's metrics are its curve's best epoch so far."""
    space = write_space(tmp_path / "fated.py", FATED)
    study, _ = run_study(tmp_path / "results", space, "optuna", cv=5)
    table = study.trials().set_index("trial")
    assert list(table["state"]) == END_STATES["optuna"]
    logdir = study.folder / "tensorboard"
    # The experiment lives in the first session: no run at the root.
    assert not list(logdir.glob("*tfevents*"))
    for number, row in table.iterrows():
        run = logdir / f"trial_{number:04d}"
        session = scalars(run)
        curve = scalars(run / "validation")
        assert set(curve) == {"epoch_loss", "epoch_mse", "epoch_mae"}, number
        if row["state"] == "failed":
            assert "val_mse" not in session  # it overflowed: no finite epoch
            continue
        (step,) = set(session["val_mse"])
        finite = {s: v for s, v in curve["epoch_mse"].items() if math.isfinite(v)}
        assert step == min(finite, key=finite.__getitem__), number  # the best epoch
        training = scalars(run / "train")
        for m in ("mse", "mae"):
            assert close(session[f"val_{m}"][step], curve[f"epoch_{m}"][step], 1e-6), number
            assert close(session[f"train_{m}"][step], training[f"epoch_{m}"][step], 1e-6)
        # Whole numbers are hyperparameter columns, not one-point scalar series.
        assert not {"epochs", "best_epoch"} & set(session), number
        if row["state"] == "complete":
            assert step == row["best_epoch"]
            assert close(curve["epoch_mse"][step], row["val_mse"], 1e-6), number


def test_keras_tuner_engine_writes_no_tensorboard_logs_itself() -> None:
    """keras-tuner's ``Tuner`` adds a TensorBoard callback with its own HParams; our engine
    subclasses ``BaseTuner``, which trains nothing itself, so no trial is logged twice."""
    import keras_tuner
    from keras_tuner.engine import base_tuner

    from search.engines.keras_tuner.engine import _Tuner

    assert issubclass(_Tuner, base_tuner.BaseTuner)
    assert not issubclass(_Tuner, keras_tuner.Tuner)


@slow
def test_best_model_summary_beside_best_keras(studies: dict[str, Study]) -> None:
    for study in studies.values():
        text = (study.folder / "best.txt").read_text(encoding="utf-8")
        assert 'Model: "best"' in text
        assert "standardize (Normalization)" in text
        assert "dense_0 (Dense)" in text  # the space's model, expanded
        assert "Param #" in text
        assert "Total params" in text


@pytest.fixture(scope="module")
def cli_server(
    studies: dict[str, Study], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """``python -m search tensorboard boston`` over both studies, as a user starts it: one
    process serves the command's own test and the browser's (each start imports TensorFlow
    again). The last test of the module stops it with Ctrl-C; this stops it otherwise."""
    out = next(iter(studies.values())).out
    port = free_port()
    command = [sys.executable, "-m", "search", "tensorboard", "boston", "--out", str(out)]
    log = tmp_path_factory.mktemp("tensorboard-command") / "cli.log"
    server = Server([*command, "--port", str(port)], port, log)
    try:
        server.wait_until_serving()
        yield server
    finally:
        server.stop(signal.SIGINT)


@slow
def test_tensorboard_command_serves_every_study_of_the_task(
    studies: dict[str, Study], cli_server: Server
) -> None:
    server = cli_server
    # Each trial named by its number, then its study, with the study as a column.
    expected = sorted(
        f"{n} {study.study}" for study in studies.values() for n in study.trials()["trial"]
    )
    server.eventually(
        lambda: sorted(g["name"] for g in server.session_groups()) == expected,
        f"the sessions {expected}",
    )
    # One experiment over both studies, with the domains intact.
    infos = hparam_infos(server)
    assert set(infos) == MLP_HPARAMS | {"epochs", "best_epoch", "state", "study"}
    assert infos["units_0"]["domainDiscrete"] == [" 16", " 32", " 64", "128", "256"]
    assert infos["study"]["domainDiscrete"] == sorted(s.study for s in studies.values())
    for group in server.session_groups():
        number, study = group["name"].split(" ")
        assert group["hparams"]["study"] == study
        (session,) = group["sessions"]
        assert session["name"] == f"{study}/trial_{int(number):04d}"  # the run's path
    # No run of its own for the experiment (it would show as an empty "." run).
    runs = server.get("/data/runs")
    assert "." not in runs and all(" " not in run for run in runs), runs
    server.eventually(lambda: any("TensorBoard over 2 studies" in x for x in server.lines), "")
    assert f"{server.url}/" in "".join(server.lines)
    assert Path(server.get("/data/environment")["data_location"]).is_dir()


def test_the_fixture_fates_follow_the_trial_seeds() -> None:
    from search.trainers import trial_seed

    draws = [random.Random(trial_seed(STUDY_SEED, n)).random() for n in range(len(FATES))]
    fates = tuple("explode" if d < 0.25 else "stall" if d < 0.5 else "train" for d in draws)
    assert fates == FATES


def test_integers_show_as_integers_and_sort_as_numbers() -> None:
    """TensorBoard has no integer type; integers are text of one width, so that they print
    as integers and sort as numbers. Several studies' widths are made one."""
    from tensorboard.plugins.hparams import api_pb2, metadata

    from search.results.tensorboard.hparams import discrete, merge_experiments, session_start

    assert discrete([128, 16, 32]).values == [" 16", " 32", "128"]
    assert discrete([-1, 2]).values == [-1.0, 2.0]  # negative: numbers
    assert discrete([1, 0.5]).values == [0.5, 1.0]
    assert discrete(["a", "b"]).values == ["a", "b"]
    start = session_start({"units": 16, "act": "relu", "rate": 0.5}, {"units": 3})
    content = start.value[0].metadata.plugin_data.content
    values = metadata.parse_session_start_info_plugin_data(content).hparams
    assert values["units"].string_value == " 16"
    assert values["act"].string_value == "relu"
    assert values["rate"].number_value == 0.5

    def experiment(layers: list[str]) -> Any:
        found = api_pb2.Experiment()
        info = found.hparam_infos.add(name="layers", type=api_pb2.DATA_TYPE_STRING)
        info.domain_discrete.extend(layers)
        return found

    merged = merge_experiments([experiment(["1", "3"]), experiment([" 2", "12"])], ["a", "b"])
    infos = {info.name: info for info in merged.hparam_infos}
    assert [v.string_value for v in infos["layers"].domain_discrete.values] == [
        " 1",
        " 2",
        " 3",
        "12",
    ]
    assert [v.string_value for v in infos["study"].domain_discrete.values] == ["a", "b"]
    assert infos["study"].differs


def test_the_merged_view_names_trials_to_sort_as_numbers(tmp_path: Path) -> None:
    """Over several studies the trial names are padded to the widest trial number, so the
    dashboard's text sort puts trial 9 before trial 10 and each study's trials in order."""
    from search.results.tensorboard.merged import number_width, trial_label

    for study, numbers in (("a", [0, 9, 10]), ("b", [2])):
        for number in numbers:
            (tmp_path / study / "tensorboard" / f"trial_{number:04d}").mkdir(parents=True)
    logdirs = [tmp_path / study / "tensorboard" for study in ("a", "b")]
    width = number_width(logdirs)
    assert width == 2
    labels = [trial_label("a", f"trial_{n:04d}", width) for n in (10, 9, 0)]
    assert sorted(labels) == [" 0 a", " 9 a", "10 a"]
    assert trial_label("b", "trial_0002", width) == " 2 b"
    assert trial_label("b", "best", width) == "best b"


# The reference scalar_pb warns as it casts 1e39 to float32.
@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_a_trials_events_file_is_what_tensorboards_own_writer_writes(tmp_path: Path) -> None:
    """The curve writer frames its records and sets its scalars itself (tensorboard's
    checksums are pure Python without TensorFlow): the file must be byte for byte the one
    tensorboard's RecordWriter writes from scalar_pb's summaries, and read back by its
    checksum-verifying reader."""
    from tensorboard.compat.proto import event_pb2
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import PyRecordReader_New
    from tensorboard.plugins.scalar.summary_v2 import scalar_pb
    from tensorboard.summary.writer.record_writer import RecordWriter

    from search.results.tensorboard import write_trial

    curve = {
        "loss": [3.5, 1e-30, float("inf")],
        "mse": [2.25, -0.0, 1e39],  # beyond float32: inf in both
        "val_loss": [float("nan"), 1e30, 0.1],
    }
    write_trial(tmp_path, "trial_0007", curve)
    for split, names in (("train", ["loss", "mse"]), ("validation", ["loss"])):
        (written,) = (tmp_path / "trial_0007" / split).glob("*tfevents*")
        reader = PyRecordReader_New(str(written))
        records = []
        with contextlib.suppress(Exception):  # OutOfRangeError at the end
            while True:
                reader.GetNext()
                records.append(reader.record())
        wall_time = event_pb2.Event.FromString(records[0]).wall_time
        expected = [event_pb2.Event(wall_time=wall_time, file_version="brain.Event:2")]
        prefix = "" if split == "train" else "val_"
        expected += [
            event_pb2.Event(
                wall_time=wall_time, step=epoch, summary=scalar_pb(f"epoch_{name}", value)
            )
            for name in names
            for epoch, value in enumerate(curve[prefix + name], start=1)
        ]
        buffer = io.BytesIO()
        writer = RecordWriter(buffer)
        for event in expected:
            writer.write(event.SerializeToString())
        assert written.read_bytes() == buffer.getvalue()
        assert len(records) == len(expected) == 1 + 3 * len(names)


def test_declared_space_opens_every_conditional_scope() -> None:
    """units_2 exists only when layers is 3, which the default build (2 layers) never
    enters; keras-tuner's own discovery would miss it until a trial sampled 3 layers."""
    from search.declared_space import declared_space
    from search.results.tensorboard.hparams import hparam
    from search.space_lookup import space_class
    from search.tasks import load_task

    space = space_class("mlp")(load_task("boston").spec)
    declared = {spec.name: hparam(spec) for spec in declared_space(space).space}
    assert set(declared) == MLP_HPARAMS
    assert declared["units_2"].domain.values == [" 16", " 32", " 64", "128", "256"]
    assert declared["dropout_0"].domain.values == [0.0, 0.125, 0.25, 0.375, 0.5]
    assert declared["layers"].domain.values == ["1", "2", "3"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["boston"], "no TensorBoard logs for boston"),
        (["boston", "nosuch"], "no TensorBoard logs for boston/nosuch"),
        (["boston", "../x"], "invalid study name"),
    ],
)
def test_tensorboard_command_without_logs_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    (tmp_path / "boston" / "mlp-optuna-tpe").mkdir(parents=True)  # run with --no-tensorboard
    assert run_main(["tensorboard", *args, "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1, error


def test_tensorboard_command_refuses_a_bad_port(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_main(["tensorboard", "boston", "--port", "70000"])
    assert exit_info.value.code == 2
    assert "expected a port 1-65535" in capsys.readouterr().err


# Reads, from the rendered HParams dashboard (its elements live in shadow roots, which
# Playwright's CSS selectors pierce), the grid's header and cell texts and, for each cell
# that names a trial, whether its number is drawn inside the cell.
READ_TABLE = """(pattern) => {
    const grid = [];
    (function walk(node) {
        if (node.shadowRoot) walk(node.shadowRoot);
        for (const child of node.children || []) walk(child);
        if (node.tagName === 'VAADIN-GRID-CELL-CONTENT') grid.push(node);
    })(document.body);
    const trials = [];
    for (const cell of grid) {
        const text = cell.innerText.trim();
        if (!new RegExp(pattern).test(text)) continue;
        const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
        let node = walker.nextNode();
        while (node && !node.textContent.trim()) node = walker.nextNode();
        const start = node.textContent.indexOf(text.split(' ')[0]);
        const range = document.createRange();
        range.setStart(node, start);
        range.setEnd(node, start + text.split(' ')[0].length);
        const number = range.getBoundingClientRect();
        const box = cell.getBoundingClientRect();
        trials.push({text, shown: number.right <= box.right + 0.5 && number.width > 0});
    }
    return {headers: grid.map(c => c.innerText.trim()), trials};
}"""


@slow
def test_the_hparams_dashboard_in_a_browser(studies: dict[str, Study], cli_server: Server) -> None:
    """What a user sees: TensorBoard over both studies, in headless Chromium."""
    executable = chromium()
    from playwright.sync_api import sync_playwright

    tables = {engine: study.trials() for engine, study in studies.items()}
    names = {study.study for study in studies.values()}
    trials = sum(len(table) for table in tables.values())
    drawn = sum(int(table["state"].isin(["complete", "pruned"]).sum()) for table in tables.values())
    assert any((table["state"] == "pruned").any() for table in tables.values())
    server = cli_server
    errors: list[str] = []
    server.eventually(lambda: len(server.session_groups()) == trials, f"{trials} trials")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(f"{server.url}/#hparams")
        pattern = r"^\d+ (" + "|".join(sorted(names)) + r")$"
        deadline = time.monotonic() + SERVER_TIMEOUT
        while True:
            table = page.evaluate(READ_TABLE, pattern)
            if len(table["trials"]) >= trials or time.monotonic() > deadline:
                break
            page.wait_for_timeout(500)
        # Every trial once, each named by its number (drawn inside its cell) and study.
        assert sorted(t["text"] for t in table["trials"]) == sorted(
            f"{n} {study.study}" for study in studies.values() for n in study.trials()["trial"]
        )
        assert all(t["shown"] for t in table["trials"]), table["trials"]
        # The columns shown by default: the state, the study, the space's chosen ones.
        headers = table["headers"]
        for column in ("state", "study", "layers", "optimizer", "learning_rate", "val_mse"):
            assert column in headers, headers
        assert "test_mse" not in headers
        page.get_by_text("PARALLEL COORDINATES VIEW").click()
        lines = page.locator("tf-hparams-parallel-coords-plot g.foreground path")
        deadline = time.monotonic() + 60
        while lines.count() < drawn and time.monotonic() < deadline:
            page.wait_for_timeout(500)
        # Every complete and pruned trial is drawn (a failed one has no metrics).
        assert lines.count() == drawn
        browser.close()
    assert not errors, errors


# Last in the module: it ends the server that the two tests above share.
@slow
def test_tensorboard_command_ends_on_ctrl_c_and_removes_its_view(cli_server: Server) -> None:
    view = Path(cli_server.get("/data/environment")["data_location"])
    assert view.is_dir()
    # Ctrl-C, delivered to a thread other than the main one: the one Python must notice.
    code = cli_server.stop(signal.SIGINT, side_thread=True)
    log = cli_server.log.read_text().partition("\nExtension modules:")[0]
    assert code == 0, log[-3000:]  # else the stack of each thread when it was aborted
    assert not view.exists()  # the temporary view is removed
    with pytest.raises(urllib.error.URLError):  # and TensorBoard is gone
        urllib.request.urlopen(cli_server.url, timeout=5)
