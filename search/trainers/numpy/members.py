"""A configuration's members (one per fold x execution run, or one per configuration of a
population, or per seed of an ensemble) trained in lockstep, epoch by epoch, by the
compiled loop: their variables stacked in one array, a row each."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future

import numpy as np

from search.trainers.numpy.loop import background
from search.trainers.numpy.loop import epoch as loop
from search.trainers.numpy.net import Net
from search.trainers.numpy.tables import Layout, Own, Tables
from search.trainers.numpy.threads import in_threads, pool, threads


class Lockstep:
    """Members trained in lockstep, epoch by epoch: the runs of a configuration or of a
    population's configurations, or an ensemble's seeds, a row of ``flat`` each."""

    def __init__(
        self,
        net: Net,
        initial: list[list[np.ndarray]],
        x: np.ndarray,
        y: np.ndarray,
        rows: list[tuple[np.ndarray, np.ndarray]],
        batch_size: int,
        seed: int | Sequence[int],
        nets: Sequence[Net] | None = None,
    ) -> None:
        """``initial`` holds each member's weights; ``nets`` each member's net (all of one
        :meth:`Net.key`; default: ``net`` for every member), for what it sets itself."""
        background.wait()  # the loop compiled beside the run's start, if it was
        self.net = net
        # Every member's variables lie in one row of ``flat`` (M, P), and ``params`` are
        # views of it: the compiled loop reads and updates a member's row as one vector.
        self.layout = Layout.of(initial[0])
        self._place(np.stack([self.layout.flatten(arrays) for arrays in initial]))
        self.slots = net.optimizer.slots(self.flat)  # (S, M, P)
        self.step = np.zeros(len(initial), dtype=np.float32)
        self.tables = Tables.of(net, self.layout, int(batch_size))
        self.rng = np.random.default_rng(seed)
        self.alive = list(range(len(initial)))
        self.x = np.ascontiguousarray(x, dtype=np.float32)
        y = np.asarray(y)
        # Targets as the loop reads them: class labels for a softmax, else (rows, outputs).
        self.labels = y.reshape(-1).astype(np.int64) if net.kind == "softmax" else _NO_LABELS
        self.targets = (
            _NO_TARGETS if net.kind == "softmax" else y.reshape(len(y), -1).astype(np.float32)
        )
        self.train_rows = [train for train, _ in rows]
        self.val_index, self.val_count = _padded([val for _, val in rows])
        self.own = Own.of(nets or [net] * len(initial))
        # Whether snapshot() is asked for (a checkpoint is written): then, while an epoch
        # trains ahead (see epochs()), the state of the last one is copied for it.
        self.snapshots = False
        self._snapshot: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def _place(self, flat: np.ndarray) -> None:
        """Make ``flat`` the members' variables, with their views."""
        self.flat = np.ascontiguousarray(flat)
        self.params = self.layout.views(self.flat)

    def keep(self, members: list[int]) -> None:
        """Go on with ``members`` only (the others stopped early)."""
        if members == self.alive:
            return
        positions = [self.alive.index(m) for m in members]
        self._place(self.flat[positions])
        self.slots = np.ascontiguousarray(self.slots[:, positions])
        self.step = self.step[positions]
        self.own = self.own.take(positions)
        self.val_index, self.val_count = self.val_index[positions], self.val_count[positions]
        self.alive = members

    def snapshot(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The living members' weights (M, P), optimizer slots (S, M, P) and steps (M,) as
        of the last epoch :meth:`epochs` yielded (the next may be training meanwhile)."""
        return self._snapshot or (self.flat, self.slots, self.step)

    def epoch(self) -> np.ndarray:
        """Train every living member one epoch; their logs in ``net.log_names`` order (M, k)."""
        return np.concatenate([self._next_epoch()(), self._validate(self.flat)], axis=1)

    def epochs(self, count: int) -> Iterator[np.ndarray]:
        """:meth:`epoch` ``count`` times, or until :meth:`keep` leaves no member.

        One member alone (a holdout trial) leaves a core idle: there the next epoch trains
        on it while this one is validated (on a copy of the weights it ended with) and its
        logs are read (the pruner's report, early stopping), and the draws of the one after
        are taken. The draws come from the generator in the same order, so the logs are
        :meth:`epoch`'s to the bit. An epoch trained ahead of a stop ends whole before this
        returns, and is lost: its member has ended.
        """
        if len(self.alive) != 1 or threads() < 2 or count < 2:
            for _ in range(count):
                if not self.alive:
                    return
                yield self.epoch()
            return
        ahead: Future[np.ndarray] | None = pool().submit(self._next_epoch())
        drawn: Callable[[], np.ndarray] | None = self._next_epoch()
        taken = 2  # the epochs drawn so far
        try:
            while ahead is not None:
                logs, ahead = ahead.result(), None
                weights = self.flat.copy()
                if self.snapshots:
                    self._snapshot = (weights, self.slots.copy(), self.step.copy())
                if drawn is not None:
                    ahead = pool().submit(drawn)
                    drawn = self._next_epoch() if taken < count else None
                    taken += 1
                yield np.concatenate([logs, self._validate(weights)], axis=1)
                if not self.alive:
                    return
        finally:
            self._snapshot = None
            if ahead is not None:
                ahead.result()  # nothing trains on after the caller has stopped

    def _next_epoch(self) -> Callable[[], np.ndarray]:
        """The next epoch of the living members, its draws taken now: a call that trains it
        and returns its training logs (M, k)."""
        trains = [self.train_rows[m] for m in self.alive]
        rows, counts = _padded([rows[self.rng.permutation(len(rows))] for rows in trains])
        columns, uniforms = self._dropout_draws(rows.shape[1])
        own, tables = self.own, self.tables
        flat, slots, step = self.flat, self.slots, self.step
        logs = np.empty((len(self.alive), 1 + len(tables.metric_codes)), dtype=np.float32)

        def train(members: np.ndarray) -> None:
            loop.train_epoch(
                members,
                flat,
                slots,
                step,
                own.lr,
                own.l1,
                own.l2,
                own.clipnorm,
                own.global_clipnorm,
                own.clipvalue,
                own.rates,
                own.scales,
                self.x,
                self.targets,
                self.labels,
                rows,
                counts,
                uniforms,
                tables.layers,
                columns,
                tables.variables,
                tables.flags,
                tables.hyper,
                tables.metric_codes,
                logs,
            )

        def run() -> np.ndarray:
            in_threads(train, len(logs), rows.size * flat.shape[1])
            return logs

        return run

    def _dropout_draws(self, length: int) -> tuple[np.ndarray, np.ndarray]:
        """This epoch's dropout uniforms, (M, rows, columns), for the dropouts that some
        member uses, and each dropout's first column (a unit is kept where its draw is at
        least the rate)."""
        used = self.own.rates.any(axis=0)
        widths = np.where(used, self.tables.dropout_widths, 0)
        columns = np.concatenate([[0], np.cumsum(widths)[:-1]]).astype(np.int64)
        shape = (len(self.alive), length if used.any() else 0, int(widths.sum()))
        return columns, self.rng.random(shape, dtype=np.float32)

    def _validate(self, flat: np.ndarray) -> np.ndarray:
        """The living members' validation logs with weights ``flat`` (M, P)."""
        names = 1 + len(self.tables.metric_codes)
        if not self.val_count.any():  # retraining on the whole split: nothing to validate on
            return np.full((len(self.alive), names), np.nan, dtype=np.float32)
        logs = np.empty((len(self.alive), names), dtype=np.float32)
        in_threads(
            lambda members: loop.evaluate(
                members,
                flat,
                self.own.l1,
                self.own.l2,
                self.x,
                self.targets,
                self.labels,
                self.val_index,
                self.val_count,
                self.tables.layers,
                self.tables.variables,
                self.tables.flags,
                self.tables.hyper,
                self.tables.metric_codes,
                logs,
            ),
            len(self.alive),
            self.val_index.size * flat.shape[1],
        )
        return logs


_NO_LABELS = np.zeros(0, dtype=np.int64)
_NO_TARGETS = np.zeros((0, 1), dtype=np.float32)


def _padded(groups: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of several groups padded to one length, and each group's length."""
    length = max(len(g) for g in groups)
    index = np.zeros((len(groups), length), dtype=np.int64)
    for k, group in enumerate(groups):
        index[k, : len(group)] = group
    return index, np.array([len(g) for g in groups], dtype=np.int64)
