"""hpoqueue: hyperparameter optimization on your own GPU boxes, over Celery queues on Redis.

`celery -A hpoqueue worker -Q gpu0` finds the Celery app here; it is built lazily so that a trial's
`import hpoqueue.trial` stays fast and does not import Celery.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["app", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("app", "celery"):
        from hpoqueue.app import app

        return app
    raise AttributeError(f"module 'hpoqueue' has no attribute {name!r}")
