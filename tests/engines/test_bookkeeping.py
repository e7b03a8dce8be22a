"""The harness's bookkeeping per trial does not grow with the study.

After every trial an engine lists every record of its study (for the budget, the stop rule,
the progress bar and the callbacks). Each finished trial must be converted from the engine's
own trial object once, not once per later trial: that made a study of 10,000 trials spend
most of its time converting records (``benchmarks/scale.py`` measures the time per trial).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import search
from search.engines.keras_tuner import engine as keras_tuner_engine
from search.engines.ledger import Ledger
from search.engines.optuna import engine as optuna_engine
from search.engines.records import TrialRecord, counted

TRIALS = 8


@pytest.mark.parametrize("engine", ["optuna", "keras-tuner"])
def test_each_finished_trial_is_converted_once(
    engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module: Any = optuna_engine if engine == "optuna" else keras_tuner_engine
    converted: list[int] = []
    convert: Callable[..., TrialRecord] = module.trial_record

    def counting(trial: Any, *args: Any) -> TrialRecord:
        record = convert(trial, *args)
        converted.append(record.number)
        return record

    monkeypatch.setattr(module, "trial_record", counting)
    seen: list[int] = []
    study = search.Study(
        "boston", "linear", engine=engine, algorithm="random", epochs=1, cv=1, top_k=1,
        ensemble=1, tensorboard=False, out=tmp_path,
    )  # fmt: skip
    result = study.run(TRIALS, progress=False, on_trial=lambda records: seen.append(len(records)))
    assert len(result.records) == TRIALS
    assert seen == list(range(1, TRIALS + 1))  # every trial listed the whole study
    # Once during the search, and once more where the scoring reloads the study (keras-tuner);
    # converting every record after every trial would take 1 + 2 + ... + 8 = 36 in all.
    assert set(converted) == set(range(TRIALS))
    assert max(Counter(converted).values()) <= 2, converted


def test_optuna_walks_the_study_no_more_as_it_grows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listing a study's trials walks all of them (Optuna's journal filters one list per
    study). Between one trial's end and the next, with no pruner (the median pruner reads
    the completed trials at every report, by design), nothing lists the whole study."""
    import optuna

    walks: list[int] = []
    walk = optuna.storages.JournalStorage.get_all_trials

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        walks.append(1)
        return walk(self, *args, **kwargs)

    monkeypatch.setattr(optuna.storages.JournalStorage, "get_all_trials", counting)
    seen: list[int] = []
    study = search.Study(
        "boston", "linear", engine="optuna", algorithm="random", pruner="none", epochs=1,
        cv=1, top_k=1, ensemble=1, out=tmp_path,
    )  # fmt: skip
    study.run(TRIALS, progress=False, on_trial=lambda records: seen.append(len(walks)))
    assert len(seen) == TRIALS
    assert [b - a for a, b in zip(seen, seen[1:], strict=False)] == [0] * (TRIALS - 1)


def test_consecutive_failures_counts_the_trailing_failures_in_trial_order() -> None:
    states = ["complete", "failed", "pruned", "failed", "running", "failed"]
    records = [TrialRecord(number, state) for number, state in enumerate(states)]
    assert counted(records).failures_in_a_row == 2  # trials 3 and 5; 4 still runs
    assert counted(records[::-1]).failures_in_a_row == 2  # the listing's order does not matter
    assert counted(records[:2]).failures_in_a_row == 1
    assert counted([TrialRecord(0, "failed"), TrialRecord(1, "failed")]).failures_in_a_row == 2
    assert counted([]).failures_in_a_row == 0


def reference(records: list[TrialRecord]) -> dict[str, Any]:
    """The counts by their definitions, over every record (as the harness once computed them)."""
    rerun = {r.retry_of for r in records if r.retry_of is not None}
    finished = sorted((r for r in records if r.state != "running"), key=lambda r: r.number)
    in_a_row = 0
    for record in finished:
        in_a_row = in_a_row + 1 if record.state == "failed" else 0
    values = [r.value for r in records if r.state == "complete" and r.value is not None]
    failed = [r for r in finished if r.state == "failed"]
    return {
        "used": sum(r.state != "running" and r.number not in rerun for r in records),
        "running": sum(r.state == "running" for r in records),
        "failures_in_a_row": in_a_row,
        "last_failure": failed[-1].number if failed and in_a_row else None,
        "lowest": min(values, default=None),
        "highest": max(values, default=None),
    }


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("tail_only", [False, True], ids=["all-trials", "after-settled"])
def test_the_ledger_counts_as_the_definitions_do(seed: int, tail_only: bool) -> None:
    """A study evolving at random (trials that start, finish out of order, wait in a queue,
    are run again), looked at after every change: the ledger's records and counts equal
    those computed from scratch, and each finished trial is fresh in exactly one look. It is
    given every trial, or (as the Optuna engine gives it) only those after the settled ones."""
    rng = random.Random(seed)
    # One slot per trial: None while it is a queued configuration, then its record.
    slots: list[TrialRecord | None] = []
    ledger = Ledger[TrialRecord | None](
        lambda t: t, lambda t: t is not None and t.state != "running"
    )
    fresh_seen: list[int] = []
    for _ in range(120):
        roll = rng.random()
        open_ = [i for i, t in enumerate(slots) if t is None or t.state == "running"]
        if roll < 0.35 or not open_:
            slots.append(None if rng.random() < 0.15 else TrialRecord(len(slots), "running"))
        else:
            i = rng.choice(open_)
            if slots[i] is None:
                slots[i] = TrialRecord(i, "running")
            else:
                state = rng.choice(["complete", "complete", "pruned", "failed"])
                value = rng.uniform(0, 10) if state == "complete" else None
                failed = [t.number for t in slots if t is not None and t.state == "failed"]
                retry_of = rng.choice(failed) if failed and rng.random() < 0.2 else None
                slots[i] = TrialRecord(i, state, value=value, retry_of=retry_of)
        first = len(ledger.settled) if tail_only else 0
        records = ledger.look(slots[first:], first)
        listed = [t for t in slots if t is not None]
        assert list(records) == listed
        expected = reference(listed)
        found = {
            "used": records.used,
            "running": records.running,
            "failures_in_a_row": records.failures_in_a_row,
            "last_failure": records.last_failure.number
            if records.last_failure and records.failures_in_a_row
            else None,
            "lowest": records.lowest,
            "highest": records.highest,
        }
        assert found == expected
        assert all(r.state != "running" for r in records.fresh)
        fresh_seen += [r.number for r in records.fresh]
    finished = [t.number for t in slots if t is not None and t.state != "running"]
    assert sorted(fresh_seen) == sorted(finished)  # each once, none left out


def test_the_journal_finds_unfinished_trials_as_optuna_does(tmp_path: Path) -> None:
    """The journal storage skips a study's leading finished trials when asked for unfinished
    ones (each ask looks for queued trials); a study evolving at random (queued, asked,
    finished out of order) gets the same answers as Optuna's walk over every trial, and
    ``trials_from`` the same trials as Optuna's list."""
    import optuna
    from optuna.trial import TrialState

    from search.engines.optuna.storage import open_storage, trials_from

    storage = open_storage(None, tmp_path)
    study = optuna.create_study(storage=storage, study_name="s")
    study_id = storage.get_study_id_from_name("s")
    rng = random.Random(0)
    running: list[optuna.Trial] = []
    for _ in range(150):
        roll = rng.random()
        if roll < 0.2:
            study.enqueue_trial({"x": rng.random()})
        elif roll < 0.6 or not running:
            running.append(study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}))
        else:
            trial = running.pop(rng.randrange(len(running)))
            state = rng.choice([TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL])
            study.tell(trial, trial.params["x"] if state == TrialState.COMPLETE else None, state)
        every = optuna.storages.JournalStorage.get_all_trials(storage, study_id, deepcopy=False)
        for states in [(TrialState.WAITING,), (TrialState.RUNNING,), (TrialState.RUNNING,
                       TrialState.WAITING), (TrialState.COMPLETE,)]:  # fmt: skip
            found = storage.get_all_trials(study_id, deepcopy=False, states=states)
            assert [t.number for t in found] == [t.number for t in every if t.state in states]
        first = rng.randrange(len(every) + 1)
        assert trials_from(storage, study_id, first) == every[first:]
    assert any(t.state == TrialState.WAITING for t in every)  # the queue was exercised


def test_the_journal_fsyncs_what_ends_a_trial_and_no_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A running trial's records (parameters, values per epoch, attributes) are appended
    without an fsync; the study's creation, a queued trial and each trial's end get one, and
    a fresh storage reads every record back."""
    import os

    import optuna
    from optuna.trial import TrialState

    from search.engines.optuna.storage import JOURNAL_FILE, open_storage

    synced: list[str] = []
    fsync = os.fsync

    def counting(fd: int) -> None:
        synced.append(os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", counting)
    storage = open_storage(None, tmp_path)
    study = optuna.create_study(storage=storage, study_name="s")
    study.enqueue_trial({"x": 0.5})
    ends = [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.COMPLETE]
    for number, state in enumerate(ends):
        trial = study.ask()
        x = trial.suggest_float("x", 0, 1)
        trial.suggest_int("n", 1, 3)
        for epoch in range(5):
            trial.report(x + epoch, epoch)
        trial.set_user_attr("epochs", 5)
        study.tell(trial, x if state == TrialState.COMPLETE else None, state)
        assert synced.count(JOURNAL_FILE) == 2 + number + 1  # study, queued trial, each end
    again = optuna.load_study(study_name="s", storage=open_storage(None, tmp_path))
    assert [t.state for t in again.trials] == ends
    assert [len(t.intermediate_values) for t in again.trials] == [5] * len(ends)
    assert again.trials[0].params["x"] == 0.5 and again.trials[3].user_attrs["epochs"] == 5


def test_a_record_torn_by_a_killed_worker_is_cut_before_the_survivors_append(
    tmp_path: Path,
) -> None:
    """A worker killed in the middle of a long write leaves part of a record at the
    journal's end; the workers still running append their next records behind whole ones,
    so every storage still reads the study."""
    import optuna

    from search.engines.optuna.storage import JOURNAL_FILE, open_storage

    survivor = optuna.create_study(storage=open_storage(None, tmp_path), study_name="s")
    survivor.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    journal = tmp_path / JOURNAL_FILE
    with open(journal, "ab") as file:  # what the killed worker wrote of its record
        file.write(b'{"op_code":5,"worker_id":"killed","trial_id":1,"param_na')
    survivor.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    assert journal.read_bytes().endswith(b"\n") and b"killed" not in journal.read_bytes()
    again = optuna.load_study(study_name="s", storage=open_storage(None, tmp_path))
    assert [t.state for t in again.trials] == [optuna.trial.TrialState.COMPLETE] * 4


def test_the_journal_lock_excludes_other_storages_and_dies_with_its_holder(
    tmp_path: Path,
) -> None:
    """Appends hold an flock on the journal: a second storage on it (here in a thread, as in
    another process) waits while one holds it, and so does an append while another process
    holds it; that process killed, the append goes on at once."""
    import signal
    import subprocess
    import sys
    import threading

    from search.engines.optuna.storage import JOURNAL_FILE, open_storage

    first = open_storage(None, tmp_path)._backend
    second = open_storage(None, tmp_path)._backend
    first._lock.acquire()
    got = threading.Event()

    def take() -> None:
        second._lock.acquire()
        got.set()
        second._lock.release()

    waiter = threading.Thread(target=take)
    waiter.start()
    assert not got.wait(0.5), "a second storage took the lock while the first held it"
    first._lock.release()
    assert got.wait(5)
    waiter.join()

    # A holder killed with the lock held: the next append does not wait for it.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time; f = open(sys.argv[1]); fcntl.flock(f, fcntl.LOCK_EX); "
            "print('held', flush=True); time.sleep(600)",
            str(tmp_path / JOURNAL_FILE),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    record = {"op_code": 0, "worker_id": "w", "study_name": "s", "directions": [1]}
    appended = threading.Event()
    writer = threading.Thread(target=lambda: (first.append_logs([record]), appended.set()))
    writer.start()
    assert not appended.wait(0.5), "an append went on while another process held the lock"
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert appended.wait(5)
    writer.join()
    assert (tmp_path / JOURNAL_FILE).read_text().count('"study_name":"s"') == 1
