"""Where an Optuna study lives: a journal file in the study folder, or a shared ``--storage``.

A storage URL may hold a password. It is masked (``***``) in everything the harness writes or
prints: ``study.json``, the leaderboards, log lines and error messages.

Storage faults are normal events here. A journal file whose last record was cut short (a
power cut, a full disk) loses that record, which was never acknowledged, when it is next
opened. A lost connection to a database or Redis is retried with backoff for up to
:data:`RECONNECT_SECONDS`; only then does the run stop, with an
:class:`~search.errors.EnvironmentFaultError` naming the storage.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import functools
import json
import logging
import os
import re
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from search import _compat
from search.errors import EnvironmentFaultError, SearchError, connection_lost, one_line

JOURNAL_FILE = "optuna.journal"
SCHEMES = ("sqlite", "postgresql", "mysql", "redis")
# How long a lost storage connection is retried before the run stops (stated in the README);
# SEARCH_RECONNECT_SECONDS changes it.
RECONNECT_SECONDS = float(os.environ.get("SEARCH_RECONNECT_SECONDS", "60"))
_log = logging.getLogger("search")


def mask(url: str | None) -> str | None:
    """The URL with its password replaced by ``***``."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


def scrub(text: str, url: str | None) -> str:
    """``text`` with the URL's password masked wherever it appears."""
    password = urlsplit(url).password if url else None
    return text.replace(password, "***") if password else text


def check_url(url: str) -> str:
    """Refuse a malformed storage URL before anything runs; returns the URL."""
    scheme = url.split(":", 1)[0].split("+", 1)[0] if ":" in url else ""
    if scheme not in SCHEMES or not re.match(r"^[a-z0-9+]+://", url):
        raise SearchError(
            f"unsupported storage URL {mask(url)!r}; use sqlite:///FILE, "
            "postgresql://USER[:PASSWORD]@HOST[:PORT]/DB, mysql://..., or redis://HOST[:PORT]/N"
        )
    try:
        urlsplit(url).port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise SearchError(f"storage URL {mask(url)!r} has an invalid port") from None
    return url


def open_storage(url: str | None, folder: Path) -> Any:
    """The Optuna storage for a study: the journal file in ``folder`` unless ``url`` is given."""
    import optuna
    from optuna.storages.journal import JournalRedisBackend

    if url is None:
        path = (folder / JOURNAL_FILE).resolve()
        if _BUFFERS is not None:
            if path not in _BUFFERS:
                _BUFFERS[path] = _Buffered(_journal_file(path))
            return _journal(_BUFFERS[path])
        return _journal(_journal_file(path))
    check_url(url)

    def make() -> Any:
        if url.startswith("redis"):
            # One Redis command per record (a Lua script): no record is ever half-written,
            # so there is no torn tail to recover, only connections to retry.
            return _journal(JournalRedisBackend(url))
        # Heartbeats let any worker fail the trial of a worker that died (see the engine).
        # pool_pre_ping: a pooled connection that the server closed meanwhile (a restart,
        # pg_terminate_backend, an idle timeout) is replaced before it is used.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url,
                heartbeat_interval=5,
                grace_period=20,
                engine_kwargs={"pool_pre_ping": True},
            )

    # A connection lost while opening is tried again, briefly: a storage that refuses from
    # the start is more likely a wrong URL (bad input) than a restart. So is a schema that
    # another process was creating at the same moment (workers or hosts started together on
    # an empty database): Optuna creates its tables unguarded, and the loser of that race
    # gets "already exists"; once the winner is done, the tables are there.
    for delay in (0.5, 1.0, 2.0, None):
        try:
            return _reconnecting(make(), url)
        except Exception as error:  # noqa: BLE001 - drivers raise many kinds
            if delay is not None and (connection_lost(error) or _created_meanwhile(error)):
                time.sleep(delay)
                continue
            reason = scrub(" ".join(str(error).split()), url)[:300]
            raise SearchError(
                f"cannot open storage {mask(url)!r}: {type(error).__name__}: {reason}"
            ) from None
    raise AssertionError("unreachable")


# The journals opened under :func:`buffered`, by path; None outside it.
_BUFFERS: dict[Path, Any] | None = None


@contextlib.contextmanager
def buffered() -> Iterator[None]:
    """Journal files opened meanwhile are kept in memory and written once, as it ends.

    For a benchmark study of a tabular task, which one process runs alone and which ends in
    seconds: a trial of such a study is a lookup of 0.1 ms, and the journal's appends, 19
    records a trial for the 9 parameters of FC-Net, cost more than the search. Every open of
    one path in the meantime shares one buffer, so what reads the study back sees its
    trials. The records are written whatever ends it (Ctrl-C, an error); a process killed
    meanwhile loses them all, and running its command again runs the study again from what
    was written before.
    """
    global _BUFFERS  # noqa: PLW0603 - one benchmark study runs at a time in a process
    if _BUFFERS is not None:
        yield
        return
    _BUFFERS = {}
    try:
        yield
    finally:
        opened, _BUFFERS = _BUFFERS, None
        for journal in opened.values():
            journal.flush()


class _Buffered:
    """A journal file's records in memory: those it held as it was opened, and the appends,
    which :meth:`flush` writes in one append (one fsync)."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend
        self._logs: list[dict[str, Any]] = list(backend.read_logs(0))
        self._pending: list[dict[str, Any]] = []

    def read_logs(self, log_number_from: int) -> Iterator[dict[str, Any]]:
        yield from self._logs[log_number_from:]

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        # Optuna's journal storage replays what it appends, and keeps the records: a copy
        # of each is what reading them back would give.
        copied = [json.loads(json.dumps(log)) for log in logs]
        self._logs += copied
        self._pending += copied

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending:
            self._backend.append_logs(pending)


def _created_meanwhile(error: BaseException) -> bool:
    """Whether ``error`` is a table or type that another process created first (PostgreSQL's
    unique violation on its catalogue, MySQL's 1050, SQLite's "already exists")."""
    import sqlalchemy.exc

    return isinstance(error, sqlalchemy.exc.DatabaseError) and "already exists" in str(error)


def trials_from(storage: Any, study_id: int, number: int) -> list[Any]:
    """The study's trials (``FrozenTrial``) numbered ``number`` and on, fetched one by one.

    ``get_all_trials`` walks every trial of the study on every call (Optuna's journal replays
    into one list per study), so a look that needs only the last few trials would cost time in
    proportion to the study's size. Finished trials never change: a caller that keeps them
    asks only for the rest."""
    trials: list[Any] = []
    while True:
        try:
            trial_id = storage.get_trial_id_from_study_id_trial_number(
                study_id, number + len(trials)
            )
        except KeyError:
            return trials
        trials.append(storage.get_trial(trial_id))


def _journal(backend: Any) -> Any:
    """Optuna's journal storage, which answers a look for unfinished trials from the end of
    the study: each ``ask`` looks for queued (WAITING) trials, and walking every trial for it
    cost 3.7 ms a trial at trial 5,750 of a study (docs/scale.md)."""
    import optuna

    class Journal(optuna.storages.JournalStorage):
        def __init__(self, backend: Any) -> None:
            super().__init__(backend)
            self._finished_up_to: dict[int, int] = {}  # per study: its leading finished trials

        def get_all_trials(
            self, study_id: int, deepcopy: bool = True, states: Any = None
        ) -> list[Any]:
            if states is None or any(state.is_finished() for state in states):
                return super().get_all_trials(study_id, deepcopy, states)
            first = self._finished_up_to.get(study_id, 0)
            trials = trials_from(self, study_id, first)
            leading = next(
                (i for i, trial in enumerate(trials) if not trial.state.is_finished()),
                len(trials),
            )
            self._finished_up_to[study_id] = first + leading
            found = [trial for trial in trials[leading:] if trial.state in states]
            return copy.deepcopy(found) if deepcopy else found

    return Journal(backend)


def _journal_file(path: Path) -> Any:
    """Optuna's journal file backend, with an fsync only where a record must outlast a power cut.

    Optuna fsyncs every append: about 20 per trial (its parameters, attributes, state) and one
    per epoch where a pruner reads the curve, 1-8 ms each here, more than a small trial's
    training. The records of a running trial (see :func:`_transient`) are written without
    one: a killed process loses nothing (the kernel still holds the written bytes), and a
    power cut at worst loses a trial that was running, which it interrupts anyway. The record
    that ends a trial is fsynced, and that makes every record before it durable too.

    Every append holds an ``flock`` on the journal itself (:class:`FileLock`) rather than
    Optuna's symlink lock, and first cuts a torn tail (:func:`cut_torn_tail`): a worker
    killed in the middle of a long write leaves part of a record, which the survivors must
    not append behind.
    """
    from optuna.storages.journal import JournalFileBackend

    class JournalFile(JournalFileBackend):
        def __init__(self, file_path: str) -> None:
            self._file_lock = FileLock(file_path, holding=lambda: cut_torn_tail(path))
            self._path = file_path
            # Optuna's lock interface, duck-typed: its base class is not public.
            super().__init__(file_path, lock_obj=self._file_lock)  # type: ignore[arg-type]
            # Under the journal's own lock: every append holds it, so a tail without its
            # newline seen here is torn, not another worker's append in progress.
            self._file_lock.acquire()
            try:
                repair_tail(path)
            finally:
                self._file_lock.release()

        def read_logs(self, log_number_from: int) -> Any:
            try:
                yield from super().read_logs(log_number_from)
            except ValueError as error:  # JSONDecodeError too: a record damaged mid-file
                raise EnvironmentFaultError(
                    f"the Optuna journal {path} is damaged ({error}); restore it from a "
                    "backup, or start the study over with --fresh (the old one is moved aside)"
                ) from None

        def append_logs(self, logs: list[dict[str, Any]]) -> None:
            try:
                self._append(logs)
            except OSError as error:
                if error.filename is not None:
                    raise
                # A full disk: the message names the journal (its torn tail is cut on the
                # next open).
                raise OSError(error.errno, error.strerror, str(path)) from error

        def _append(self, logs: list[dict[str, Any]]) -> None:
            if not all(_transient(log) for log in logs):
                super().append_logs(logs)
                return
            # The lines Optuna writes, under the same lock, minus the fsync.
            lines = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs)
            with open(self._path, "ab") as file:
                # The append's own file holds the lock (one open an append, not two), and lets
                # go of it as it closes.
                fcntl.flock(file, fcntl.LOCK_EX)
                cut_torn_tail(path)
                file.write(lines.encode("utf-8"))

    return JournalFile(str(path))


class FileLock:
    """An exclusive ``flock`` on a file, with Optuna's lock interface (``acquire`` and
    ``release``): the lock the journal backend holds while it appends, and the workers' turn
    to ask (the engine's ``_claim``).

    Optuna's default, a symlink created and renamed away, took 130 us an append here (a
    symlink, a rename and an unlink): a trial of 12 parameters and 30 pruned reports spent
    5.3 ms in Optuna's bookkeeping on the journal with it, 2.1 ms with this. The kernel
    lets go of the lock when its holder dies, where a symlink left by a killed process
    blocked the others for its 30 s grace period. Each acquisition opens the file anew: an
    ``flock`` belongs to an open file, so two storages (or threads) on one journal exclude
    each other as two processes do.
    """

    def __init__(self, path: str, holding: Callable[[], None] | None = None) -> None:
        self._path = path
        self._holding = holding  # run each time the lock is taken, before it is used
        self._held: int | None = None

    def acquire(self) -> bool:
        held = os.open(self._path, os.O_RDONLY | os.O_CREAT, 0o644)
        fcntl.flock(held, fcntl.LOCK_EX)
        self._held = held
        if self._holding is not None:
            self._holding()
        return True

    def release(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            os.close(held)  # which releases the lock


def _transient(log: dict[str, Any]) -> bool:
    """Whether a journal record belongs to a trial that is still running: its creation or
    its return to RUNNING, its parameters, values per epoch and attributes."""
    from optuna.trial import TrialState

    kind = _compat.journal_operation()
    operation = log.get("op_code")
    if operation in (
        kind.SET_TRIAL_PARAM,
        kind.SET_TRIAL_INTERMEDIATE_VALUE,
        kind.SET_TRIAL_USER_ATTR,
        kind.SET_TRIAL_SYSTEM_ATTR,
    ):
        return True
    if operation in (kind.CREATE_TRIAL, kind.SET_TRIAL_STATE_VALUES):
        return log.get("state", TrialState.RUNNING) == TrialState.RUNNING
    return False


_RECORD_START = b'{"op_code"'  # every record Optuna writes to a journal begins so


def cut_torn_tail(path: Path) -> None:
    """:func:`repair_tail` where the journal does not end in a newline; call holding its lock.

    Every writer holds the lock while it writes, so a tail without its newline seen under the
    lock was left by a writer that died mid-write (the kernel stops a long write of a killed
    process between pages). Checking is one read of one byte, before every append.
    """
    try:
        with open(path, "rb") as file:
            if file.seek(0, os.SEEK_END) == 0:
                return
            file.seek(-1, os.SEEK_END)
            if file.read(1) == b"\n":
                return
    except FileNotFoundError:
        return
    repair_tail(path)


def repair_tail(path: Path) -> None:
    """Cut a journal's last record back to where it is whole; call holding its lock.

    A last line without its newline was never acknowledged: it is dropped. A last line that
    does not decode was torn and then written after (Optuna skips a broken last line and
    appends behind it): the whole record at its end is kept, the torn bytes dropped.
    """
    if not path.exists():
        return
    with open(path, "rb+") as file:
        size = file.seek(0, os.SEEK_END)
        if size == 0:
            return
        file.seek(max(0, size - (1 << 20)))  # a record is far shorter than a mebibyte
        tail = file.read()
        start = size - len(tail)
        torn = not tail.endswith(b"\n")
        body = tail if torn else tail[:-1]
        cut = body.rfind(b"\n") + 1  # where the last line begins, within the tail
        if cut == 0 and start > 0:
            return  # a last line longer than the tail read: not a record Optuna wrote
        last = body[cut:]
        if not torn and _decodes(last):
            return
        at = last.rfind(_RECORD_START)
        kept = last[at:] + b"\n" if not torn and at > 0 and _decodes(last[at:]) else b""
        file.seek(start + cut)
        file.write(kept)
        file.truncate()
        file.flush()
        os.fsync(file.fileno())
    what = "kept the whole record behind them" if kept else "dropped it"
    _log.warning(
        "the Optuna journal %s ended in a torn record (%d bytes): %s", path, len(last), what
    )


def _decodes(line: bytes) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def _reconnecting(storage: Any, url: str) -> Any:
    """``storage`` with each of its methods retried, with backoff, while its connection is
    lost, for up to :data:`RECONNECT_SECONDS`."""
    import optuna

    names = [
        name
        for base in (optuna.storages.BaseStorage, _compat.heartbeat_base())
        for name in vars(base)
        if not name.startswith("_") and callable(getattr(storage, name, None))
    ]
    # Optuna's cache in front of an RDB storage, and fail_stale_trials, call these directly.
    names += [name for name in _compat.STORAGE_PRIVATE_METHODS if hasattr(storage, name)]
    for name in names:
        setattr(storage, name, _retried(getattr(storage, name), storage, url))
    return storage


def _retried(method: Callable[..., Any], storage: Any, url: str) -> Callable[..., Any]:
    import optuna

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        delay = 0.5
        lost: BaseException | None = None
        while True:
            try:
                result = method(*args, **kwargs)
            except optuna.exceptions.UpdateFinishedTrialError:
                # A retried finish whose first try was committed before its answer was lost.
                if lost is None or method.__name__ != "set_trial_state_values":
                    raise
                trial_id, state = args[0], args[1]
                if storage.get_trial(trial_id).state != state:
                    raise
                result = True
            except Exception as error:
                cause = connection_lost(error)
                if cause is None:
                    raise
                lost = cause
                waited = time.monotonic() - started
                if waited >= RECONNECT_SECONDS:
                    reason = scrub(one_line(cause), url)
                    raise EnvironmentFaultError(
                        f"storage {mask(url)} unreachable for {waited:.0f} s: {reason}"
                    ) from error
                time.sleep(min(delay, RECONNECT_SECONDS - waited))
                delay = min(delay * 2, 8.0)
                continue
            if lost is not None:
                _log.warning(
                    "lost the connection to storage %s (%s); reconnected after %.1f s",
                    mask(url),
                    scrub(one_line(lost), url),
                    time.monotonic() - started,
                )
            return result

    return call
