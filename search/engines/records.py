"""Trial records: every engine's trials in one shape, and the counts read off them.

Each engine keeps its trials in its own storage and form (Optuna's ``FrozenTrial``,
keras-tuner's ``Trial``) and converts them into :class:`TrialRecord`: the state names, the
numbers stored beside a trial's value (:data:`STORED_FIELDS`) and the counts that the budget,
the stop rule and the summary read (:class:`Records`, :func:`state_counts`) are defined here
once, for both.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from search.trainers.base import TrialResult

# A record's state. An engine's own states map onto these; a finished trial is in one of the
# first three and never changes again.
COMPLETE = "complete"
PRUNED = "pruned"
FAILED = "failed"
RUNNING = "running"
FINISHED = (COMPLETE, PRUNED, FAILED)

# The error of a trial that did not end by itself (Ctrl-C, its process or worker gone)
# begins so: it may run again (--retries).
INTERRUPTED = "interrupted"
# A trial that the environment ended (disk full, storage lost): never its configuration's
# fault, so it runs again on resume whatever --retries says, and is not counted.
ENVIRONMENT = f"{INTERRUPTED} by the environment"

# The numbers an engine stores with a trial beside its value, metrics and parameters: the
# TrialRecord fields of these names (the first three read off the trained result).
STORED_FIELDS = ("epochs", "best_epoch", "n_params", "seconds", "seed", "wall_seconds")
_COUNTED = ("epochs", "best_epoch", "n_params", "seed")  # whole numbers


@dataclass
class TrialRecord:
    """One trial as its engine stored it."""

    number: int
    state: str  # COMPLETE, PRUNED, FAILED or RUNNING
    value: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    epochs: int | None = None
    best_epoch: int | None = None
    n_params: int | None = None
    seconds: float | None = None
    seed: int | None = None
    # The real seconds of a trial whose ``seconds`` were charged to a simulated clock (a
    # tabular benchmark's recorded training time); None for a trained trial.
    wall_seconds: float | None = None
    error: str = ""
    retry_of: int | None = None  # the interrupted trial this one runs again
    values: list[float] | None = None  # every objective's value, when there are several


def trained_fields(result: TrialResult) -> dict[str, int]:
    """The stored fields that a trained configuration's result gives (``epochs``,
    ``best_epoch``, ``n_params``); the engine adds ``seconds`` and ``seed``."""
    return {"epochs": result.epochs, "best_epoch": result.best_epoch, "n_params": result.params}


def stored_fields(found: Mapping[str, Any]) -> dict[str, Any]:
    """The :data:`STORED_FIELDS` in ``found`` (an engine's attributes or metrics of a trial)
    as :class:`TrialRecord`'s arguments: None where absent, whole numbers as ``int``
    (keras-tuner keeps every number of a trial as a float)."""
    fields = {name: found.get(name) for name in STORED_FIELDS}
    return {
        name: int(value) if value is not None and name in _COUNTED else value
        for name, value in fields.items()
    }


class Records(list[TrialRecord]):
    """Every record of a study, in trial order, with the counts read after every trial."""

    used = 0  # finished trials that count toward the budget (not one that was run again)
    running = 0
    failures_in_a_row = 0  # failed trials at the end of the finished ones, in trial order
    last_failure: TrialRecord | None = None  # the finished trial of highest number that failed
    first_failure: TrialRecord | None = None  # the first of the failures in a row, if any
    lowest: float | None = None  # the least and the greatest (first) value of a completed trial
    highest: float | None = None
    fresh: list[TrialRecord]  # finished since the previous look (all of them when counted)

    def best(self, direction: str) -> float | None:
        return self.lowest if direction == "min" else self.highest

    def tally(self, record: TrialRecord) -> None:
        """Add one record to the counts (records arrive in trial order); a record that runs
        again an earlier one is subtracted from ``used`` by the caller, who knows both."""
        if record.state == RUNNING:
            self.running += 1
            return
        self.used += 1
        if record.state == FAILED and record.error.startswith((INTERRUPTED, ENVIRONMENT)):
            # Interrupted, not failed by its configuration: it neither adds to a run of
            # failures (--max-failures) nor ends one.
            return
        if record.state == FAILED:
            if not self.failures_in_a_row:
                self.first_failure = record
            self.failures_in_a_row += 1
            self.last_failure = record
        else:
            self.failures_in_a_row = 0
            self.first_failure = None
        if record.state == COMPLETE and record.value is not None:
            value = float(record.value)
            self.lowest = value if self.lowest is None else min(self.lowest, value)
            self.highest = value if self.highest is None else max(self.highest, value)

    def counts_from(self, other: Records) -> None:
        """Start from the counts of ``other`` (the records before these)."""
        for name in (
            "used",
            "running",
            "failures_in_a_row",
            "last_failure",
            "first_failure",
            "lowest",
            "highest",
        ):
            setattr(self, name, getattr(other, name))


def counted(records: Iterable[TrialRecord]) -> Records:
    """``records`` with their counts: as they are if an engine's ledger counted them, else
    counted now (records listed in any order); every finished one is ``fresh``."""
    if isinstance(records, Records):
        return records
    found = Records(sorted(records, key=lambda r: r.number))
    for record in found:
        found.tally(record)
    finished = {r.number for r in found if r.state != RUNNING}
    found.used -= len({r.retry_of for r in found if r.retry_of is not None} & finished)
    found.fresh = [r for r in found if r.state != RUNNING]
    return found


def budget_used(records: Iterable[TrialRecord]) -> int:
    """Finished trials that count toward ``--trials``: a trial that was run again does not."""
    return counted(records).used


def too_many_failures(records: Iterable[TrialRecord], limit: int) -> str | None:
    """The reason to stop, once ``limit`` trials in a row have failed: it quotes the first
    of them, whose error says where a user's code raised (see ``errors.raised_at``)."""
    found = counted(records)
    if limit and found.failures_in_a_row >= limit and found.first_failure is not None:
        reason = found.first_failure.error or "no reason recorded"
        return (
            f"stopped after {limit} consecutive failed trials; the first: {reason}; check "
            "the space (--debug shows the traceback) or raise --max-failures"
        )
    return None


def state_counts(records: Iterable[TrialRecord]) -> dict[str, int]:
    """A study's counts as its summary holds them: ``trials`` (the finished ones), then how
    many are complete, pruned and failed."""
    states = [record.state for record in records]
    return {"trials": sum(state != RUNNING for state in states)} | {
        state: states.count(state) for state in FINISHED
    }


def rerun_attempt(attempt: int, moved: bool, environment: bool, retries: int) -> int | None:
    """The attempt number an interrupted trial runs again as, or None when it is given up.

    ``attempt`` is the one interrupted; ``moved``: its checkpoint holds later epochs than
    the attempt started from; ``environment``: the environment interrupted it. One that
    moved on, or that the environment interrupted, runs again without using up an attempt;
    one interrupted again at the same point, as a crash of its own would be, uses one, up
    to ``retries``. ``retries`` 0 gives up every interrupted trial but the environment's.
    """
    if environment:
        return attempt
    if not retries:
        return None
    if moved:
        return attempt
    return attempt + 1 if attempt <= retries else None
