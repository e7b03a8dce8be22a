"""keras-tuner's chief/worker mode: the study's oracle served over gRPC, and its clients.

Several workers share one keras-tuner study through a chief: :class:`Chief` serves the
oracle from the harness's process, and each worker process's tuner is a :class:`Client` of
it (``KERASTUNER_TUNER_ID``, ``KERASTUNER_ORACLE_IP``, ``KERASTUNER_ORACLE_PORT``). Workers
beat while they train, and the chief ends the trial of a worker whose process is gone or
whose beats stopped.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from keras_tuner.engine.trial import Trial, TrialStatus

from search import _compat
from search.engines.base import heartbeat
from search.engines.keras_tuner.oracle import resolve_interrupted
from search.engines.records import INTERRUPTED
from search.errors import SearchError

# The environment variables are keras-tuner's own.
TUNER_ID, ORACLE_IP, ORACLE_PORT = (
    "KERASTUNER_TUNER_ID",
    "KERASTUNER_ORACLE_IP",
    "KERASTUNER_ORACLE_PORT",
)
HEARTBEAT_SECONDS = 5.0  # a worker's beat while it trains
GRACE_SECONDS = 20.0  # the chief fails a trial whose worker has not beaten for this long
_CALL_SECONDS = 120.0  # a vanished chief ends its workers instead of blocking them for an hour
_IDLE_SECONDS = 1.0  # keras-tuner asks again at once after IDLE: wait instead of spinning
# gRPC metadata: the calling tuner, and the message of a failed trial (keras-tuner's Trial
# proto has no message field, so a diverging trial's reason would be lost on the way).
_TUNER_KEY = "search-tuner"
_MESSAGE_KEY = "search-message-bin"
_MESSAGE_CHARS = 2000


class Chief:
    """The study's oracle served over gRPC to worker processes, from the harness's process.

    keras-tuner's own chief (``search()`` under ``KERASTUNER_TUNER_ID=chief``) blocks, binds
    a port given in advance and never notices a worker that died. This one binds a free port
    (or the address given), runs in a background thread pool until :meth:`close`, and the
    harness ends the trial of a dead worker with :meth:`interrupt`; a worker on another host
    that stops beating is caught by :meth:`check_heartbeats`.
    """

    def __init__(
        self,
        tuner: Any,
        n_trials: int,
        retries: int,
        address: str,
        on_close: Callable[[], None],
        folder: Path | None = None,
    ) -> None:
        """Serve the oracle of ``tuner`` (the engine's, over the project folder) on
        ``address``; ``on_close`` is called once it no longer serves. ``folder``: the
        study's, where the trials' checkpoints lie."""
        self.oracle = tuner.oracle
        self.oracle.max_trials = n_trials
        self.oracle.serving = True
        self.retries = retries
        self.folder = folder
        resolve_interrupted(self.oracle, self.retries, folder)
        # The project folder gets the tuner's file too, so that records() reloads the oracle.
        tuner.save()
        self.beats: dict[str, float] = {}
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        _compat.add_oracle_servicer(_Servicer(self.oracle, self.beats), self.server)
        try:
            self.port = self.server.add_insecure_port(address)
        except RuntimeError:
            self.port = 0
        if not self.port:
            raise SearchError(f"cannot serve the keras-tuner oracle on {address} (port in use?)")
        self.server.start()
        self.on_close = on_close

    def worker_env(self, tuner_id: str, host: str = "127.0.0.1") -> dict[str, str]:
        """keras-tuner's environment variables for a worker of this chief."""
        return {TUNER_ID: tuner_id, ORACLE_IP: host, ORACLE_PORT: str(self.port)}

    def interrupt(self, tuner_id: str, reason: str) -> str | None:
        """Fail (or, with retries left, queue again) the trial ``tuner_id`` was running."""
        return self.oracle.interrupt(tuner_id, reason, self.retries, self.folder)

    def check_heartbeats(self, grace: float = GRACE_SECONDS) -> list[str]:
        """Interrupt the trials whose workers have not beaten for ``grace`` seconds."""
        now = time.monotonic()
        late = [t for t in list(self.oracle.ongoing_trials) if now - self.beats.get(t, now) > grace]
        return [
            trial
            for trial in (self.interrupt(t, "worker stopped (no heartbeat)") for t in late)
            if trial
        ]

    def stop_new_trials(self) -> None:
        """Start no more trials (the running ones finish): the search stopped itself."""
        self.oracle.stop_new_trials()

    def done(self) -> bool:
        return bool(self.oracle.done())

    def mark_interrupted(self) -> None:
        """Ctrl-C: the running trials stay ongoing, so that a resume runs them again."""
        self.oracle.keep_ongoing(f"{INTERRUPTED}: Ctrl-C")
        self.oracle.save()

    def close(self) -> None:
        self.server.stop(grace=None).wait()
        self.on_close()


def _quietly(name: str) -> Callable[[Any, Any, Any], Any]:
    """keras-tuner's servicer method ``name``, with what it prints swallowed (:func:`_quiet`)."""

    def call(self: Any, request: Any, context: Any) -> Any:
        with _quiet():
            return getattr(_compat.OracleServicer, name)(self, request, context)

    call.__name__ = name
    return call


class _Servicer(_compat.OracleServicer):
    """keras-tuner's servicer, noting each worker's beats and keeping failure messages."""

    def __init__(self, oracle: Any, beats: dict[str, float]) -> None:
        super().__init__(oracle)
        self.beats = beats

    def _beat(self, tuner_id: str | None) -> None:
        if tuner_id:
            self.beats[tuner_id] = time.monotonic()

    def CreateTrial(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC's name
        self._beat(request.tuner_id)
        with _quiet():
            return super().CreateTrial(request, context)

    def GetTrial(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC's name
        self._beat(_metadata(context).get(_TUNER_KEY))
        with _quiet():
            return super().GetTrial(request, context)

    UpdateTrial = _quietly("UpdateTrial")
    GetSpace = _quietly("GetSpace")
    GetBestTrials = _quietly("GetBestTrials")

    def EndTrial(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC's name
        metadata = _metadata(context)
        trial = Trial.from_proto(request.trial)
        message = metadata.get(_MESSAGE_KEY, b"")
        trial.message = message.decode(errors="replace") if isinstance(message, bytes) else None
        tuner_id = metadata.get(_TUNER_KEY)
        self._beat(tuner_id)
        # A worker that was given up on (no heartbeat) may still report: its trial was
        # already failed or handed to another worker, so the late report is dropped.
        self.oracle.end_owned(tuner_id, trial)
        return _compat.oracle_service().EndTrialResponse()


_QUIET = threading.Lock()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """keras-tuner 1.4.8 prints every condition it serialises (``Parent.to_proto``).

    stdout is process-wide: the lock keeps the server's threads from restoring each other's
    replacement, and the harness's own thread writes only to stderr while workers run.
    """
    with _QUIET, contextlib.redirect_stdout(io.StringIO()):
        yield


def _metadata(context: Any) -> dict[str, Any]:
    return dict(context.invocation_metadata() or ())


class Client(_compat.OracleClient):
    """keras-tuner's client of the chief, with our tuner id on its calls, the message of a
    failed trial, beats while a trial trains, and a deadline on every call."""

    def __init__(self, oracle: Any) -> None:
        super().__init__(oracle)
        self.metadata: tuple[tuple[str, Any], ...] = ((_TUNER_KEY, self.tuner_id),)

    def _call(self, method: str, request: Any, *extra: tuple[str, Any]) -> Any:
        return getattr(self.stub, method)(
            request, wait_for_ready=True, timeout=_CALL_SECONDS, metadata=self.metadata + extra
        )

    def create_trial(self, tuner_id: str) -> Any:
        request = _compat.oracle_service().CreateTrialRequest(tuner_id=tuner_id)
        trial = Trial.from_proto(self._call("CreateTrial", request).trial)
        if trial.status == TrialStatus.IDLE:
            time.sleep(_IDLE_SECONDS)
        return trial

    def get_trial(self, trial_id: str) -> Any:
        request = _compat.oracle_service().GetTrialRequest(trial_id=trial_id)
        return Trial.from_proto(self._call("GetTrial", request).trial)

    def end_trial(self, trial: Any) -> None:
        message = str(trial.message or "")[-_MESSAGE_CHARS:].encode()
        request = _compat.oracle_service().EndTrialRequest(trial=trial.to_proto())
        self._call("EndTrial", request, (_MESSAGE_KEY, message))

    @contextlib.contextmanager
    def beating(self, trial_id: str) -> Iterator[None]:
        """Beat to the chief every few seconds while the trial trains."""

        def beat() -> None:
            # A missed beat is not an error: the next one (or the grace period) decides.
            with contextlib.suppress(grpc.RpcError):
                self.get_trial(trial_id)

        with heartbeat(beat, HEARTBEAT_SECONDS):
            yield


@contextlib.contextmanager
def no_beats(trial_id: str) -> Iterator[None]:
    """What a tuner that is no worker of a chief does while a trial trains: nothing."""
    yield


def chief_address() -> tuple[str, str] | None:
    """(bind address, address workers dial) when this process is a chief by environment."""
    if os.environ.get(TUNER_ID) != "chief" or ORACLE_IP not in os.environ:
        return None
    host, port = os.environ[ORACLE_IP], os.environ.get(ORACLE_PORT, "")
    # Workers on this host dial the loopback when the chief listens on every interface.
    dial = "127.0.0.1" if host in ("0.0.0.0", "::", "[::]") else host
    return f"{host}:{port}", dial
