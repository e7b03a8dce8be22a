"""Shared helpers and fixtures: the CLI in a subprocess or in this process, tiny real studies,
result readers.

Everything here runs the real package: real Keras training, real keras-tuner and Optuna
storage. Budgets stay tiny (2-3 trials, 2 epochs) so that the suite stays fast.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
if importlib.util.find_spec("search") is None:  # a plain checkout, not an installed package
    sys.path.insert(0, str(ROOT))

# Imported before Keras anywhere in the test process: it quiets TensorFlow's C++ start-up
# lines and turns oneDNN's schedule-dependent float results off, as the CLI does.
import search  # noqa: E402

# Test modules import helpers with ``from conftest import ...``: under the importlib import
# mode (pyproject.toml) pytest registers this module under another name.
sys.modules.setdefault("conftest", sys.modules[__name__])

PACKAGE_PARENT = Path(search.__file__).resolve().parents[1]
STUDY_SEED = 3  # its boston/mlp trials have different depths with both engines

# The storage servers (.ci/run sets both URLs to this machine's servers).
POSTGRES = os.environ.get("SEARCH_POSTGRES_URL")
REDIS = os.environ.get("SEARCH_REDIS_URL")
needs_postgres = pytest.mark.skipif(not POSTGRES, reason="SEARCH_POSTGRES_URL is not set")
needs_redis = pytest.mark.skipif(not REDIS, reason="SEARCH_REDIS_URL is not set")


def postgres_admin(sql: str, database: str = "postgres") -> str:
    """Run ``sql`` on the PostgreSQL server as the test user; its scalar, if it returns rows."""
    import sqlalchemy

    assert POSTGRES
    engine = sqlalchemy.create_engine(
        POSTGRES.rsplit("/", 1)[0] + f"/{database}", isolation_level="AUTOCOMMIT"
    )
    try:
        with engine.connect() as connection:
            result = connection.execute(sqlalchemy.text(sql))
            return str(result.scalar()) if result.returns_rows else ""
    finally:
        engine.dispose()


@contextlib.contextmanager
def empty_database(name: str) -> Iterator[str]:
    """A new, empty PostgreSQL database of that name (dropped first if left over, and after);
    its URL."""
    assert POSTGRES
    postgres_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    postgres_admin(f"CREATE DATABASE {name}")
    try:
        yield POSTGRES.rsplit("/", 1)[0] + f"/{name}"
    finally:
        postgres_admin(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        postgres_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def cli_env() -> dict[str, str]:
    """os.environ (KERAS_BACKEND included) plus the package on PYTHONPATH for any cwd."""
    env = dict(os.environ)
    paths = [str(PACKAGE_PARENT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def run_cli(
    args: Sequence[str | Path], cwd: Path = ROOT, timeout: float = 600, **env: str
) -> subprocess.CompletedProcess[str]:
    """``python -m search ARGS`` in a subprocess, ``env`` added to its environment; stdout
    and stderr captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "search", *(str(arg) for arg in args)],
        cwd=cwd,
        env=cli_env() | env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def chromium() -> str:
    """Debian's chromium and Playwright's client, or a skip that says what is missing."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("the browser test needs Playwright: pip install 'search[test]'")
    found = shutil.which("chromium")
    if found is None:
        pytest.skip("the browser test needs Debian's chromium: apt-get install chromium")
    return found


def readme_blocks() -> list[str]:
    """The Python code blocks of the README's "Python API" section, in order."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    return [textwrap.dedent(b) for b in re.findall(r"```python\n(.*?)```", section, re.S)]


def run_main(args: Sequence[str | Path]) -> int:
    """``search.cli.main`` in this process (no import cost); returns its exit code."""
    from search.cli import main

    return main([str(arg) for arg in args])


def call_cli(args: Sequence[str | Path]) -> subprocess.CompletedProcess[str]:
    """``search.cli.main`` in this process, as :func:`run_cli` reports a real command: its
    exit code (a usage error's ``SystemExit`` included) and what it printed on stdout and
    stderr. No Python starts and imports Keras again; what only a real process shows (what
    its interpreter prints, warnings, signals) is left to the tests in ``tests/system/``."""
    from search.cli import main

    argv = [str(arg) for arg in args]
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = main(argv)
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
    return subprocess.CompletedProcess(argv, code, stdout.getvalue(), stderr.getvalue())


def start_cli(args: Sequence[str | Path], **env: str) -> subprocess.Popen[str]:
    """``python -m search ARGS`` as a real process, its output piped, in its own process
    group (so :func:`ended_at_exit` ends its workers too); ``env`` adds variables."""
    return subprocess.Popen(
        [sys.executable, "-m", "search", *map(str, args)],
        cwd=ROOT,
        env=cli_env() | env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


@contextlib.contextmanager
def ended_at_exit(process: subprocess.Popen[str]) -> Iterator[None]:
    """Kill ``process``'s group (it was started with ``start_new_session=True``) if the
    test fails while it runs, so that a study does not go on training beside the next
    tests."""
    try:
        yield
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def describe(proc: subprocess.CompletedProcess[str]) -> str:
    """A failed command's output, for assertion messages."""
    return f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Where the matrix (tox.ini) runs a test. The ``numpy`` env runs every test on Keras'
    numpy backend, the CLI's own choice; what most tests check (the search, its bookkeeping,
    storages, processes, results files) is the same on every backend, so once is enough.
    ``@pytest.mark.backend`` marks a test of what depends on the backend (saving, loading and
    tracing a model): the ``tensorflow`` and ``jax`` envs run those too (``-m backend``).
    ``@pytest.mark.backend("jax", why="...")`` runs on the named backends only (training
    with ``fit``, which the numpy backend cannot; the compiled trainer, which is JAX's);
    elsewhere it is skipped with that reason."""
    import keras

    for item in items:
        mark = item.get_closest_marker("backend")
        if mark is not None and mark.args and keras.backend.backend() not in mark.args:
            only = " and ".join(mark.args)
            reason = f"runs on the {only} backend only: {mark.kwargs['why']}"
            item.add_marker(pytest.mark.skip(reason=reason))


@dataclass(frozen=True)
class Study:
    """A finished study on disk: results root, task and study name."""

    out: Path
    task: str
    study: str

    @property
    def folder(self) -> Path:
        return self.out / self.task / self.study

    def trials(self) -> pd.DataFrame:
        return pd.read_csv(self.folder / "leaderboard.csv")

    def studies(self) -> pd.DataFrame:
        return pd.read_csv(self.out / "leaderboard.csv")


def tiny_run(out: Path, task: str, space: str, engine: str = "optuna", *extra: str) -> Study:
    """Run a tiny study in this process and return it (fails the test if it fails)."""
    algorithm = {"optuna": "tpe", "keras-tuner": "random"}[engine]
    args = [task, "--space", space, "--engine", engine, "--out", str(out), *extra]
    assert run_main(args) == 0
    return Study(out, task, f"{Path(space).stem}-{engine}-{algorithm}")


# One holdout split (not a task's default K-fold CV): one training per trial, and the
# TensorBoard validation curve of a trial is the curve its value is read from.
STUDY_ARGS = (
    "--trials",
    "3",
    "--epochs",
    "2",
    "--cv",
    "1",
    "--top-k",
    "2",
    "--ensemble",
    "2",
    "--seed",
    str(STUDY_SEED),
)


@pytest.fixture(scope="session")
def boston_study(tmp_path_factory: pytest.TempPathFactory) -> Study:
    """boston / mlp / optuna: 3 trials of 2 epochs on one holdout split, top 2 scored."""
    out = tmp_path_factory.mktemp("boston-optuna")
    return tiny_run(out, "boston", "mlp", "optuna", *STUDY_ARGS)


@pytest.fixture(scope="session")
def boston_kt_study(tmp_path_factory: pytest.TempPathFactory) -> Study:
    """The same study with keras-tuner's random search."""
    out = tmp_path_factory.mktemp("boston-keras-tuner")
    return tiny_run(out, "boston", "mlp", "keras-tuner", *STUDY_ARGS)


def read_curves(run: Path) -> dict[str, list[float]]:
    """Scalars of one TensorBoard run folder (e.g. ``trial_0000/validation``), by tag."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util.tensor_util import make_ndarray

    events = EventAccumulator(str(run), size_guidance={"tensors": 0})
    events.Reload()
    curves = {}
    for tag in events.Tags()["tensors"]:
        points = sorted(events.Tensors(tag), key=lambda event: event.step)
        curves[tag] = [float(make_ndarray(point.tensor_proto)) for point in points]
    return curves
