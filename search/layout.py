"""Where results live on disk, and the names that become folders.

```
OUT/leaderboard.csv                   one row per study
OUT/<task>/<study>/leaderboard.csv    one row per trial
OUT/<task>/<study>/study.json         the config, versions, scores and summary (no secrets)
OUT/<task>/<study>/tensorboard/       one run per trial and the HParams experiment
OUT/<task>/<study>/best.keras         the best model (best.txt: its summary)
```
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from search.errors import SearchError

STUDY_TABLE = "leaderboard.csv"
TRIAL_TABLE = "leaderboard.csv"
STUDY_JSON = "study.json"
TENSORBOARD = "tensorboard"
BEST_MODEL = "best.keras"
BEST_SUMMARY = "best.txt"
TRASH = ".trash"

# The trial table's own columns around the hyperparameters (leaderboard.csv); a Pareto
# search adds PARETO_COLUMN after the rank; a study with a selected ensemble adds
# ENSEMBLE_WEIGHT_COLUMN (each trial's weight in it) after the test metrics.
TRIAL_COLUMNS_HEAD = ("rank", "trial", "state", "value")
TRIAL_COLUMNS_TAIL = ("epochs", "best_epoch", "params", "seconds", "seed", "error")
PARETO_COLUMN = "pareto_front"
ENSEMBLE_WEIGHT_COLUMN = "ensemble_weight"
# A tabular task's trials: the real seconds beside "seconds", the recorded training time.
WALL_SECONDS_COLUMN = "wall_seconds"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def check_name(kind: str, name: str) -> str:
    """Study and task names become folders: letters, digits, ``.``, ``_``, ``-`` only."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise SearchError(
            f"invalid {kind} name {name!r}: use letters, digits, '.', '_' and '-' "
            "(no '/', no '..', at most 100 characters)"
        )
    return name


def study_folder(out: Path, task: str, study: str) -> Path:
    return Path(out) / check_name("task", task) / check_name("study", study)


def study_files(out: Path, task: str | None = None) -> list[Path]:
    """The ``study.json`` of every study under ``out`` (of ``task`` alone, if given), in
    order. A folder whose name starts with a dot holds no study (the trash, another
    process's writability probe), and one that vanishes while it is listed (that probe,
    removed at once) is passed over: bench jobs list the folder while others write it."""
    tasks = [out / task] if task else _folders(out)
    return sorted(
        study / STUDY_JSON
        for folder in tasks
        for study in _folders(folder)
        if (study / STUDY_JSON).is_file()
    )


def _folders(parent: Path) -> list[Path]:
    try:
        with os.scandir(parent) as entries:
            return [
                Path(entry.path)
                for entry in entries
                if not entry.name.startswith(".") and entry.is_dir()
            ]
    except (FileNotFoundError, NotADirectoryError):
        return []
