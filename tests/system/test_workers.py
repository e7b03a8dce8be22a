"""Several workers on one study: the embedded journal and a real PostgreSQL.

One worker is killed with SIGKILL in the middle of a trial; the others must fail that trial
(its process is gone), finish the budget, and leave no trial running or duplicated. The
study whose worker is killed runs as a real process (its workers are its children); the
studies read back afterwards (``leaderboard``), the Redis study that kills nothing and the
refused storage URL run in this process (``search.cli.main``), whose workers are still real
processes.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
from conftest import (
    POSTGRES,
    REDIS,
    call_cli,
    describe,
    ended_at_exit,
    needs_postgres,
    needs_redis,
    start_cli,
)

pytestmark = pytest.mark.slow
# Trials of seconds (the numpy trainer, many epochs), so that a worker is killed in the middle
# of one. A kill that lands in a journal write instead is handled too: the survivors cut the
# torn record (docs/reliability.md).
LONG_TRIALS = ("--epochs", "2000", "--patience", "0")
# On PostgreSQL each epoch's report is a write of about 5 ms, 5 times the epoch's training:
# a quarter of the epochs makes a trial as long as the journal's.
PG_TRIALS = ("--epochs", "500", "--patience", "0")
# keras-tuner's workers are killed by the trial the chief's oracle file lists as running for
# a second: that file can lag a trial's end, so its trials are Keras fit's, of several
# seconds (the numpy trainer's often ended first, and the study with them). Seconds of
# epochs, not of compiling: JAX's compilation cache (tox.ini) may hold the model's steps,
# and 40 epochs then took 0.2 s (about 5 ms an epoch here).
KT_TRIALS = ("--epochs", "400", "--patience", "0", "--trainer", "keras")
# Their processes train on JAX, whatever the test's own backend: the numpy env runs them
# (it has JAX too), the one env with room beside the tensorflow and jax envs' backend tests.
FIT_TRIALS = pytest.mark.skipif(
    importlib.util.find_spec("jax") is None, reason="keras-tuner's trials train with fit on JAX"
)
FIT_BACKEND = "jax"

PASSWORD = "pw-never-in-output-7f3a"
# How long to wait for a trial to kill: a bound on a hung study, not on the machine's speed
# (workers that each import TensorFlow start slowly on a busy two-core machine).
WAIT = 900


def with_password(url: str) -> str:
    """The PostgreSQL URL with a password added (trust auth here ignores it)."""
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user.split(':')[0]}:{PASSWORD}@{host}"


def storage_of(out: Path, study: str, url: str | None) -> Any:
    if url:
        return optuna.storages.RDBStorage(url)
    journal = out / "boston" / study / "optuna.journal"
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))


def kill_a_running_worker(out: Path, study: str, url: str | None, process: Any) -> int:
    """Wait until some worker runs a trial past its first epochs, SIGKILL it; its pid."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        assert process.poll() is None, "the study ended before a worker could be killed"
        try:
            loaded = optuna.load_study(
                study_name=f"boston/{study}", storage=storage_of(out, study, url)
            )
        except (KeyError, FileNotFoundError):
            time.sleep(0.5)
            continue
        for trial in loaded.get_trials(states=(optuna.trial.TrialState.RUNNING,)):
            worker = str(trial.user_attrs.get("worker", ""))
            if worker.rpartition(":")[2].isdigit() and len(trial.intermediate_values) >= 2:
                pid = int(worker.rpartition(":")[2])
                os.kill(pid, signal.SIGKILL)
                return pid
        time.sleep(0.2)
    raise AssertionError("no running trial to kill")


def run_and_kill(out: Path, study: str, workers: int, url: str | None, *extra: str) -> str:
    long_trials = PG_TRIALS if url else LONG_TRIALS
    args = [
        "boston",
        "--space",
        "mlp",
        "--trials",
        "6",
        *long_trials,
        "--pruner",
        "none",
        "--workers",
        str(workers),
        "--study",
        study,
        "--cv",
        "1",
        "--top-k",
        "1",
        "--ensemble",
        "1",
        "--ensemble-size",
        "0",
        "--out",
        str(out),
        *extra,
    ]
    if url:
        args += ["--storage", url]
    process = start_cli(args)
    with ended_at_exit(process):
        kill_a_running_worker(out, study, url, process)
        stdout, stderr = process.communicate(timeout=900)
    proc = subprocess.CompletedProcess(args, process.returncode, stdout, stderr)
    assert process.returncode == 0, describe(proc)
    return stdout + stderr


def check_accounted(out: Path, study: str, retried: bool) -> pd.DataFrame:
    table = pd.read_csv(out / "boston" / study / "leaderboard.csv")
    assert table["trial"].is_unique
    assert set(table["state"]) <= {"complete", "pruned", "failed"}, "a trial was left running"
    interrupted = table["error"].fillna("").str.startswith("interrupted")
    assert interrupted.sum() == 1
    if retried:  # the killed trial's configuration ran again: 6 trials count, 7 rows
        assert len(table) == 7 and (~interrupted).sum() == 6
    else:  # the killed trial counts as one of the 6, failed
        assert len(table) == 6
    return table


# 3 workers here and on keras-tuner's first test, 2 on PostgreSQL and on keras-tuner's rerun.
@pytest.mark.parametrize("workers", [3])
def test_workers_on_the_embedded_journal_survive_a_killed_worker(
    tmp_path: Path, workers: int
) -> None:
    # --retries 0 (the default is 1): the killed worker's trial stays failed.
    run_and_kill(tmp_path, "journal", workers, None, "--no-tensorboard", "--retries", "0")
    check_accounted(tmp_path, "journal", retried=False)
    # Several worker processes ran trials of the one study.
    loaded = optuna.load_study(
        study_name="boston/journal", storage=storage_of(tmp_path, "journal", None)
    )
    assert len({t.user_attrs["worker"] for t in loaded.trials}) >= 2


@needs_postgres
def test_workers_on_postgresql_survive_a_killed_worker_and_retry(tmp_path: Path) -> None:
    assert POSTGRES
    url = with_password(POSTGRES)
    study = f"pg-{os.getpid()}-{int(time.time())}"
    output = run_and_kill(tmp_path, study, 2, url, "--retries", "1")
    table = check_accounted(tmp_path, study, retried=True)
    # No secret in any output: files of the results tree, stdout and stderr.
    assert PASSWORD not in output
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path
    # The study lives in PostgreSQL: a second storage client sees all 7 trials.
    loaded = optuna.load_study(study_name=f"boston/{study}", storage=POSTGRES)
    assert len(loaded.trials) == 7
    # A later `leaderboard` rebuilds the table from the storage: a trial another host adds
    # shows up. study.json holds the URL masked, so the password must be given again.
    loaded.tell(loaded.ask(), state=optuna.trial.TrialState.FAIL)
    masked = call_cli(["leaderboard", "boston", "--out", tmp_path])
    assert masked.returncode == 0 and "pass --storage" in masked.stderr, describe(masked)
    assert len(pd.read_csv(tmp_path / "boston" / study / "leaderboard.csv")) == 7
    given = call_cli(["leaderboard", "boston", "--out", tmp_path, "--storage", url])
    assert given.returncode == 0, describe(given)
    assert PASSWORD not in given.stdout + given.stderr
    rebuilt = pd.read_csv(tmp_path / "boston" / study / "leaderboard.csv")
    assert len(rebuilt) == 8
    assert (rebuilt["state"] == "failed").sum() == (table["state"] == "failed").sum() + 1


@needs_redis
def test_workers_share_one_study_on_optunas_redis_journal(tmp_path: Path) -> None:
    assert REDIS
    from optuna.storages.journal import JournalRedisBackend

    study = f"redis-{os.getpid()}-{int(time.time())}"
    args = ["boston", "--space", "mlp", "--trials", "8", "--epochs", "5", "--cv", "1"]
    args += ["--workers", "2", "--storage", REDIS, "--study", study, "--top-k", "1"]
    args += ["--ensemble", "1", "--ensemble-size", "0", "--no-tensorboard", "--out", tmp_path]
    proc = call_cli(args)
    assert proc.returncode == 0, describe(proc)
    storage = optuna.storages.JournalStorage(JournalRedisBackend(REDIS))
    trials = optuna.load_study(study_name=f"boston/{study}", storage=storage).trials
    # Every trial in Redis, each from a worker (which ran how many depends on start-up).
    assert len(trials) == 8 and all(t.user_attrs.get("worker") for t in trials)
    params = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(params)) == len(params), "a configuration was evaluated twice"
    table = pd.read_csv(tmp_path / "boston" / study / "leaderboard.csv")
    assert sorted(table["trial"]) == list(range(8))


@needs_postgres
def test_a_bad_storage_url_names_it_without_its_password(tmp_path: Path) -> None:
    assert POSTGRES
    url = with_password(POSTGRES).rsplit(":", 1)[0] + ":1/test"  # nothing listens on port 1
    proc = call_cli(["boston", "--storage", url, "--out", tmp_path / "o"])
    assert proc.returncode == 2
    assert "cannot open storage" in proc.stderr and "***" in proc.stderr
    assert PASSWORD not in proc.stderr + proc.stdout
    assert not (tmp_path / "o").exists()


# keras-tuner's chief/worker mode over gRPC on the loopback. The harness serves the oracle
# and starts the workers; keras-tuner keeps a rerun under its trial id, so the study holds
# exactly --trials trials with or without --retries.

KT_STUDY = "kt"


def kt_args(out: Path, workers: int, *extra: str) -> list[str]:
    return [
        "boston",
        "--space",
        "mlp",
        "--engine",
        "keras-tuner",
        "--trials",
        "4",
        *KT_TRIALS,
        "--cv",
        "1",
        "--workers",
        str(workers),
        "--study",
        KT_STUDY,
        "--top-k",
        "1",
        "--ensemble",
        "1",
        "--ensemble-size",
        "0",
        "--no-tensorboard",
        "--out",
        str(out),
        *extra,
    ]


def kt_oracle(out: Path) -> dict[str, Any]:
    path = out / "boston" / KT_STUDY / "keras_tuner" / "oracle.json"
    return json.loads(path.read_text()) if path.exists() else {}


def worker_pids(parent: int) -> dict[str, int]:
    """The harness's worker processes by keras-tuner tuner id (worker<index>, the index
    from their environment)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if ppid != parent:
                continue
            environ = (stat.parent / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue  # the process ended meanwhile
        for item in environ:
            if item.startswith(b"SEARCH_WORKER="):
                found[f"worker{item.split(b'=', 1)[1].decode()}"] = int(stat.parent.name)
    return found


def kill_a_kt_worker(out: Path, process: Any) -> str:
    """SIGKILL the worker that has been running a trial for a second or more; its trial id."""
    deadline = time.monotonic() + WAIT
    seen: dict[tuple[str, str], float] = {}
    while time.monotonic() < deadline:
        assert process.poll() is None, "the study ended before a worker could be killed"
        try:
            ongoing = kt_oracle(out).get("ongoing_trials", {})
        except json.JSONDecodeError:
            ongoing = {}
        for tuner, trial in ongoing.items():
            since = seen.setdefault((tuner, trial), time.monotonic())
            pid = worker_pids(process.pid).get(tuner)
            # Read again just before the kill: the trial may have ended while the processes
            # were listed (a trial of the numpy trainer takes a second or a few).
            if pid and time.monotonic() - since >= 1.0 and _still_runs(out, tuner, trial):
                os.kill(pid, signal.SIGKILL)
                return str(trial)
        time.sleep(0.2)
    raise AssertionError("no running trial to kill")


def _still_runs(out: Path, tuner: str, trial: str) -> bool:
    try:
        return kt_oracle(out).get("ongoing_trials", {}).get(tuner) == trial
    except json.JSONDecodeError:
        return False


def run_kt_and_kill(out: Path, workers: int, *extra: str) -> str:
    process = start_cli(kt_args(out, workers, *extra), KERAS_BACKEND=FIT_BACKEND)
    with ended_at_exit(process):
        killed = kill_a_kt_worker(out, process)
        stdout, stderr = process.communicate(timeout=900)
    proc = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    assert process.returncode == 0, describe(proc)
    return killed


def check_kt_accounted(out: Path) -> pd.DataFrame:
    table = pd.read_csv(out / "boston" / KT_STUDY / "leaderboard.csv")
    assert len(table) == 4 and table["trial"].is_unique
    assert set(table["state"]) <= {"complete", "failed"}, "a trial was left running"
    configs = table[["layers", "units_0", "activation", "l2", "learning_rate"]].astype(str)
    assert not configs.duplicated().any(), "a configuration was evaluated twice"
    oracle = kt_oracle(out)
    assert oracle["ongoing_trials"] == {} and oracle["retry_queue"] == []
    return table


@FIT_TRIALS
@pytest.mark.parametrize("workers", [3])
def test_keras_tuner_workers_fail_the_trial_of_a_killed_worker(
    tmp_path: Path, workers: int
) -> None:
    killed = run_kt_and_kill(tmp_path, workers, "--retries", "0")  # the default is 1
    table = check_kt_accounted(tmp_path)
    failed = table[table["state"] == "failed"]
    assert list(failed["trial"]) == [int(killed)]
    assert failed["error"].iloc[0] == "interrupted: process ended"
    # The killed trial counts as one of the 4; the other workers ran the other 3.
    assert (table["state"] == "complete").sum() == 3
    # A later `leaderboard` rebuilds the CSV from the chief's project folder.
    csv = tmp_path / "boston" / KT_STUDY / "leaderboard.csv"
    csv.unlink()
    shown = call_cli(["leaderboard", "boston", "--out", tmp_path])
    assert shown.returncode == 0, describe(shown)
    pd.testing.assert_frame_equal(pd.read_csv(csv), table)


@FIT_TRIALS
def test_keras_tuner_workers_rerun_the_trial_of_a_killed_worker(tmp_path: Path) -> None:
    killed = run_kt_and_kill(tmp_path, 2, "--retries", "1")
    table = check_kt_accounted(tmp_path)
    # Rerun under its own id: every trial completes, the killed one ran twice.
    assert set(table["state"]) == {"complete"}
    assert kt_oracle(tmp_path)["run_times"][killed] == 2


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@FIT_TRIALS
def test_keras_tuner_chief_and_worker_hosts_by_environment(tmp_path: Path) -> None:
    """The README's several-hosts recipe, both "hosts" on the loopback.

    The chief's own worker is killed mid-trial, so the other host's worker must run the
    rerun and the rest of the budget.
    """
    port = str(free_port())

    def start(out: Path, tuner_id: str) -> subprocess.Popen[str]:
        return start_cli(
            kt_args(out, 1, "--retries", "1"),
            KERASTUNER_TUNER_ID=tuner_id,
            KERASTUNER_ORACLE_IP="127.0.0.1",
            KERASTUNER_ORACLE_PORT=port,
            KERAS_BACKEND=FIT_BACKEND,
        )

    chief_out, host_out = tmp_path / "chief", tmp_path / "host-b"
    chief = start(chief_out, "chief")
    host = start(host_out, "host-b")
    with ended_at_exit(chief), ended_at_exit(host):
        killed = kill_a_kt_worker(chief_out, chief)
        for process in (chief, host):
            stdout, stderr = process.communicate(timeout=900)
            proc = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
            assert process.returncode == 0, describe(proc)
    table = check_kt_accounted(chief_out)
    assert set(table["state"]) == {"complete"}
    assert kt_oracle(chief_out)["run_times"][killed] == 2
    # The worker host keeps no trials; a later leaderboard on the chief's host, without
    # the variables, reloads the chief's study.
    assert not (host_out / "boston" / KT_STUDY / "keras_tuner" / "oracle.json").exists()
    (chief_out / "boston" / KT_STUDY / "leaderboard.csv").unlink()
    shown = call_cli(["leaderboard", "boston", "--out", chief_out])
    assert shown.returncode == 0, describe(shown)
    assert len(pd.read_csv(chief_out / "boston" / KT_STUDY / "leaderboard.csv")) == 4
