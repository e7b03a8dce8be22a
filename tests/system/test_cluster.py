"""A study's workers and a suite's studies on a real Dask cluster of this machine.

The module starts a ``dask scheduler`` and two ``dask worker`` processes (one thread each)
on 127.0.0.1; the studies run in this process (the client), their workers as Dask tasks.
Which process trained each trial is read from ``/proc`` while the study runs: every
worker process of the study must be a child of one of the two Dask worker processes.
One Dask worker is killed with SIGKILL in the middle of a trial; a scheduler of its own
is killed under a running ``python -m search`` process.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
from conftest import call_cli, describe, ended_at_exit, start_cli
from dask_processes import WAIT, cluster, free_port

pytest.importorskip("distributed", reason="the dask extra (pip install 'search[dask]')")

import search  # noqa: E402 - after the extra is known to be there
from search.bench.suite_run import bench_suite  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[tuple[str, Any]]:
    with cluster(2) as (address, client, _):
        yield address, client


def dask_worker_pids(client: Any) -> set[int]:
    return {int(pid) for pid in client.run(os.getpid).values()}


def parent_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None  # ended meanwhile


def study_workers() -> dict[int, int | None]:
    """Every running ``search.study.worker`` process of this machine, with its parent."""
    found = {}
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if b"search.study.worker" in cmdline.read_bytes():
                pid = int(cmdline.parent.name)
                found[pid] = parent_of(pid)
    return found


class Watcher:
    """An ``on_trial`` callback that notes the study worker processes started by the Dask
    workers ``parents``, and any started by this process (other sessions' workers on the
    machine are neither)."""

    def __init__(self, parents: set[int]) -> None:
        self.daskworkers = parents
        self.children: set[int] = set()
        self.ours: set[int] = set()

    def __call__(self, records: Any) -> None:
        for pid, parent in study_workers().items():
            if parent in self.daskworkers:
                self.children.add(pid)
            elif parent == os.getpid():
                self.ours.add(pid)


def journal(folder: Path) -> Any:
    backend = optuna.storages.journal.JournalFileBackend(str(folder / "optuna.journal"))
    return optuna.storages.JournalStorage(backend)


TINY = {"epochs": 3, "cv": 1, "top_k": 1, "ensemble": 1, "ensemble_size": 0, "tensorboard": False}


@pytest.mark.parametrize("engine", ["optuna", "keras-tuner"])
def test_workers_on_the_cluster_run_exactly_the_trials_in_its_processes(
    dask_cluster: tuple[str, Any], tmp_path: Path, engine: str
) -> None:
    address, client = dask_cluster
    watcher = Watcher(dask_worker_pids(client))
    study = search.Study(
        "boston", "mlp", engine=engine, workers=2, cluster=address, out=tmp_path, **TINY
    )
    result = study.run(trials=6, progress=False, on_trial=watcher)
    assert len(result.leaderboard) == 6 and result.leaderboard["trial"].is_unique
    assert set(result.leaderboard["state"]) <= {"complete", "pruned", "failed"}
    # The study's worker processes were started by the Dask worker processes, none by this
    # one (the client only watches, and serves keras-tuner's oracle).
    assert watcher.children, "no worker process of the study was seen on the cluster"
    assert not watcher.ours, "this process started worker processes of its own"
    config = json.loads((study.folder / "study.json").read_text())["config"]
    assert config["cluster"] == address
    if engine == "optuna":
        trials = optuna.load_study(study_name=f"boston/{study.name}", storage=journal(study.folder))
        pids = {int(t.user_attrs["worker"].rpartition(":")[2]) for t in trials.trials}
        assert pids <= watcher.children, "a trial was trained outside the cluster"


@pytest.mark.backend("jax", why="its trials train with fit, long enough to kill")
def test_a_killed_dask_worker_interrupts_its_trial_and_the_study_ends_exactly(
    dask_cluster: tuple[str, Any], tmp_path: Path
) -> None:
    """SIGKILL of the Dask worker whose child trains a trial: the child ends with it, the
    trial is interrupted (failed, as a killed local worker's is), its task runs again on a
    Dask worker, and the study holds exactly its 4 trials."""
    address, client = dask_cluster
    daskworkers = dask_worker_pids(client)
    killed: list[int] = []  # the child whose Dask worker was killed

    def kill_mid_trial(records: Any) -> None:
        if killed:
            return
        loaded = optuna.load_study(study_name="boston/killed", storage=journal(folder))
        for trial in loaded.get_trials(states=(optuna.trial.TrialState.RUNNING,)):
            pid = int(str(trial.user_attrs.get("worker", ":0")).rpartition(":")[2])
            parent = parent_of(pid)
            if 2 <= len(trial.intermediate_values) <= 300 and parent in daskworkers:
                os.kill(parent, signal.SIGKILL)
                killed.append(pid)
                return

    study = search.Study(
        "boston",
        "mlp",
        name="killed",
        workers=2,
        cluster=address,
        out=tmp_path,
        pruner="none",
        patience=0,
        trainer="keras",  # trials long enough to be killed in the middle
        **(TINY | {"epochs": 400}),
    )
    folder = study.folder
    result = study.run(trials=4, progress=False, on_trial=kill_mid_trial)
    assert killed, "no trial ran long enough to be killed"
    table = result.leaderboard
    assert table["trial"].is_unique
    assert set(table["state"]) <= {"complete", "failed"}, "a trial was left running"
    # The interrupted trial runs again (--retries 1 by default) as a new trial beside it,
    # which takes its place in the budget: exactly 4 trials complete.
    interrupted = table[table["error"].fillna("").str.startswith("interrupted")]
    assert len(interrupted) == 1 and (table["state"] == "complete").sum() == 4
    assert len(table) == 5
    trials = optuna.load_study(study_name="boston/killed", storage=journal(folder)).trials
    by_number = {t.number: t.user_attrs["worker"] for t in trials}
    assert by_number[interrupted["trial"].item()].endswith(f":{killed[0]}")
    client.wait_for_workers(2, timeout=WAIT)  # the nanny restarted it, for the next tests


TINY_SUITE = """
[settings]
epochs = 2
cv = 1

[[entry]]
task = "wine"
space = "logistic"

[[entry]]
task = "friedman1"
space = "linear"
"""


def files(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


def test_a_suite_on_the_cluster_writes_what_it_writes_here(
    dask_cluster: tuple[str, Any], tmp_path: Path
) -> None:
    """2 entries x 2 contenders x 1 seed x 2 trials: in this process, then as 4 tasks."""
    address, _ = dask_cluster
    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY_SUITE)
    contenders = "optuna:random,optuna:tpe"
    options: dict[str, Any] = {"seeds": 1, "trials": 2, "tensorboard": False}
    here = bench_suite(suite, contenders, out=tmp_path / "here", **options)
    there = bench_suite(suite, contenders, cluster=address, out=tmp_path / "there", **options)
    assert files(tmp_path / "here") == files(tmp_path / "there")
    columns = ["task", "contender", "seed", "trials"]
    pd.testing.assert_frame_equal(here.finals[columns], there.finals[columns])
    # The same seeds give the same studies, trained there as here.
    assert there.finals["best_value"].tolist() == pytest.approx(
        here.finals["best_value"].tolist(), rel=1e-4
    )
    # The same command again resumes: every study is finished, none runs again.
    runs = (there.folder / "wine-logistic" / "runs.csv").read_text()
    args = ["bench", "--suite", suite, "--contenders", contenders, "--seeds", "1"]
    args += ["--trials", "2", "--no-tensorboard", "--out", tmp_path / "there"]
    proc = call_cli([*args, "--cluster", address])
    assert proc.returncode == 0, describe(proc)
    assert "[1/" not in proc.stderr  # no study ran
    assert (there.folder / "wine-logistic" / "runs.csv").read_text() == runs


def test_a_scheduler_that_cannot_be_reached_is_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    proc = call_cli(["boston", "--space", "mlp", "--cluster", address, "--out", tmp_path / "o"])
    assert proc.returncode == 2, describe(proc)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"cannot use the Dask cluster at {address}" in lines[0]
    assert not (tmp_path / "o").exists()


def test_the_scheduler_gone_ends_the_run_in_one_line(tmp_path: Path) -> None:
    """A scheduler of its own, killed once the study's first trials are in; the command
    ends with exit 1 and one line, its finished trials kept."""
    with cluster(1) as (address, _, processes):
        args = ["boston", "--space", "mlp", "--trials", "200", "--epochs", "3", "--cv", "1"]
        args += ["--study", "gone", "--no-tensorboard", "--out", tmp_path, "--cluster", address]
        process = start_cli(args)
        with ended_at_exit(process):
            folder = tmp_path / "boston" / "gone"
            deadline = time.monotonic() + WAIT
            while not finished_trials(folder):
                assert process.poll() is None and time.monotonic() < deadline, "no trial ran"
                time.sleep(0.5)
            os.kill(processes[0].pid, signal.SIGKILL)
            stdout, stderr = process.communicate(timeout=WAIT)
    proc = subprocess.CompletedProcess(args, process.returncode, stdout, stderr)
    assert proc.returncode == 1, describe(proc)
    last = stderr.strip().splitlines()[-1]
    assert "lost the Dask scheduler" in last and address in last, describe(proc)
    assert "Traceback" not in stderr
    assert finished_trials(folder) >= 1


def finished_trials(folder: Path) -> int:
    if not (folder / "optuna.journal").exists():
        return 0
    with contextlib.suppress(KeyError):
        loaded = optuna.load_study(study_name=f"boston/{folder.name}", storage=journal(folder))
        return sum(t.state.is_finished() for t in loaded.trials)
    return 0
