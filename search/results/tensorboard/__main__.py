"""``python -m search.results.tensorboard LOGDIR...``: the TensorFlow child process of
:func:`search.results.tensorboard.graph.add_missing_graphs`, which traces each study's
``best.keras`` into its ``best`` run."""

from __future__ import annotations

import sys

from search.results.tensorboard.graph import trace_saved

if __name__ == "__main__":
    trace_saved(sys.argv[1:])
