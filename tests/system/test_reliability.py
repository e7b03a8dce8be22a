"""Studies survive kill -9 and Ctrl-C, with nothing lost or duplicated.

Kills are driven by the fault points in ``search/faults.py`` (``SEARCH_KILL_AT=point:n``
sends SIGKILL to the process the n-th time it passes ``point``), so each test kills at a
known moment instead of guessing with timers. Only the command that is killed or
interrupted runs as a real process; the rerun that recovers the study runs in this process
(``search.cli.main``), and the checks read the study back here. Diverging models and the
failure limit need no kill: they are in ``tests/study/test_failed_trials.py``.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT, call_cli, cli_env, describe, ended_at_exit, run_cli, start_cli

from search.trainers.checkpoint import read

TRIALS = 4
TINY = (
    *("--trials", str(TRIALS), "--epochs", "2", "--cv", "1", "--space", "mlp"),
    *("--top-k", "2", "--ensemble", "2"),
)
STUDY = {"optuna": "mlp-optuna-tpe", "keras-tuner": "mlp-keras-tuner-random"}
# How long to wait for the first trial: a bound on a hung study, not on the machine's speed.
WAIT = 900

pytestmark = pytest.mark.slow


def check_consistent(out: Path, engine: str, trials: int = TRIALS) -> pd.DataFrame:
    """Every CSV parses; trials add up; none is duplicated, running or left half-written."""
    table = pd.read_csv(out / "boston" / STUDY[engine] / "leaderboard.csv")
    assert table["trial"].is_unique
    assert set(table["state"]) <= {"complete", "pruned", "failed"}
    interrupted = table["error"].fillna("").str.startswith("interrupted")
    # Interrupted trials that were run again do not count toward --trials.
    assert len(table) - interrupted.sum() <= trials <= len(table)
    assert (table["state"] == "complete").sum() >= trials - interrupted.sum() - (
        table["state"] == "failed"
    ).sum()
    studies = pd.read_csv(out / "leaderboard.csv")
    assert (studies["study"] == STUDY[engine]).sum() == 1
    assert not list(out.rglob(".*.tmp*")), "a temporary file was left behind"
    return table


@pytest.mark.parametrize(
    ("engine", "point"),
    [
        ("optuna", "trial:2"),
        ("optuna", "write:4"),
        ("optuna", "scoring:1"),
        ("keras-tuner", "trial:3"),
        ("keras-tuner", "tensorboard:1"),
        ("keras-tuner", "write:6"),
    ],
)
def test_kill_9_then_rerun_loses_and_duplicates_nothing(
    tmp_path: Path, engine: str, point: str
) -> None:
    args = ["boston", "--engine", engine, *TINY, "--out", tmp_path]
    env = cli_env() | {"SEARCH_KILL_AT": point}
    killed = subprocess.run(
        [sys.executable, "-m", "search", *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, describe(killed)
    rerun = call_cli(args)
    assert rerun.returncode == 0, describe(rerun)
    table = check_consistent(tmp_path, engine)
    # A kill inside a trial interrupts it, and the rerun runs it again (--retries 1 by
    # default): under Optuna as a new trial beside the interrupted one, under keras-tuner
    # under its own id, interrupted no longer.
    if point.startswith("trial"):
        interrupted = table["error"].fillna("").str.startswith("interrupted").sum()
        assert interrupted == (1 if engine == "optuna" else 0)
        assert (table["state"] == "complete").sum() == TRIALS
    assert (tmp_path / "boston" / STUDY[engine] / "best.keras").exists()


@pytest.mark.parametrize("engine", ["optuna", "keras-tuner"])
def test_retries_run_an_interrupted_trial_again(tmp_path: Path, engine: str) -> None:
    args = ["boston", "--engine", engine, *TINY, "--out", tmp_path, "--retries", "1"]
    env = cli_env() | {"SEARCH_KILL_AT": "trial:2"}
    subprocess.run(
        [sys.executable, "-m", "search", *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=600,
        check=False,
    )
    rerun = call_cli(args)
    assert rerun.returncode == 0, describe(rerun)
    table = check_consistent(tmp_path, engine)
    interrupted = table["error"].fillna("").str.startswith("interrupted")
    if engine == "optuna":
        # A new trial runs the interrupted trial's parameters again.
        assert interrupted.sum() == 1 and len(table) == TRIALS + 1
        params = ["layers", "activation", "l2", "optimizer", "learning_rate", "batch_size"]
        again = table[~interrupted][params].astype(str).apply(tuple, axis=1)
        assert tuple(table[interrupted][params].astype(str).iloc[0]) in set(again)
    else:
        # keras-tuner runs it again under the same trial id: nothing is left interrupted.
        assert interrupted.sum() == 0 and len(table) == TRIALS


def _a_trial_started(board: Path) -> bool:
    journal = board / "optuna.journal"
    if journal.exists() and '"trial_id"' in journal.read_text(encoding="utf-8"):
        return True
    return any(board.glob("keras_tuner/**/trial.json"))


@pytest.mark.parametrize("engine", ["optuna", "keras-tuner"])
def test_ctrl_c_exits_130_keeps_trials_and_resumes(tmp_path: Path, engine: str) -> None:
    args = [
        "boston",
        "--engine",
        engine,
        "--space",
        "mlp",
        "--trials",
        "40",
        # Trials of seconds, so that the signal lands in one.
        "--epochs",
        "2000",
        "--patience",
        "0",
        "--cv",
        "1",
        "--top-k",
        "1",
        "--ensemble-size",
        "0",
        "--out",
        tmp_path,
        "--no-tensorboard",
    ]
    process = start_cli(args)  # its own group, for ended_at_exit: 40 trials would train on
    board = tmp_path / "boston" / STUDY[engine]
    deadline = time.monotonic() + WAIT
    with ended_at_exit(process):
        # Interrupt once the first trial is stored (its record exists in the engine's storage).
        while not _a_trial_started(board):
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.2)
        time.sleep(4)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-2000:]
    last_line = stderr.strip().splitlines()[-1]
    assert "resume with: python -m search" in last_line and "Traceback" not in stderr
    table = pd.read_csv(board / "leaderboard.csv")
    assert (table["error"].fillna("") == "interrupted: Ctrl-C").sum() == 1
    # Resume to one trial more than were held: exactly one new trial runs.
    held = len(table)
    resumed = call_cli(
        [
            "boston",
            "--engine",
            engine,
            "--space",
            "mlp",
            "--trials",
            str(held + 1),
            # The study's identity: a resume with other epochs or patience is refused.
            "--epochs",
            "2000",
            "--patience",
            "0",
            "--cv",
            "1",
            "--top-k",
            "1",
            "--ensemble-size",
            "0",
            "--out",
            tmp_path,
            "--no-tensorboard",
        ]
    )
    assert resumed.returncode == 0, describe(resumed)
    after = pd.read_csv(board / "leaderboard.csv")
    assert after["trial"].is_unique
    assert set(table["trial"]) < set(after["trial"])
    # The interrupted trial runs again (continued from its checkpoint): under Optuna as a
    # new trial beside it that does not count toward --trials, under keras-tuner under its
    # own id, interrupted no longer.
    interrupted = (after["error"].fillna("") == "interrupted: Ctrl-C").sum()
    if engine == "optuna":
        assert interrupted == 1 and len(after) == held + 2
    else:
        assert interrupted == 0 and len(after) == held + 1
    assert not list(board.glob("checkpoints/*")), "a finished trial's checkpoint was left"


@pytest.mark.parametrize(
    ("engine", "trainer", "kill_at"),
    [
        # numpy: both folds train at once; killed after epoch 3 of each.
        ("optuna", "numpy", "checkpoint:3"),
        # fit: the folds in turn; killed after epoch 2 of the second (the first finished).
        pytest.param(
            "keras-tuner",
            "keras",
            "checkpoint:10",
            marks=pytest.mark.backend("jax", why="a killed fit trial; fit's resume on both"),
        ),
        # compiled: the folds in turn, a checkpoint per chunk of 10 epochs; killed after the
        # first fold's (finished), so the rerun trains the second fold only.
        pytest.param(
            "optuna",
            "compiled",
            "checkpoint:1",
            marks=pytest.mark.backend("jax", why="the compiled trainer is JAX-only"),
        ),
    ],
)
def test_a_killed_trial_continues_from_its_checkpoint(
    tmp_path: Path, engine: str, trainer: str, kill_at: str
) -> None:
    """kill -9 after a trial's checkpoint (one per epoch here); the same command, rerun with
    the default options, continues the trial from that checkpoint: it completes with every
    epoch, its TensorBoard curve is one series (each epoch once, in order), and no
    checkpoint is left."""
    args = [
        "boston",
        *("--engine", engine, "--space", "mlp", "--trainer", trainer, "--out", tmp_path),
        *("--trials", "1", "--epochs", "8", "--patience", "0", "--cv", "2"),
        *("--top-k", "0", "--ensemble-size", "0", "--checkpoint-seconds", "0"),
    ]
    killed = start_cli(args, SEARCH_KILL_AT=kill_at)
    with ended_at_exit(killed):
        killed.communicate(timeout=WAIT)
    assert killed.returncode == -signal.SIGKILL
    board = tmp_path / "boston" / STUDY[engine]
    saved = read(board / "checkpoints" / "trial_0000.npz")
    lengths = [len(curve["val_mse"]) for curve in saved.curves]
    assert lengths == {"numpy": [3, 3], "keras": [8, 2], "compiled": [8]}[trainer]
    rerun = call_cli(args)
    assert rerun.returncode == 0, describe(rerun)
    table = pd.read_csv(board / "leaderboard.csv")
    done = table[table["state"] == "complete"]
    assert len(done) == 1 and int(done["epochs"].iloc[0]) == 8
    # Its seconds hold the killed attempt's too.
    assert float(done["seconds"].iloc[0]) > saved.seconds
    run = board / "tensorboard" / f"trial_{int(done['trial'].iloc[0]):04d}" / "validation"
    steps = _steps(run, "epoch_loss")
    assert steps == list(range(1, 9)), steps
    assert not list(board.glob("checkpoints/*"))
    if engine == "optuna":
        # The pruner heard of the epochs trained after the checkpoint only (of the first
        # fold, which it watches): the rerun continued from it rather than starting over.
        import optuna

        study = optuna.load_study(
            study_name=f"boston/{STUDY[engine]}",
            storage=optuna.storages.JournalStorage(
                optuna.storages.journal.JournalFileBackend(str(board / "optuna.journal"))
            ),
        )
        rerun_trial = study.trials[int(done["trial"].iloc[0])]
        heard = list(range(9 if trainer == "compiled" else 4, 9))
        assert sorted(rerun_trial.intermediate_values) == heard


def _steps(run: Path, tag: str) -> list[int]:
    """The steps of ``tag`` in a TensorBoard run folder, in the order written."""
    from search.results.tensorboard.events import read_events

    return [
        step for step, summary in read_events(run) for value in summary.value if value.tag == tag
    ]


def test_population_based_training_continues_from_its_last_interval(tmp_path: Path) -> None:
    """Killed after its third interval, a PBT study run again restores the population
    (weights, optimizer state, generators) and ends as the uninterrupted run does."""
    from search.trainers.numpy.loop.ahead import compile_entry_points

    # Every run below loads the numpy loop from numba's cache, written here if it was not
    # yet: code compiled in a process can differ in float32's last digits from the cached
    # code (docs/results.md), enough to flip a ranking of two members and so an exploit.
    compile_entry_points()
    args = ["boston", "--space", "mlp", "--algorithm", "pbt", "--trials", "6", "--epochs"]
    args += ["20", "--cv", "1", "--pbt-interval", "4", "--top-k", "1", "--no-tensorboard"]

    def run_pbt(out: Path, **env: str) -> subprocess.CompletedProcess[str]:
        return run_cli([*args, "--out", out], **env)

    whole = run_pbt(tmp_path / "whole")
    assert whole.returncode == 0, describe(whole)
    out = tmp_path / "killed"
    killed = run_pbt(out, SEARCH_KILL_AT="pbt:3")
    assert killed.returncode == -signal.SIGKILL, describe(killed)
    folder = out / "boston" / "mlp-optuna-pbt"
    assert len(pd.read_csv(folder / "pbt.csv")) == 6 * 3  # three intervals before the kill
    assert (folder / "pbt" / "state.npz").exists()
    rerun = run_pbt(out)
    assert rerun.returncode == 0, describe(rerun)
    assert "continues from epoch 12" in rerun.stdout + rerun.stderr, describe(rerun)
    # The same schedule: every member, epoch, hyperparameter and source; the values to
    # float32's last digits, as the leaderboard's below.
    expected = pd.read_csv(tmp_path / "whole" / "boston" / "mlp-optuna-pbt" / "pbt.csv")
    schedule = pd.read_csv(folder / "pbt.csv")
    pd.testing.assert_frame_equal(schedule.drop(columns="value"), expected.drop(columns="value"))
    assert list(schedule["value"]) == pytest.approx(list(expected["value"]), rel=1e-6, nan_ok=True)
    assert not (folder / "pbt" / "state.npz").exists()
    table = pd.read_csv(folder / "leaderboard.csv")
    complete = table[table["error"].isna()]
    assert len(complete) == 6  # the interrupted six stay as failed rows beside them
    first = pd.read_csv(tmp_path / "whole" / "boston" / "mlp-optuna-pbt" / "leaderboard.csv")
    assert sorted(complete["value"]) == pytest.approx(sorted(first["value"]), rel=1e-6)
