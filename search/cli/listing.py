"""``search list``: the tasks, spaces, engines and algorithms, pruners and suites."""

from __future__ import annotations

import argparse
from typing import Any

from search.bench.suite import builtin_suites, load_suite
from search.engines.base import ENGINES, PRUNERS
from search.space_lookup import BUILTIN_SPACES, space_class
from search.tasks import describe_tasks

NAME = "list"
HELP = "list tasks, spaces, engines, algorithms and pruners"


def add_arguments(parser: Any) -> None:
    """``list`` takes no arguments."""


def command(args: argparse.Namespace, argv: list[str]) -> int:
    print("tasks:")
    tasks = describe_tasks()
    width = max(14, *(len(name) for name in tasks))
    for name, text in tasks.items():
        print(f"  {name:<{width}} {text}")
    print("spaces:")
    for name in BUILTIN_SPACES:
        space = space_class(name)
        fits = f"{space.table}-* tasks" if space.table else ", ".join(space.kinds)
        print(f"  {name:<14} {space.description} [{fits}]")
    print("engines and algorithms:")
    for engine, algorithms in ENGINES.items():
        for algorithm, text in algorithms.items():
            print(f"  {engine + ':' + algorithm:<22} {text}")
    print("pruners (optuna):")
    for name, text in PRUNERS.items():
        print(f"  {name:<20} {text}")
    print("suites (bench --suite NAME):")
    for name in builtin_suites():
        entries = load_suite(name).entries
        print(f"  {name:<14} {', '.join(entry.name for entry in entries)}")
    return 0
