"""The one vocabulary of trial and experiment states, and which transitions count as finished."""

from __future__ import annotations

from enum import Enum


class TrialState(str, Enum):
    """Lifecycle of a trial. WAITING -> RUNNING -> one finished state; LOST trials may be retried."""

    WAITING = "WAITING"  #: created with fixed parameters, dispatched, not started by a worker yet
    RUNNING = "RUNNING"  #: a worker claimed the attempt and started the command
    SUCCEEDED = "SUCCEEDED"  #: the command exited 0
    FAILED = "FAILED"  #: the command exited non-zero, could not start, or reported bad metrics
    EARLY_STOPPED = "EARLY_STOPPED"  #: an assessor stopped it; its last intermediate result is its final
    USER_CANCELED = "USER_CANCELED"  #: `hpoqueue kill` or `hpoqueue stop`
    TIMEOUT = "TIMEOUT"  #: killed after running longer than maxTrialDuration
    LOST = "LOST"  #: its worker stopped heartbeating (box gone, worker killed) and retries ran out

    def is_finished(self) -> bool:
        """True for states a trial never leaves."""
        return self not in (TrialState.WAITING, TrialState.RUNNING)


ACTIVE_STATES = frozenset({TrialState.WAITING, TrialState.RUNNING})
FINISHED_STATES = frozenset(s for s in TrialState if s.is_finished())


class ExperimentState(str, Enum):
    """Lifecycle of an experiment, written only by its scheduler (or by the CLI when none runs)."""

    RUNNING = "RUNNING"  #: a scheduler is (or was, until it crashed) running it
    DONE = "DONE"  #: budget spent or space exhausted, every trial finished
    STOPPED = "STOPPED"  #: stopped by the user (Ctrl-C, `hpoqueue stop`)
    ERROR = "ERROR"  #: the scheduler hit an error it could not recover from

    def is_finished(self) -> bool:
        return self is not ExperimentState.RUNNING
