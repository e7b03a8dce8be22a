"""The command line, a thin layer over the API: parse, call the API, print.

:mod:`search.cli.entry` is the console entry (errors become one line and an exit code),
:mod:`search.cli.parser` the parser, to which every command's module (:mod:`search.cli.run`,
``listing``, ``leaderboard``, ``predict``, ``tensorboard``, ``bench``, ``report``) adds its
subparser and the function that runs it; :mod:`search.cli.arguments` holds what their
parsers share.
"""

from __future__ import annotations

from search.cli.entry import console, main

__all__ = ["console", "main"]
