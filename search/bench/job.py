"""One study of a benchmark as its own process (``python -m search.bench.job``): on a Dask
cluster (``bench --cluster``), a task of :mod:`search.study.cluster` starts it on a cluster's
worker with its :class:`~search.bench.execute.Job` on stdin, as a ``--jobs`` process would
run it; it prints ``[why it stopped, trials, seconds]`` as JSON on its last line.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import sys

from search.study.launch import watch_parent


def main() -> int:
    watch_parent()  # on a Dask worker: end with it
    text = sys.stdin.read()
    if not text:
        return 0
    # Loaded after the stdin is read: the Dask worker set this process's environment.
    from search.bench.execute import run_job
    from search.errors import SearchBaseError, SearchError

    # The payload is the client's own pickle of a Job (execute's encode): trusted as the
    # client is.
    job = pickle.loads(base64.b64decode(text))  # noqa: S301
    try:
        reason, trials, seconds = run_job(job)
    except SearchError as error:
        print(error, file=sys.stderr)
        return 2
    except SearchBaseError as error:
        print(error, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    print(json.dumps([reason, trials, seconds]))
    return 0


if __name__ == "__main__":
    code = main()
    # As a study's worker: every trial is in the study's storage, no teardown is waited for.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
