"""Keeping hpoqueue's secrets and files to their owner: broker and database credentials never reach a
trial's environment, a broker without a password is named as the risk it is, and what hpoqueue creates
is private (umask 077) unless $HPOQUEUE_UMASK says otherwise."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from hpoqueue import settings
from hpoqueue.broker.embedded import redact
from hpoqueue.settings import ENV_BROKER, ENV_STORAGE

log = logging.getLogger(__name__)

#: variables that carry credentials of the broker or the database, removed from a trial's environment
SECRET_VARIABLES = (ENV_BROKER, ENV_STORAGE, "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "BROKER_URL")


def trial_safe_environment(env: Mapping[str, str]) -> dict[str, str]:
    """`env` without the broker's and the database's credentials: SECRET_VARIABLES, and any variable whose
    value holds the broker's or the database's password. A trial is the user's code, but it need not be
    able to push tasks to every worker of the cluster."""
    passwords = {p for p in (_password(env.get(name, "")) for name in SECRET_VARIABLES) if p}
    return {k: v for k, v in env.items()
            if k not in SECRET_VARIABLES and not any(p in v for p in passwords)}


def _password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def unprotected_broker_warning(url: str) -> str | None:
    """A warning when the broker at `url` takes commands without a password (anyone who reaches it can
    have the workers run any command), else None. A unix socket is guarded by its file's permissions."""
    parts = urlsplit(url)
    if parts.scheme == "unix" or parts.password:
        return None
    return (f"the broker {redact(url)} has no password: anyone who can reach it can make the workers run "
            "any command as their user (use redis://:PASSWORD@host:port/0 with Redis's requirepass)")


def warn_if_unprotected(url: str) -> None:
    """Log unprotected_broker_warning(url), if any."""
    warning = unprotected_broker_warning(url)
    if warning is not None:
        log.warning(warning)


def private_umask() -> int:
    """Make files and directories created from now on (also by child processes: workers, Redis, trials)
    private to their owner, or follow $HPOQUEUE_UMASK (e.g. 027 to share with the group); returns the
    umask that was in place before."""
    return os.umask(settings.umask())
