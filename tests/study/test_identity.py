"""A study's identity: a resume that would mix two searches is refused in one line naming what
changed; the options that only extend a study stay free; a finished study says so.

Every run is in process (the API, or ``search.cli.main``) on a tiny budget.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import call_cli, describe
from spaces_fixtures import WIDE, write_space

import search
from search.errors import SearchError

pytestmark = pytest.mark.slow

ENGINES = {"optuna": "tpe", "keras-tuner": "random"}
TINY = ["--epochs", "2", "--cv", "1", "--top-k", "0", "--no-tensorboard"]
OPTIONS: dict[str, Any] = {"epochs": 2, "cv": 1, "top_k": 0, "tensorboard": False}


def files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes: what a refused run must leave as it was."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def wide(low: int, high: int) -> type[search.Space]:
    """The ``Wide`` class as a notebook cell defines it, with ``units`` in [low, high]."""
    namespace: dict[str, Any] = {}
    exec(WIDE.replace("16, 128", f"{low}, {high}"), namespace)  # noqa: S102 - the test's space
    return namespace["Wide"]


@pytest.mark.parametrize("engine", list(ENGINES))
def test_free_options_extend_a_study_and_a_finished_one_says_so(
    tmp_path: Path, engine: str
) -> None:
    out = tmp_path / "out"
    args = ["boston", "--space", "linear", "--engine", engine, "--out", out, "--epochs", "2"]
    args += ["--cv", "1", "--top-k", "0"]
    first = call_cli([*args, "--trials", "2", "--no-tensorboard"])
    assert first.returncode == 0, describe(first)
    # More trials, TensorBoard on, a time budget: the same study, extended.
    more = call_cli([*args, "--trials", "3", "--time-budget", "600"])
    assert more.returncode == 0, describe(more)
    folder = out / "boston" / f"linear-{engine}-{ENGINES[engine]}"
    summary = json.loads((folder / "study.json").read_text())["summary"]
    assert summary["trials"] == 3 and summary["ended_by"] == "trials"
    again = call_cli([*args, "--trials", "3"])
    assert again.returncode == 0, describe(again)
    assert f"linear-{engine}-{ENGINES[engine]}: 3 of 3 trials already done; nothing to run" in (
        again.stderr
    )
    assert " 0%" not in again.stderr and "100%" in again.stderr, describe(again)
    assert json.loads((folder / "study.json").read_text())["summary"]["trials"] == 3


def test_a_class_redefined_in_a_notebook_is_refused(tmp_path: Path) -> None:
    task = search.load_task("boston")
    first = search.Study(task, wide(16, 128), out=tmp_path, **OPTIONS)
    first.run(trials=1, progress=False)
    before = files(first.folder)
    changed = search.Study(task, wide(208, 400), out=tmp_path, **OPTIONS)
    with pytest.raises(SearchError) as refused:
        changed.run(trials=2, progress=False)
    assert str(refused.value) == (
        "study boston/wide-optuna-tpe was run with another space 'wide': 'units' was "
        "Int 16..128 step 16; this run declares Int 208..400 step 16: pass --fresh to start "
        "over or --study NAME for a new study"
    )
    assert files(first.folder) == before
    # The class as it was resumes the study; fresh starts the other one over.
    again = search.Study(task, wide(16, 128), out=tmp_path, **OPTIONS).run(trials=2, progress=False)
    assert len(again.records) == 2
    over = changed.run(trials=1, progress=False, fresh=True)
    assert [r.params["units"] >= 208 for r in over.records] == [True]


def test_a_study_written_before_identities_resumes_then_is_checked(tmp_path: Path) -> None:
    space = write_space(tmp_path / "wide.py", WIDE)
    out = tmp_path / "out"
    args = ["boston", "--space", space, "--out", out, *TINY]
    assert call_cli([*args, "--trials", "1"]).returncode == 0
    # What an older version wrote: the config without the space's domains or a fingerprint.
    path = out / "boston" / "wide-optuna-tpe" / "study.json"
    data = json.loads(path.read_text())
    for key in ("hyperparameters", "fingerprint"):
        del data["config"][key]
    path.write_text(json.dumps(data))
    write_space(space, WIDE.replace("16, 128", "208, 400"))
    resumed = call_cli([*args, "--trials", "2"])
    assert resumed.returncode == 0, describe(resumed)
    assert "was written before studies recorded their space" in resumed.stderr
    # Its space is recorded now: the old one is refused from here on.
    write_space(space, WIDE)
    refused = call_cli([*args, "--trials", "3"])
    assert refused.returncode == 2, describe(refused)
    assert "'units' was Int 208..400 step 16; this run declares Int 16..128" in refused.stderr
