"""The Celery app: the one place that holds Celery settings. `celery -A hpoqueue worker -Q gpu0` uses it."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import threading
from collections.abc import Callable
from functools import cache
from typing import Any
from urllib.parse import parse_qs, urlsplit

from celery import Celery, bootsteps, signals

from hpoqueue import settings

DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
#: seconds between two of Celery's worker-heartbeat events (Flower's "online"; hpoqueue itself watches the
#: attempts' heartbeats and the capacity announcements): Celery's 2 s was half of an idle worker's CPU
CELERY_HEARTBEAT = 10.0
BRPOP_TIMEOUT = 5.0  #: seconds an idle worker's BRPOP waits before Redis answers "nothing" and it asks again
#: this process's name on its Redis connections, so that a worker stopping finds its own pending BRPOP
CLIENT_NAME = f"hpoqueue:{socket.gethostname()}:{os.getpid()}"


class WakeLoop(bootsteps.StartStopStep):
    """Wakes the worker's event loop the moment a pool thread ends a task or a signal arrives, so that an
    idle worker sleeps on its BRPOP instead of waking ten times a second. A worker whose threads are all
    busy stops asking Redis for messages; without a wake-up it would look again only when its next timer is
    due (up to seconds later), leaving its GPU idle meanwhile. A SIGTERM sets Celery's shutdown flag, which
    the loop reads only when its poll returns: Python's signal wake-up fd ends that poll at once."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def start(self, parent: Any) -> None:
        if parent.hub is None:
            return
        reader, writer = _wake_pipe()
        parent.hub.add_reader(reader, _drain, reader)  # again after each reconnection: a reset hub forgets it
        pool = parent.pool
        if pool is not None and not getattr(pool, "_hpoqueue_wakes", False):
            pool.on_apply = _waking(pool.on_apply, writer)
            pool._hpoqueue_wakes = True

    def shutdown(self, parent: Any) -> None:
        """Have Redis answer this worker's pending BRPOP now, as if it had timed out: kombu reads that answer
        before it closes the connection (so no message it took is lost), which took up to BRPOP_TIMEOUT."""
        _unblock_brpop(parent.app.conf.broker_url)


class SlowHeart(bootsteps.Step):
    """Gives Celery's worker-heartbeat step CELERY_HEARTBEAT where the command line set no
    --heartbeat-interval, so a bare `celery -A hpoqueue worker` beats as seldom as `hpoqueue workers start`
    (Celery has no setting for it, only the option)."""

    requires = {"celery.worker.consumer.heart:Heart"}

    def __init__(self, parent: Any, heartbeat_interval: float | None = None, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        heart = parent.blueprint.steps.get("celery.worker.consumer.heart.Heart")
        if heart is not None and heartbeat_interval is None:  # made just before this step
            heart.heartbeat_interval = CELERY_HEARTBEAT


@cache
def _wake_pipe() -> tuple[int, int]:
    """The process's wake-up pipe (read end, write end), also Python's signal wake-up fd (main thread)."""
    reader, writer = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    if threading.current_thread() is threading.main_thread():
        signal.set_wakeup_fd(writer, warn_on_full_buffer=False)
    return reader, writer


def _drain(reader: int) -> None:
    try:
        while os.read(reader, 4096):
            pass
    except BlockingIOError:
        pass


def _unblock_brpop(url: str) -> None:
    from hpoqueue.broker.client import RedisError, redis_client

    try:
        redis_client(url).unblock_clients(CLIENT_NAME)
    except RedisError:  # e.g. CLIENT denied by the server's ACL: the BRPOP ends by itself
        pass


def _waking(on_apply: Callable[..., Any], writer: int) -> Callable[..., Any]:
    """The pool's on_apply, whose task-done callback (which frees the thread's slot) then wakes the loop."""

    def apply(target: Any, args: Any = None, kwargs: Any = None, callback: Callable[..., Any] | None = None,
              **options: Any) -> Any:
        def done(*result: Any) -> None:
            try:
                if callback is not None:
                    callback(*result)
            finally:
                try:
                    os.write(writer, b"\0")
                except BlockingIOError:  # the pipe is full: the loop has wake-ups pending already
                    pass

        return on_apply(target, args, kwargs, callback=done, **options)

    return apply


def broker_settings(url: str) -> dict[str, Any]:
    """Celery settings for `url`; a rediss:// URL without ssl_cert_reqs verifies certificates."""
    conf: dict[str, Any] = {"broker_url": url}
    parts = urlsplit(url)
    if parts.scheme == "rediss" and "ssl_cert_reqs" not in parse_qs(parts.query):
        tls: dict[str, Any] = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
        if ca := settings.broker_ca():
            tls["ssl_ca_certs"] = ca
        conf["broker_use_ssl"] = tls
    return conf


def make_app(broker_url: str | None = None) -> Celery:
    """Build the app with hpoqueue's settings (JSON only, early ack, no prefetch, events for Flower)."""
    celery_app = Celery("hpoqueue", include=["hpoqueue.tasks"])
    celery_app.conf.update(
        broker_settings(broker_url or settings.broker_url() or DEFAULT_BROKER),
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],  #: pickle off: a pickle message is code execution on the worker
        result_accept_content=["json"],
        task_ignore_result=True,  #: results travel on hpoqueue's event stream, not Celery's backend
        task_acks_late=False,  #: early ack; a worker that dies is detected by missing heartbeats
        #: a task only supervises a subprocess, so threads are enough and light; set here, every way of
        #: starting a worker (hpoqueue.worker.main, which every hpoqueue way of starting one runs, or a plain
        #: `celery -A hpoqueue worker`) gets it without repeating -P threads
        worker_pool="threads",
        worker_prefetch_multiplier=1,
        worker_disable_prefetch=True,  #: no message waits unacknowledged behind a long trial
        #: task events off: they cost each trial ~4 ms of CPU. Flower turns them on in every worker when it
        #: starts and every 5 s after (its --enable_events, on by default), so Flower still shows trials.
        worker_send_task_events=False,
        task_send_sent_event=False,
        task_track_started=True,
        task_default_queue="cpu",
        #: polling_interval is kombu's BRPOP timeout: how often an idle worker asks again; messages are
        #: picked up at once, and a SIGTERM ends the wait at once (WakeLoop)
        #: ack_emulation off: no unacked-message bookkeeping (two MULTI round trips per task), hence no
        #: visibility-timeout redelivery of long trials; with early ack it never protected anything
        broker_transport_options={"polling_interval": BRPOP_TIMEOUT, "client_name": CLIENT_NAME,
                                  "ack_emulation": False},
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  #: keep retrying while Redis restarts
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )
    celery_app.steps["consumer"].update({WakeLoop, SlowHeart})
    return celery_app


app = make_app()


@signals.celeryd_after_setup.connect
def _worker_setup(**_kwargs: Any) -> None:
    """A worker's files (trial logs, parameters) are private, and a broker without a password is named."""
    from hpoqueue.credentials import private_umask, warn_if_unprotected

    private_umask()
    warn_if_unprotected(app.conf.broker_url)
