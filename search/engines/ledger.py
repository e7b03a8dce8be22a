"""A study's records, brought up to date after every trial at a cost that does not grow.

The search loop, the stop rule, the progress bar and the callbacks look at the whole study
after every trial. Converting every trial and counting over every record each time made a
study's bookkeeping grow with the square of its size (15 s of 98 for 1,500 trials). A
finished trial never changes again, so the ledger keeps the finished trials at the front of
the study ("settled") with their counts, and each look converts and counts only the rest:
the trials that run, wait, or are new since the last look.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Generic, TypeVar

from search.engines.base import TrialRecord

T = TypeVar("T")


class Records(list[TrialRecord]):
    """Every record of a study, in trial order, with the counts read after every trial."""

    used = 0  # finished trials that count toward the budget (not one that was run again)
    running = 0
    failures_in_a_row = 0  # failed trials at the end of the finished ones, in trial order
    last_failure: TrialRecord | None = None  # the finished trial of highest number that failed
    lowest: float | None = None  # the least and the greatest (first) value of a completed trial
    highest: float | None = None
    fresh: list[TrialRecord]  # finished since the ledger's previous look

    def best(self, direction: str) -> float | None:
        return self.lowest if direction == "min" else self.highest


class Ledger(Generic[T]):
    """Looks at an engine's trials, ``trials[i]`` being trial number ``i``.

    ``convert`` makes a trial's record (None for one that is not a trial yet, such as a
    queued configuration); ``finished`` says whether a trial can change no more.
    """

    def __init__(
        self, convert: Callable[[T], TrialRecord | None], finished: Callable[[T], bool]
    ) -> None:
        self.convert, self.finished = convert, finished
        self._reset()

    def _reset(self) -> None:
        self.settled: list[TrialRecord] = []
        self.open: list[T] = []  # the trials after the settled ones that have not finished
        self._counts = Records()
        self._numbers: set[int] = set()  # of the settled trials
        self._reruns: set[int] = set()  # trials that settled trials ran again
        self._seen: set[int] = set()  # finished trials reported before they settled

    def look(self, trials: Sequence[T], first: int = 0) -> Records:
        """The study's records now, and what finished since the previous look.

        ``trials`` are the study's trials from number ``first`` on: all of them (``first`` 0),
        or those after the settled ones (``first == len(self.settled)``), which an engine
        that can fetch trials by number reads alone, so that a look costs the same late in a
        long study as early."""
        if first == 0 and len(trials) < len(self.settled):  # not the study it was: start over
            self._reset()
        elif first not in (0, len(self.settled)):
            raise ValueError(f"trials from {first}, with {len(self.settled)} settled")
        fresh: list[TrialRecord] = []
        tail: list[TrialRecord] = []
        self.open = []
        for trial in trials[len(self.settled) - first :]:
            record = self.convert(trial)
            done = record is not None and self.finished(trial)
            if done and not tail and not self.open:
                self._settle(record, fresh)  # type: ignore[arg-type]
                continue
            if not done:
                self.open.append(trial)
            if record is not None:
                tail.append(record)
        records = Records(self.settled + tail)
        _copy_counts(self._counts, records)
        reruns = set(self._reruns)
        for record in tail:
            if record.retry_of is not None:
                reruns.add(record.retry_of)
            _count(records, record)
            if record.state != "running" and record.number not in self._seen:
                self._seen.add(record.number)
                fresh.append(record)
        finished = {r.number for r in tail if r.state != "running"}
        records.used -= sum(n in self._numbers or n in finished for n in reruns)
        records.fresh = fresh
        return records

    def _settle(self, record: TrialRecord, fresh: list[TrialRecord]) -> None:
        self.settled.append(record)
        self._numbers.add(record.number)
        if record.retry_of is not None:
            self._reruns.add(record.retry_of)
        _count(self._counts, record)
        if record.number in self._seen:
            self._seen.discard(record.number)
        else:
            fresh.append(record)


def _count(counts: Records, record: TrialRecord) -> None:
    """Add one record to the counts (records arrive in trial order)."""
    if record.state == "running":
        counts.running += 1
        return
    counts.used += 1
    if record.state == "failed":
        counts.failures_in_a_row += 1
        counts.last_failure = record
    else:
        counts.failures_in_a_row = 0
    if record.state == "complete" and record.value is not None:
        value = float(record.value)
        counts.lowest = value if counts.lowest is None else min(counts.lowest, value)
        counts.highest = value if counts.highest is None else max(counts.highest, value)


def _copy_counts(source: Records, target: Records) -> None:
    for name in ("used", "running", "failures_in_a_row", "last_failure", "lowest", "highest"):
        setattr(target, name, getattr(source, name))


def counted(records: Iterable[TrialRecord]) -> Records:
    """``records`` with their counts: as they are if a ledger counted them, else counted
    now (records listed in any order)."""
    if isinstance(records, Records):
        return records
    listed = sorted(records, key=lambda r: r.number)
    return Ledger[TrialRecord](lambda r: r, lambda r: r.state != "running").look(listed)


def budget_used(records: Iterable[TrialRecord]) -> int:
    """Finished trials that count toward ``--trials``: a trial that was run again does not."""
    return counted(records).used


def consecutive_failures(records: Iterable[TrialRecord]) -> int:
    """Failed trials at the end of the finished trials, in trial order."""
    return counted(records).failures_in_a_row


def too_many_failures(records: Iterable[TrialRecord], limit: int) -> str | None:
    """The reason to stop, once ``limit`` trials in a row have failed."""
    found = counted(records)
    if limit and found.failures_in_a_row >= limit and found.last_failure is not None:
        reason = found.last_failure.error or "no reason recorded"
        return (
            f"stopped after {limit} consecutive failed trials (last: {reason}); "
            "check the space's ranges or raise --max-failures"
        )
    return None
