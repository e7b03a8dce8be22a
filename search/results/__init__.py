"""Results: pure writers of trial records: leaderboards, TensorBoard logs, reports, plots.

Nothing here runs a trial or opens an engine; each module turns records into files.
"""
