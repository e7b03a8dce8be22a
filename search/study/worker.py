"""One worker process of a study (``python -m search.study.worker``): its study on stdin.

Started by :mod:`search.study.workers` before the parent imports Keras, so both import it
at once; it then waits for its study, runs trials until the shared budget is used, and ends.
On a Dask cluster (``--cluster``) a task of :mod:`search.study.cluster` starts the same
process on a cluster's worker (:mod:`search.study.launch`).
"""

from __future__ import annotations

import json
import os
import sys

from search.errors import SearchError, SearchStoppedError
from search.space_lookup import space_class
from search.study.config import from_json
from search.study.launch import watch_parent
from search.study.run import work
from search.tasks import load_task


def main() -> int:
    watch_parent()  # on a Dask worker: end with it
    text = sys.stdin.read()
    if not text:
        return 0  # prestarted, and the parent ended before it had a study to give
    payload = json.loads(text)
    os.environ.update(payload["env"])
    config = from_json(payload["config"])
    try:
        task = load_task(config.task, **config.task_options)
        work(config, task, space_class(config.space)(task.spec))
    except (SearchError, SearchStoppedError) as error:
        print(error, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    code = main()
    # Leave without the interpreter's teardown (unloading TensorFlow takes seconds, which the
    # parent would wait for): every trial is already in the study's storage.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
