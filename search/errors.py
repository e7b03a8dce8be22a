"""The one exception type a user's mistake becomes."""

from __future__ import annotations


class SearchError(Exception):
    """A user's mistake: the message names the problem and the valid choices.

    Library code raises it; only the CLI prints it (one line, exit code 2).
    """
