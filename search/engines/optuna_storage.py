"""Where an Optuna study lives: a journal file in the study folder, or a shared ``--storage``.

A storage URL may hold a password. It is masked (``***``) in everything the harness writes or
prints: ``study.json``, the leaderboards, log lines and error messages.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from search.errors import SearchError

JOURNAL_FILE = "optuna.journal"
SCHEMES = ("sqlite", "postgresql", "mysql", "redis")


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
        return optuna.storages.JournalStorage(_journal_file(folder / JOURNAL_FILE))
    check_url(url)
    try:
        if url.startswith("redis"):
            return optuna.storages.JournalStorage(JournalRedisBackend(url))
        # Heartbeats let any worker fail the trial of a worker that died (see the engine).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, heartbeat_interval=5, grace_period=20)
    except Exception as error:  # noqa: BLE001 - drivers raise many kinds; all mean "cannot open"
        reason = scrub(" ".join(str(error).split()), url)[:300]
        raise SearchError(
            f"cannot open storage {mask(url)!r}: {type(error).__name__}: {reason}"
        ) from None


def _journal_file(path: Path) -> Any:
    """Optuna's journal file backend, without an fsync after each per-epoch value.

    Optuna fsyncs every append, and a pruned study reports every epoch: those fsyncs took
    longer than the training itself (about 8 ms each here, up to 100 per trial). Skipping
    them loses nothing when a process is killed (the kernel still holds the written bytes);
    only a power cut could lose the last few epochs' values, and the fsync at each trial's
    end makes everything before it durable.
    """
    from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

    class JournalFile(JournalFileBackend):
        def __init__(self, file_path: str) -> None:
            self._file_lock = JournalFileSymlinkLock(file_path)
            self._path = file_path
            super().__init__(file_path, lock_obj=self._file_lock)

        def append_logs(self, logs: list[dict[str, Any]]) -> None:
            if not all("intermediate_value" in log for log in logs):
                super().append_logs(logs)
                return
            # The lines Optuna writes, under the same lock, minus the fsync.
            lines = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs)
            self._file_lock.acquire()
            try:
                with open(self._path, "ab") as file:
                    file.write(lines.encode("utf-8"))
            finally:
                self._file_lock.release()

    return JournalFile(str(path))
