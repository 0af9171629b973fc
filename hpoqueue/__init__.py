"""hpoqueue: hyperparameter optimization on your own GPU boxes, over Celery queues on Redis.

`celery -A hpoqueue worker -Q gpu0` finds the Celery app here; it is built lazily so that a trial's
`import hpoqueue.trial` stays fast and does not import Celery. `hpoqueue.Experiment` (the Python API) is
loaded lazily too.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Experiment", "app", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("app", "celery"):
        from hpoqueue.broker.app import app

        return app
    if name in ("Experiment", "Trial"):
        from hpoqueue.experiment import api as experiment_api

        return getattr(experiment_api, name)
    raise AttributeError(f"module 'hpoqueue' has no attribute {name!r}")
