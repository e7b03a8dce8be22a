"""TensorBoard logs of a study: trial curves, one HParams experiment, the best model's graph.

Layout of ``results/<task>/<study>/tensorboard/``::

    trial_0000/                the trial's session: its values, how it ended, its metrics;
                               the first trial's also holds the HParams experiment
    trial_0000/train/          per-epoch scalars (epoch_loss, epoch_mse, ...), averaged over
    trial_0000/validation/     the folds and executions: the curve the result is read from
    best/                      the best model's graph (traced on TensorFlow: by the run on
                               that backend, else when the study is first served)

Every folder holds one events file, written whole and renamed into place, so a rerun
rewrites the sessions from the engine's storage without ever doubling a trial. The protos
are written with TensorBoard's own code, so nothing here needs TensorFlow except the graph.

The modules, each one idea:

- :mod:`~search.results.tensorboard.hparams`: the HParams plugin's protos (domains, the
  experiment, a session's start and end, merging experiments);
- :mod:`~search.results.tensorboard.events`: events files (records and their checksums,
  replacing a folder's events, reading them back);
- :mod:`~search.results.tensorboard.write`: a trial's curves, a study's sessions;
- :mod:`~search.results.tensorboard.graph`: the best model's graph;
- :mod:`~search.results.tensorboard.merged`: studies read back for ``search tensorboard``,
  one merged view over several.
"""

from __future__ import annotations

from search.results.tensorboard.graph import GRAPH_RUN, add_missing_graphs, write_graph
from search.results.tensorboard.merged import read_experiment, study_logdirs, view
from search.results.tensorboard.write import read_curve, run_name, write_study, write_trial

__all__ = [
    "GRAPH_RUN",
    "add_missing_graphs",
    "read_curve",
    "read_experiment",
    "run_name",
    "study_logdirs",
    "view",
    "write_graph",
    "write_study",
    "write_trial",
]
