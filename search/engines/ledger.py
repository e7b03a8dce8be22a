"""A study's records, brought up to date after every trial at a cost that does not grow.

The search loop, the stop rule, the progress bar and the callbacks look at the whole study
after every trial. Converting every trial and counting over every record each time made a
study's bookkeeping grow with the square of its size (15 s of 98 for 1,500 trials). A
finished trial never changes again, so the ledger keeps the finished trials at the front of
the study ("settled") with their counts, and each look converts and counts only the rest:
the trials that run, wait, or are new since the last look.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from search.engines.records import RUNNING, Records, TrialRecord

T = TypeVar("T")


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
        records.counts_from(self._counts)
        reruns = set(self._reruns)
        for record in tail:
            if record.retry_of is not None:
                reruns.add(record.retry_of)
            records.tally(record)
            if record.state != RUNNING and record.number not in self._seen:
                self._seen.add(record.number)
                fresh.append(record)
        finished = {r.number for r in tail if r.state != RUNNING}
        records.used -= sum(n in self._numbers or n in finished for n in reruns)
        records.fresh = fresh
        return records

    def _settle(self, record: TrialRecord, fresh: list[TrialRecord]) -> None:
        self.settled.append(record)
        self._numbers.add(record.number)
        if record.retry_of is not None:
            self._reruns.add(record.retry_of)
        self._counts.tally(record)
        if record.number in self._seen:
            self._seen.discard(record.number)
        else:
            fresh.append(record)
