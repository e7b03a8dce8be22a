"""Results: the files made of studies' trial records: leaderboards, TensorBoard logs, a
study's report, the benchmark's plots.

Nothing here runs a trial or opens an engine's storage: the callers (:mod:`search.study`,
:mod:`search.bench`) hand the records in. Besides writing, :mod:`.tensorboard` reads a
study's logs back for ``search tensorboard`` (one merged view over several studies, and a
TensorFlow child process that traces ``best.keras`` where a study has no graph yet);
serving them is the CLI's (:mod:`search.cli.tensorboard_server`).
"""
