"""Studies: a task, a space and an engine, from the first trial to the scored leaderboard.

:class:`Study` is the public face (``search.Study``), whose options, types, defaults and
bounds are the table of :mod:`search.study.options`; :mod:`search.study.run` runs one,
:mod:`search.study.workers` shares one between processes, and :mod:`search.study.stored`
reopens a stored one.
"""

from __future__ import annotations

from search.study.api import Result, Study
from search.study.config import StudyConfig

__all__ = ["Result", "Study", "StudyConfig"]
