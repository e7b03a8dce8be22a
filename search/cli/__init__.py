"""The command line, a thin layer over the API: parse (:mod:`search.cli.parser`), call the
API and print (:mod:`search.cli.commands`)."""

from __future__ import annotations

from search.cli.commands import console, main

__all__ = ["console", "main"]
