"""The Celery app: the one place that holds Celery settings. `celery -A hpoqueue worker -Q gpu0` uses it."""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import parse_qs, urlsplit

from celery import Celery, bootsteps, signals

from hpoqueue import settings

DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
FREE_SLOT_CHECK = 0.1  #: seconds between two wake-ups of a worker's event loop (see NoticeFreeSlots)


class NoticeFreeSlots(bootsteps.StartStopStep):
    """Wakes the worker's event loop every FREE_SLOT_CHECK seconds. A worker whose thread pool is full
    stops asking Redis for messages and, with nothing else due, sleeps up to a second before it looks
    again: a GPU queue's worker, which runs maxTrialNumberPerGpu trials, left its GPU idle that long
    between two trials."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def start(self, parent: Any) -> None:
        if parent.hub is not None:
            parent.hub.call_repeatedly(FREE_SLOT_CHECK, _nothing)


def _nothing() -> None:
    """A timer's callback: the wake-up itself is what counts."""


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
        #: polling_interval is kombu's BRPOP timeout: a worker notices SIGTERM when its BRPOP returns, so an
        #: idle worker stops within 0.1 s instead of 1 s, for ten cheap BRPOPs a second; messages are still
        #: picked up at once
        #: ack_emulation off: no unacked-message bookkeeping (two MULTI round trips per task), hence no
        #: visibility-timeout redelivery of long trials; with early ack it never protected anything
        broker_transport_options={"polling_interval": 0.1, "ack_emulation": False},
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  #: keep retrying while Redis restarts
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )
    celery_app.steps["consumer"].add(NoticeFreeSlots)
    return celery_app


app = make_app()


@signals.celeryd_after_setup.connect
def _worker_setup(**_kwargs: Any) -> None:
    """A worker's files (trial logs, parameters) are private, and a broker without a password is named."""
    from hpoqueue.credentials import private_umask, warn_if_unprotected

    private_umask()
    warn_if_unprotected(app.conf.broker_url)
