"""Population-based training's explore step: a copied configuration's hyperparameters moved
a little (:func:`perturb`), and which members copy which (:func:`pairs`).

A numeric value is multiplied by 0.8 or 1.2 and kept inside its domain; a stepped number,
an integer or a choice moves to a neighbouring value instead; with probability
:data:`RESAMPLE` a value is drawn anew from its whole domain (Jaderberg et al., 2017, as
Ray Tune's ``PopulationBasedTraining`` does).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

FACTORS = (0.8, 1.2)
RESAMPLE = 0.25


def perturb(value: Any, domain: BaseDistribution, rng: np.random.Generator) -> Any:
    """``value`` explored within ``domain`` (an Optuna distribution)."""
    if rng.random() < RESAMPLE:
        return _resample(domain, rng)
    if isinstance(domain, CategoricalDistribution):
        return _neighbour(list(domain.choices), domain.choices.index(value), rng)
    if isinstance(domain, IntDistribution) or (
        isinstance(domain, FloatDistribution) and domain.step is not None
    ):
        step = domain.step or 1
        count = int(round((domain.high - domain.low) / step))
        grid = [domain.low + k * step for k in range(count + 1)]
        here = int(round((value - domain.low) / step))
        moved = _neighbour(grid, min(max(here, 0), count), rng)
        return int(moved) if isinstance(domain, IntDistribution) else float(moved)
    assert isinstance(domain, FloatDistribution), f"an unknown domain {domain!r}"
    factor = FACTORS[int(rng.integers(len(FACTORS)))]
    return float(min(max(value * factor, domain.low), domain.high))


def _neighbour(values: list[Any], here: int, rng: np.random.Generator) -> Any:
    """The value one place below or above ``here`` (either at random; the only one at an
    end); a domain of one value stays."""
    if len(values) == 1:
        return values[0]
    steps = [s for s in (-1, 1) if 0 <= here + s < len(values)]
    return values[here + steps[int(rng.integers(len(steps)))]]


def _resample(domain: BaseDistribution, rng: np.random.Generator) -> Any:
    """A value drawn from the whole domain: uniform, or log-uniform on a log scale."""
    if isinstance(domain, CategoricalDistribution):
        return domain.choices[int(rng.integers(len(domain.choices)))]
    assert isinstance(domain, (FloatDistribution, IntDistribution))
    if domain.step is not None and not domain.log:
        count = int(round((domain.high - domain.low) / domain.step))
        value = domain.low + int(rng.integers(count + 1)) * domain.step
        return int(value) if isinstance(domain, IntDistribution) else float(value)
    if domain.log:
        drawn = math.exp(rng.uniform(math.log(domain.low), math.log(domain.high)))
    else:
        drawn = rng.uniform(domain.low, domain.high)
    if isinstance(domain, IntDistribution):
        return int(min(max(round(drawn), domain.low), domain.high))
    return float(drawn)


def pairs(
    values: Sequence[float], quantile: float, rng: np.random.Generator
) -> list[tuple[int, int]]:
    """Which member copies which: each of the bottom ``quantile`` of ``values`` (signed so
    that lower is better; NaN, a diverged member, is worst) paired with a member of the top
    ``quantile`` drawn at random. At least one pair in a population of two or more."""
    count = len(values)
    size = min(max(1, int(count * quantile)), count // 2)
    if size == 0:
        return []
    keyed = [(math.inf if math.isnan(v) else v, k) for k, v in enumerate(values)]
    order = [k for _, k in sorted(keyed)]
    top, bottom = order[:size], order[count - size :]
    return [(loser, top[int(rng.integers(size))]) for loser in bottom]


@dataclass
class Moves:
    """What moves did to a copy's weights and optimizer state, learned as the population
    explores: each check costs a Keras build, and an exploit would otherwise build the
    model once per hyperparameter. Only a verdict's cost depends on it: a copy's
    configuration is checked once more as a whole before it trains."""

    structural: set[str] = field(default_factory=set)  # names never moved again
    kept: set[tuple[Any, ...]] = field(default_factory=set)  # moves that fit (key())
    broke: set[tuple[Any, ...]] = field(default_factory=set)  # moves that did not

    @staticmethod
    def key(name: str, old: Any, new: Any, domain: BaseDistribution) -> tuple[Any, ...]:
        """A move's key: the name alone for an unstepped number (all its values alike),
        else the name and both values (SGD to momentum adds a slot; momentum to nesterov
        does not)."""
        if isinstance(domain, FloatDistribution) and domain.step is None:
            return (name,)
        return (name, old, new)

    def described(self) -> dict[str, list[Any]]:
        """As JSON keeps it (the population's state)."""
        return {
            "structural": sorted(self.structural),
            "kept": sorted(map(list, self.kept), key=repr),
            "broke": sorted(map(list, self.broke), key=repr),
        }

    @classmethod
    def of(cls, found: dict[str, list[Any]]) -> Moves:
        return cls(
            set(found["structural"]),
            {tuple(key) for key in found["kept"]},
            {tuple(key) for key in found["broke"]},
        )
