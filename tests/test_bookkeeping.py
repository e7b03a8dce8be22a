"""The harness's bookkeeping per trial does not grow with the study.

After every trial an engine lists every record of its study (for the budget, the stop rule,
the progress bar and the callbacks). Each finished trial must be converted from the engine's
own trial object once, not once per later trial: that made a study of 10,000 trials spend
most of its time converting records (``benchmarks/scale.py`` measures the time per trial).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import search
from search.engines import keras_tuner_engine, optuna_engine
from search.engines.base import TrialRecord, consecutive_failures

TRIALS = 8


@pytest.mark.parametrize("engine", ["optuna", "keras-tuner"])
def test_each_finished_trial_is_converted_once(
    engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module: Any = optuna_engine if engine == "optuna" else keras_tuner_engine
    converted: list[int] = []
    convert: Callable[..., TrialRecord] = module._record

    def counting(trial: Any, *args: Any) -> TrialRecord:
        record = convert(trial, *args)
        converted.append(record.number)
        return record

    monkeypatch.setattr(module, "_record", counting)
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


def test_consecutive_failures_counts_the_trailing_failures_in_trial_order() -> None:
    states = ["complete", "failed", "pruned", "failed", "running", "failed"]
    records = [TrialRecord(number, state) for number, state in enumerate(states)]
    assert consecutive_failures(records) == 2  # trials 3 and 5; 4 still runs
    assert consecutive_failures(records[::-1]) == 2  # the listing's order does not matter
    assert consecutive_failures(records[:2]) == 1
    assert consecutive_failures([TrialRecord(0, "failed"), TrialRecord(1, "failed")]) == 2
    assert consecutive_failures([]) == 0
