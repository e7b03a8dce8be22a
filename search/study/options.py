"""The options of a study in one table: each one's type, default and least value.

:class:`search.Study`'s keyword arguments are the table's rows, in order (its signature
takes its defaults from here); the command line's ``run`` and ``bench`` take their types,
defaults and bounds from it, and a benchmark and a suite file the training options'
(:data:`TRAINING`) types and defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from search.engines.base import DEFAULT_ENGINE
from search.errors import SearchError
from search.trainers import DEFAULT_TRAINER


@dataclass(frozen=True)
class Option:
    """One option: its name, its type (as a suite file or the command line gives it), its
    default, and for an integer its least value. A float is a fraction in (0, 1)."""

    name: str
    type: type
    default: Any
    least: int | None = None

    @property
    def expected(self) -> str:
        """What a valid value is, in words (the command line's and the API's messages)."""
        if self.type is float:
            return "a number in (0, 1)"
        return "a positive integer" if self.least == 1 else f"an integer >= {self.least}"

    @property
    def bounded(self) -> bool:
        return self.least is not None or self.type is float

    def check(self, value: Any) -> None:
        """Refuse a value out of bounds; None passes where it is the default (no value)."""
        if value is None and self.default is None:
            return
        if self.type is float:
            if not 0 < value < 1:
                raise SearchError(f"{self.name} must lie in (0, 1), got {value!r}")
            return
        if isinstance(value, bool) or not isinstance(value, int) or value < (self.least or 0):
            raise SearchError(f"{self.name} must be {self.expected}, got {value!r}")


OPTIONS: dict[str, Option] = {
    option.name: option
    for option in (
        Option("engine", str, DEFAULT_ENGINE),
        Option("algorithm", str, None),  # the engine's default
        Option("pruner", str, None),  # the engine's default
        Option("objective", str, None),  # the task's default
        Option("name", str, None),  # SPACE-ENGINE-ALGORITHM
        Option("out", str, "results"),
        Option("seed", int, 0, least=0),
        Option("epochs", int, 100, least=1),
        Option("patience", int, 20, least=0),
        Option("cv", int, None, least=1),  # the task's default
        Option("executions", int, 1, least=1),
        Option("validation_split", float, 0.2),
        Option("top_k", int, 5, least=0),
        Option("ensemble", int, 5, least=1),
        Option("ensemble_size", int, 5, least=0),  # 0: no ensemble selection
        Option("tensorboard", bool, True),
        Option("retries", int, 1, least=0),
        Option("max_failures", int, 10, least=0),
        Option("storage", str, None),  # a journal file in the study's folder
        Option("workers", int, 1, least=1),
        Option("trainer", str, DEFAULT_TRAINER),
        Option("population", int, 1, least=1),
        Option("max_params", int, None, least=1),  # no limit
        # A running trial's checkpoint: at most every this many epochs (0: none) and
        # seconds (search.trainers.checkpoint).
        Option("checkpoint_epochs", int, 1, least=0),
        Option("checkpoint_seconds", int, 5, least=0),
        Option("cluster", str, None),  # worker processes of this machine
        # --algorithm pbt: epochs between exploits (None: a tenth of --epochs, at least 1)
        # and the fraction of the population that copies (and is copied).
        Option("pbt_interval", int, None, least=1),
        Option("pbt_quantile", float, 0.25),
    )
}
DEFAULTS: dict[str, Any] = {name: option.default for name, option in OPTIONS.items()}
# How each configuration trains and is scored: what a benchmark, a suite's [settings] and
# its entries may set (in this order in their messages).
TRAINING = ("epochs", "patience", "cv", "validation_split", "objective", "trainer", "pruner")
# Study.run's budget: trials in the study in total.
TRIALS = Option("trials", int, 20, least=1)
DEFAULT_TRIALS: int = TRIALS.default


def check_values(values: dict[str, Any]) -> None:
    """Refuse the first of ``values`` (options by name) out of its bounds.

    The integers come first, those whose default is a value before those whose default is
    None, then the fraction: a call with several bad values names the one it always named.
    """
    bounded = [OPTIONS[name] for name in values if OPTIONS[name].bounded]
    for option in sorted(bounded, key=lambda o: (o.type is float, o.default is None)):
        option.check(values[option.name])
