"""The space of a tabular benchmark: its grid written with the ``hp`` API.

Every hyperparameter is an ``hp.Choice`` over exactly the values the table was trained on,
so both engines and every algorithm propose only configurations the table holds. Its
``build(hp)`` returns the configuration (name -> value) for the lookup trainer
(:mod:`search.trainers.lookup`) instead of a model: nothing is built or trained.
"""

from __future__ import annotations

from typing import Any, ClassVar

from search.space import Space
from search.tasks.scoring import KINDS


class TabularSpace(Space):
    """A benchmark family's grid (``table``: ``fcnet``, ``hpobench``, ``nb201``)."""

    kinds = KINDS
    # Each hyperparameter's values in the table's order; the first is its default.
    grid: ClassVar[dict[str, tuple[Any, ...]]] = {}

    def build(self, hp: Any) -> Any:
        """The configuration ``hp`` chooses, as the table's keys name it."""
        return {name: hp.Choice(name, list(values)) for name, values in self.grid.items()}
