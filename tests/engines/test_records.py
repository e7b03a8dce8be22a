"""Trial records: the counts read off any listing of a study's records, the summary's state
counts, and the stored fields as both engines read them back."""

from __future__ import annotations

import random

import pytest

from search.engines.ledger import Ledger
from search.engines.records import (
    COMPLETE,
    FAILED,
    PRUNED,
    RUNNING,
    STORED_FIELDS,
    TrialRecord,
    counted,
    state_counts,
    stored_fields,
    too_many_failures,
)

COUNTS = ("used", "running", "failures_in_a_row", "last_failure", "lowest", "highest")


def a_study(rng: random.Random, size: int) -> list[TrialRecord]:
    records: list[TrialRecord] = []
    for number in range(size):
        state = rng.choice([COMPLETE, COMPLETE, PRUNED, FAILED, RUNNING])
        failed = [r.number for r in records if r.state == FAILED]
        records.append(
            TrialRecord(
                number,
                state,
                value=rng.uniform(0, 10) if state == COMPLETE else None,
                retry_of=rng.choice(failed) if failed and rng.random() < 0.3 else None,
            )
        )
    return records


@pytest.mark.parametrize("seed", range(10))
def test_counting_a_listing_agrees_with_the_engines_ledger(seed: int) -> None:
    """``counted`` (a listing in any order) and the ledger an engine keeps (its trials in
    order) give the same records, counts and fresh trials."""
    rng = random.Random(seed)
    records = a_study(rng, rng.randint(0, 30))
    ledger = Ledger[TrialRecord](lambda r: r, lambda r: r.state != RUNNING)
    looked = ledger.look(records)
    found = counted(rng.sample(records, len(records)))
    assert list(found) == records
    assert {name: getattr(found, name) for name in COUNTS} == {
        name: getattr(looked, name) for name in COUNTS
    }
    assert found.fresh == looked.fresh


def test_a_trial_run_again_counts_once() -> None:
    records = [
        TrialRecord(0, FAILED, error="interrupted: process ended"),
        TrialRecord(1, COMPLETE, value=2.0, retry_of=0),
        TrialRecord(2, RUNNING),
        TrialRecord(3, PRUNED),
    ]
    found = counted(records)
    assert (found.used, found.running, found.failures_in_a_row) == (2, 1, 0)
    assert found.best("min") == found.best("max") == 2.0
    assert [r.number for r in found.fresh] == [0, 1, 3]


def test_state_counts_are_the_summarys() -> None:
    states = [COMPLETE, PRUNED, FAILED, RUNNING, COMPLETE, FAILED]
    counts = state_counts(TrialRecord(n, state) for n, state in enumerate(states))
    assert counts == {"trials": 5, COMPLETE: 2, PRUNED: 1, FAILED: 2}
    assert list(counts) == ["trials", COMPLETE, PRUNED, FAILED]  # the study table's order


def test_stored_fields_read_back_as_the_record_holds_them() -> None:
    """keras-tuner keeps every number as a float metric, Optuna as it was given."""
    as_floats = {"epochs": 12.0, "best_epoch": 9.0, "n_params": 641.0, "seconds": 0.25}
    fields = stored_fields(as_floats | {"val_loss": 3.0})
    assert fields == {
        "epochs": 12,
        "best_epoch": 9,
        "n_params": 641,
        "seconds": 0.25,
        "seed": None,
        "wall_seconds": None,  # a trained trial's seconds are real: none beside them
    }
    assert all(type(fields[name]) is int for name in ("epochs", "best_epoch", "n_params"))
    assert list(fields) == list(STORED_FIELDS)
    assert TrialRecord(0, COMPLETE, **fields).n_params == 641


def test_the_stop_quotes_the_first_failure_of_the_run_of_failures() -> None:
    records = [
        TrialRecord(0, FAILED, error="ValueError: before a success"),
        TrialRecord(1, COMPLETE, value=1.0),
        TrialRecord(2, FAILED, error="TypeError: the first (at space.py:7)"),
        TrialRecord(3, RUNNING),
        TrialRecord(4, FAILED, error="TypeError: the last"),
    ]
    assert too_many_failures(records, 3) is None  # two in a row: trials 2 and 4
    reason = too_many_failures(records, 2)
    assert reason is not None
    assert reason.startswith(
        "stopped after 2 consecutive failed trials; the first: TypeError: the first (at space.py:7)"
    ), reason
    assert too_many_failures(records, 0) is None


def test_an_interrupted_trial_neither_adds_to_nor_ends_a_run_of_failures() -> None:
    """A trial interrupted (a kill, the environment) failed no configuration: it runs
    again from its checkpoint, so --max-failures does not count it, nor does it end the
    run of failures around it."""
    records = [
        TrialRecord(0, FAILED, error="RuntimeError: broken (at space.py:3)"),
        TrialRecord(1, FAILED, error="interrupted: process ended"),
        TrialRecord(2, FAILED, error="interrupted by the environment: disk full"),
        TrialRecord(3, FAILED, error="RuntimeError: broken (at space.py:3)"),
    ]
    found = counted(records)
    assert found.failures_in_a_row == 2 and found.used == 4
    assert found.first_failure is records[0]
    assert too_many_failures(records[1:3], 1) is None
