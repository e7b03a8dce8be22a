"""Several workers on one study: the embedded journal and a real PostgreSQL.

One worker is killed with SIGKILL in the middle of a trial; the others must fail that trial
(its process is gone), finish the budget, and leave no trial running or duplicated.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
from conftest import ROOT, cli_env, describe

pytestmark = pytest.mark.slow

POSTGRES = os.environ.get("SEARCH_POSTGRES_URL")
needs_postgres = pytest.mark.skipif(
    not POSTGRES, reason="SEARCH_POSTGRES_URL is not set (.ci/run sets it to the local server)"
)
PASSWORD = "pw-never-in-output-7f3a"


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
    deadline = time.monotonic() + 300
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
    args = [
        "boston",
        "--space",
        "mlp",
        "--trials",
        "6",
        "--epochs",
        "40",
        "--patience",
        "0",
        "--pruner",
        "none",
        "--workers",
        str(workers),
        "--study",
        study,
        "--top-k",
        "1",
        "--out",
        str(out),
        *extra,
    ]
    if url:
        args += ["--storage", url]
    process = subprocess.Popen(
        [sys.executable, "-m", "search", *args],
        cwd=ROOT,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
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


@pytest.mark.parametrize("workers", [2, 3])
def test_workers_on_the_embedded_journal_survive_a_killed_worker(
    tmp_path: Path, workers: int
) -> None:
    run_and_kill(tmp_path, "journal", workers, None, "--no-tensorboard")
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
    check_accounted(tmp_path, study, retried=True)
    # No secret in any output: files of the results tree, stdout and stderr.
    assert PASSWORD not in output
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path
    # The study lives in PostgreSQL: a second storage client sees all 7 trials.
    loaded = optuna.load_study(study_name=f"boston/{study}", storage=POSTGRES)
    assert len(loaded.trials) == 7


@needs_postgres
def test_a_bad_storage_url_names_it_without_its_password(tmp_path: Path) -> None:
    assert POSTGRES
    url = with_password(POSTGRES).rsplit(":", 1)[0] + ":1/test"  # nothing listens on port 1
    proc = subprocess.run(
        [sys.executable, "-m", "search", "boston", "--storage", url, "--out", str(tmp_path / "o")],
        cwd=ROOT,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 2
    assert "cannot open storage" in proc.stderr and "***" in proc.stderr
    assert PASSWORD not in proc.stderr + proc.stdout
    assert not (tmp_path / "o").exists()
