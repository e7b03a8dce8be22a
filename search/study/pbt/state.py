"""The population's state between intervals (``pbt/state.npz``), so that a killed
population-based training continues from its last interval instead of starting over.

Written atomically after each interval's exploits: every member's weights, optimizer slots
and steps, its generator's state, its curves, best epoch, configuration and schedule, and
the population's own generator, the rows of ``pbt.csv`` and the epoch reached. A study run
again after a kill asks Optuna for its interrupted trials again (they continue the first
attempts: ``Asked.checkpoint``); when they are the members the state holds, the state is
restored and training goes on from its epoch, as the uninterrupted run would have.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from optuna.distributions import distribution_to_json, json_to_distribution

from search.files import atomic_path

STATE = "state.npz"


@dataclass
class Saved:
    """One member as the state holds it."""

    name: int
    seed: int
    params: dict[str, Any]
    domains: dict[str, Any]
    curves: list[dict[str, list[float]]]
    best: tuple[float, int, np.ndarray] | None
    source: int
    schedule: list[dict[str, Any]]
    flat: np.ndarray
    slots: np.ndarray
    step: np.ndarray
    generator: Mapping[str, Any]  # its Lockstep's bit generator's state


@dataclass
class State:
    """The population after an interval's exploits."""

    reached: int
    generator: Mapping[str, Any]
    moves: dict[str, list[Any]]  # explore.Moves.described()
    rows: list[dict[str, Any]]
    members: list[Saved]


def save(folder: Path, state: State) -> None:
    arrays: dict[str, np.ndarray] = {}
    members = []
    for k, member in enumerate(state.members):
        arrays |= {f"{k}.flat": member.flat, f"{k}.slots": member.slots, f"{k}.step": member.step}
        if member.best is not None:
            arrays[f"{k}.best"] = member.best[2]
        members.append(
            {
                "name": member.name,
                "seed": member.seed,
                "params": member.params,
                "domains": {n: distribution_to_json(d) for n, d in member.domains.items()},
                "curves": member.curves,
                "best": None if member.best is None else list(member.best[:2]),
                "source": member.source,
                "schedule": member.schedule,
                "generator": member.generator,
            }
        )
    meta = {
        "reached": state.reached,
        "generator": state.generator,
        "moves": state.moves,
        "rows": state.rows,
        "members": members,
    }
    arrays["meta"] = np.array(json.dumps(meta))
    path = folder / STATE
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary, temporary.open("wb") as file:
        np.savez(file, allow_pickle=False, **arrays)


def load(folder: Path, names: list[int]) -> State | None:
    """The state of a population of the members ``names`` (the trials they continue), or
    None: there is none, or it is another population's (a study whose --trials grew)."""
    path = folder / STATE
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as found:
        meta = json.loads(str(found["meta"]))
        if sorted(m["name"] for m in meta["members"]) != sorted(names):
            return None
        members = []
        for k, m in enumerate(meta["members"]):
            best = None if m["best"] is None else (*m["best"], found[f"{k}.best"])
            members.append(
                Saved(
                    m["name"],
                    m["seed"],
                    m["params"],
                    {n: json_to_distribution(d) for n, d in m["domains"].items()},
                    m["curves"],
                    best,
                    m["source"],
                    m["schedule"],
                    found[f"{k}.flat"],
                    found[f"{k}.slots"],
                    found[f"{k}.step"],
                    m["generator"],
                )
            )
    return State(meta["reached"], meta["generator"], meta["moves"], meta["rows"], members)


def remove(folder: Path) -> None:
    (folder / STATE).unlink(missing_ok=True)
