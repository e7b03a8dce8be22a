"""Opening a storage server's study from several processes at once (workers, or hosts started
together) on an empty database: Optuna creates its tables unguarded, so all but one of them
used to fail with "already exists" and the command ended before its first trial (exit 2)."""

from __future__ import annotations

import threading
from pathlib import Path

from conftest import empty_database, needs_postgres

from search.engines.optuna.storage import open_storage

OPENERS = 4


def open_together(url: str, folder: Path) -> list[BaseException]:
    """``OPENERS`` threads open the storage at the same moment; what they raised."""
    start = threading.Barrier(OPENERS)
    failures: list[BaseException] = []

    def opener() -> None:
        start.wait()
        try:
            open_storage(url, folder)
        except BaseException as error:  # noqa: BLE001 - any failure fails the test
            failures.append(error)

    threads = [threading.Thread(target=opener) for _ in range(OPENERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


@needs_postgres
def test_workers_opening_an_empty_database_together_all_get_the_storage(
    tmp_path: Path,
) -> None:
    for attempt in range(3):  # the race is lost most times here; three rounds make it sure
        with empty_database("search_open_race") as url:
            failures = open_together(url, tmp_path)
        assert not failures, f"round {attempt}: {failures[0]}"
