"""A Dask cluster whose worker does not see the client's ``--out``: refused before anything
is written, or run where a storage server makes it possible.

On one machine every Dask worker sees the client's filesystem, so the module starts its
``dask worker`` inside a mount namespace of its own (``unshare --mount``) where a tmpfs
is mounted over the folder that the tests' ``--out`` are in: the worker sees an empty folder
at the same path, as a worker of another machine without the shared mount would. The
``dask scheduler`` and ``dask worker`` are real processes on 127.0.0.1; the commands run in
this process (the client), through ``search.cli.main``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
from conftest import call_cli, describe, empty_database, needs_postgres, postgres_admin
from dask_processes import cluster

pytest.importorskip("distributed", reason="the dask extra (pip install 'search[dask]')")

pytestmark = pytest.mark.slow
MARKER = "seen-by-the-client"


def hiding(folder: Path) -> list[str]:
    """The command that runs a command with an empty tmpfs mounted over ``folder``, in a
    mount namespace of its own (the client's view of ``folder`` is untouched)."""
    mount = 'mount -t tmpfs search-hidden "$0" && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", mount, str(folder)]


def skip_unless_hiding_works(folder: Path) -> None:
    """Skip the module where this user may not make a mount namespace and mount in it."""
    if shutil.which("unshare") is None:
        pytest.skip("hiding --out from a Dask worker needs util-linux's unshare")
    probe = subprocess.run(
        [*hiding(folder), "test", "!", "-e", str(folder / MARKER)],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        why = (probe.stderr.strip().splitlines() or [f"exit {probe.returncode}"])[-1]
        pytest.skip(f"cannot hide --out from a Dask worker with unshare --mount (root?): {why}")


@pytest.fixture(scope="module")
def hidden_cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, Path, Any]]:
    """A scheduler and one Dask worker that sees an empty ``folder``: the address, the
    folder (which holds the marker file, for this process) and a Dask client."""
    folder = tmp_path_factory.mktemp("hidden")
    (folder / MARKER).write_text("")
    skip_unless_hiding_works(folder)
    with cluster(1, wrap=hiding(folder)) as (address, client, _):
        seen = client.run(os.path.exists, str(folder / MARKER))
        assert seen and not any(seen.values()), "the Dask worker sees the hidden folder"
        yield address, folder, client


def contents(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*")}


def refused_in_one_line(args: list[Any], folder: Path) -> str:
    """Run the command; it must exit 2 with one line on stderr, and leave ``folder`` (the
    hidden one, where its --out is) as it was. The line."""
    before = contents(folder)
    proc = call_cli(args)
    assert proc.returncode == 2, describe(proc)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, describe(proc)
    assert contents(folder) == before, "the refused command wrote under --out"
    return lines[0]


TINY = ["--trials", "2", "--epochs", "3", "--cv", "1", "--ensemble-size", "0"]


def test_a_study_with_its_journal_file_out_of_the_workers_sight_is_refused(
    hidden_cluster: tuple[str, Path, Any],
) -> None:
    address, folder, _ = hidden_cluster
    out = folder / "journal"  # not there yet: the probe goes in the folder above it
    args = ["boston", "--space", "mlp", *TINY, "--out", out, "--cluster", address]
    line = refused_in_one_line(args, folder)
    assert f"the Dask cluster at {address} do not see --out {out}" in line
    assert "journal file" in line and "--storage postgresql://" in line
    assert not out.exists()


def test_a_sqlite_file_out_of_the_workers_sight_is_refused(
    hidden_cluster: tuple[str, Path, Any],
) -> None:
    address, folder, _ = hidden_cluster
    out = folder / "sqlite"
    args = ["boston", "--space", "mlp", *TINY, "--out", out, "--cluster", address]
    # The file in a folder that exists: a path that cannot be opened is refused first.
    line = refused_in_one_line([*args, "--storage", f"sqlite:///{folder}/study.db"], folder)
    assert "SQLite file" in line and "--storage postgresql://" in line


def public_tables(database: str) -> int:
    sql = "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
    return int(postgres_admin(sql, database))


@needs_postgres
def test_postgresql_storage_runs_out_of_the_workers_sight_without_tensorboard(
    hidden_cluster: tuple[str, Path, Any],
) -> None:
    """TensorBoard runs would be written where the worker cannot see: refused, the database
    untouched; with --no-tensorboard the study runs its exact trials on that worker."""
    address, folder, client = hidden_cluster
    out = folder / "postgres"
    name = "search_cluster_refusal"
    with empty_database(name) as url:
        args = ["boston", "--space", "mlp", *TINY, "--study", "hidden", "--storage", url]
        args += ["--out", out, "--cluster", address]
        line = refused_in_one_line(args, folder)
        assert f"do not see --out {out}" in line and "--no-tensorboard" in line
        assert public_tables(name) == 0, "the refused study wrote to its storage"

        proc = call_cli([*args, "--no-tensorboard"])
        assert proc.returncode == 0, describe(proc)
        trials = optuna.load_study(study_name="boston/hidden", storage=url).trials
        assert len(trials) == 2 and all(t.state.is_finished() for t in trials)
    study = out / "boston" / "hidden"
    assert (study / "study.json").exists() and not list(out.rglob("tensorboard*"))
    # The worker kept its own files of the study (its claim lock) in a folder of its own.
    assert all(client.run(os.path.isdir, str(study)).values())


def test_keras_tuner_out_of_the_workers_sight_runs_without_tensorboard(
    hidden_cluster: tuple[str, Path, Any],
) -> None:
    """keras-tuner's study is in its chief, in the client: only the TensorBoard runs need
    the workers to see --out."""
    address, folder, _ = hidden_cluster
    out = folder / "keras-tuner"
    args = ["boston", "--engine", "keras-tuner", "--space", "mlp", *TINY, "--study", "kt"]
    args += ["--out", out, "--cluster", address]
    line = refused_in_one_line(args, folder)
    assert f"do not see --out {out}" in line and "--no-tensorboard" in line
    assert "--storage" not in line  # which keras-tuner does not take

    proc = call_cli([*args, "--no-tensorboard"])
    assert proc.returncode == 0, describe(proc)
    table = pd.read_csv(out / "boston" / "kt" / "leaderboard.csv")
    assert len(table) == 2 and table["trial"].is_unique


SUITE = """
[settings]
epochs = 2
cv = 1

[[entry]]
task = "wine"
space = "logistic"
"""


@pytest.mark.parametrize("kind", ["task", "suite"])
def test_a_benchmark_out_of_the_workers_sight_is_refused(
    hidden_cluster: tuple[str, Path, Any], tmp_path: Path, kind: str
) -> None:
    """--out is the hidden folder itself: the probe goes in it, and is gone after."""
    address, folder, _ = hidden_cluster
    if kind == "suite":
        (tmp_path / "tiny.toml").write_text(SUITE)
        args = ["bench", "--suite", tmp_path / "tiny.toml"]
    else:
        args = ["bench", "boston", "--space", "linear", "--epochs", "2", "--cv", "1"]
    args += ["--contenders", "optuna:random", "--seeds", "1", "--trials", "2"]
    line = refused_in_one_line([*args, "--out", folder, "--cluster", address], folder)
    assert f"the Dask cluster at {address} do not see --out {folder}" in line
    assert "each study of the benchmark" in line
