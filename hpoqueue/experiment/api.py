"""The Python API: ``hpoqueue.Experiment``, for scripts and notebooks (Ray Tune, Optuna and NNI 3 style).

Built from a YAML file or from keyword arguments (the config's fields in snake_case, the search space as
a dict), it runs through the same path as ``hpoqueue submit``: embedded Redis and local workers when no
broker is configured, the same progress bar, the same record. Any recorded experiment can be opened by
id. Results come back as plain objects.
"""

from __future__ import annotations

import argparse
import json
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from hpoqueue import settings
from hpoqueue.config.experiment_config import ExperimentConfig, config_from_dict, load_config
from hpoqueue.errors import ConfigError, HpoQueueError
from hpoqueue.results import metric_keys
from hpoqueue.states import ExperimentState, TrialState

__all__ = ["Experiment", "Trial"]


@dataclass(frozen=True)
class Trial:
    """One trial as recorded: ``value`` is its result, ``metrics`` the other keys of its final result."""

    id: str
    seq: int
    state: str
    value: float | None
    metrics: dict[str, Any]
    parameters: dict[str, Any]
    attempt: int
    started_at: datetime | None
    ended_at: datetime | None


def _config_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments as config fields: `trial_function` becomes the trial command, `tuner` may be a
    name, `optimize_mode` goes to the tuner's classArgs; the rest are read as the YAML's fields are."""
    from hpoqueue.function_trial import command

    raw = {"trial_concurrency": 1, **fields}
    function = raw.pop("trial_function", None)
    if function is not None:
        if callable(function):
            if function.__module__ == "__main__":
                raise ConfigError("trial_function must live in a module the workers can import, not in __main__",
                                  source="Experiment(...)", hint="move it to a file beside your script")
            function = f"{function.__module__}:{function.__qualname__}"
        try:
            raw["trial_command"] = command(function)
        except ValueError as exc:
            raise ConfigError(str(exc), source="Experiment(...)", field="trial_function") from None
    tuner = raw.pop("tuner", None)
    tuner = {"name": tuner} if isinstance(tuner, str) else dict(tuner or {"name": "Random"})
    mode = raw.pop("optimize_mode", None)
    if mode is not None:
        tuner["class_args"] = {**(tuner.get("class_args") or tuner.pop("classArgs", None) or {}),
                               "optimize_mode": mode}
    return {**raw, "tuner": tuner}


class Experiment:
    """An experiment: ``Experiment("config.yml")``, ``Experiment(search_space={...}, trial_command=...,
    max_trial_number=20, tuner="TPE", optimize_mode="maximize")``, or ``Experiment.open(id)``."""

    def __init__(self, config: str | Path | None = None, *, storage: str | None = None, broker: str | None = None,
                 **fields: Any) -> None:
        if config is not None and fields:
            raise ConfigError("give a config file or keyword fields, not both", source="Experiment(...)")
        if config is not None:
            self.config: ExperimentConfig = load_config(config)
        else:
            self.config = config_from_dict(_config_fields(fields), source="Experiment(...)", base_dir=Path.cwd())
        self.storage_url = storage
        self.broker = broker
        self.id: str | None = None

    @classmethod
    def open(cls, exp_id: str, *, storage: str | None = None) -> Experiment:
        """A recorded experiment (one `hpoqueue list` shows), to read or to stop."""
        from hpoqueue.storage import Storage

        with Storage(settings.storage_url(storage), create=False) as store:
            record = store.get_experiment(exp_id)
        exp = cls.__new__(cls)
        exp.config = config_from_dict(record.config, source=f"experiment {exp_id}")
        exp.storage_url, exp.broker, exp.id = storage, None, exp_id
        return exp

    def __repr__(self) -> str:
        return f"Experiment(id={self.id!r}, name={self.config.experiment_name!r})"

    # ---- running -----------------------------------------------------------------------------------
    def run(self, *, quiet: bool = False) -> str:
        """Run to the end here, with the progress bar unless `quiet`; returns the end state ('DONE')."""
        self._submit(detach=False, quiet=quiet)
        return self.state()

    def start(self) -> str:
        """Start in the background (the scheduler is a process of its own); returns the experiment's id."""
        self._submit(detach=True, quiet=True)
        assert self.id is not None
        return self.id

    def wait(self, timeout: float | None = None, *, quiet: bool = True) -> str:
        """Block until the experiment ends (or `timeout` seconds pass); returns its state then."""
        from hpoqueue.cli.progress import ProgressBar

        deadline = None if timeout is None else time.monotonic() + timeout
        with nullcontext(None) if quiet else ProgressBar() as bar:
            while True:
                state = self.state()
                if bar is not None:
                    bar(self._progress())
                if state != ExperimentState.RUNNING.value or (deadline is not None and time.monotonic() > deadline):
                    return state
                time.sleep(0.5)

    def stop(self) -> None:
        """Stop the experiment and its running trials (recorded USER_CANCELED), as `hpoqueue stop`."""
        from hpoqueue.cli.commands import cmd_stop

        self._cli(cmd_stop, experiment=self._id())

    # ---- reading -----------------------------------------------------------------------------------
    def state(self) -> str:
        """RUNNING, DONE or STOPPED (an ExperimentState's value)."""
        with self._storage() as store:
            return str(store.get_experiment(self._id()).state.value)

    def trials(self) -> list[Trial]:
        """Every trial, in sequence order."""
        with self._storage() as store:
            return [_trial(t) for t in store.trials(self._id())]

    def best(self, metric: str | None = None, mode: str | None = None) -> Trial | None:
        """The best succeeded trial by its result (or by `metric`, a key of the final results), in the
        experiment's optimize mode (or `mode`); None before any has a result."""
        with self._storage() as store:
            exp = store.get_experiment(self._id())
            done = store.trials(exp.id, states=[TrialState.SUCCEEDED])
        key = metric or "value"
        metric_keys.check_key(done, key, "metric")
        ranked = [t for t in metric_keys.ranked(done, key, mode or exp.optimize_mode)
                  if metric_keys.number(t, key) is not None]
        return _trial(ranked[0]) if ranked else None

    # ---- plumbing ----------------------------------------------------------------------------------
    def _id(self) -> str:
        if self.id is None:
            raise HpoQueueError("the experiment has not been started: call run() or start() first")
        return self.id

    @contextmanager
    def _storage(self) -> Iterator[Any]:
        from hpoqueue.storage import Storage

        with Storage(settings.storage_url(self.storage_url, self.config.storage), create=False) as store:
            yield store

    def _cli(self, command: Callable[[argparse.Namespace], int], **options: Any) -> argparse.Namespace:
        """Run one of the CLI's commands in this process, as `hpoqueue` would (Ctrl-C and SIGTERM stop it
        cleanly when called from the main thread; its notes and warnings go to standard error)."""
        from hpoqueue.experiment.interrupts import raise_interrupt, signals_handled
        from hpoqueue.log import configured

        args = argparse.Namespace(storage=self.storage_url, broker=self.broker, local_workers=False, **options)
        main = threading.current_thread() is threading.main_thread()
        with ExitStack() as args.resources, (signals_handled(raise_interrupt, signal.SIGTERM) if main
                                             else nullcontext()), configured():
            command(args)
        return args

    def _submit(self, *, detach: bool, quiet: bool) -> None:
        from hpoqueue.cli.commands import cmd_submit

        if self.id is not None:
            raise HpoQueueError(f"experiment {self.id} was started already; make a new Experiment to run again")
        with tempfile.TemporaryDirectory(prefix="hpoqueue-api-") as tmp:  # read at submit, then recorded
            path = Path(tmp) / "experiment.json"
            path.write_text(json.dumps(self.config.to_dict()))
            args = self._cli(cmd_submit, config=str(path), detach=detach, quiet=quiet, warm_start=None)
        self.id = args.created_experiment

    def _progress(self) -> Any:
        from hpoqueue.scheduler import Progress

        with self._storage() as store:
            exp = store.get_experiment(self._id())
            counts = store.count_trials(exp.id)
            best = self.best()
        finished = sum(n for s, n in counts.items() if s.is_finished())
        end = exp.ended_at or datetime.now(exp.created_at.tzinfo)
        return Progress(created=sum(counts.values()), finished=finished, total=exp.max_trial_number,
                        running=counts[TrialState.RUNNING], waiting=counts[TrialState.WAITING],
                        failed=sum(counts[s] for s in (TrialState.FAILED, TrialState.LOST, TrialState.TIMEOUT)),
                        best_value=best.value if best else None, best_trial=best.id if best else None,
                        elapsed=(end - (exp.started_at or exp.created_at)).total_seconds(), state=exp.state)


def _trial(t: Any) -> Trial:
    return Trial(id=t.id, seq=t.seq, state=t.state.value, value=t.final_value, metrics=metric_keys.extras(t),
                 parameters=dict(t.params), attempt=t.attempt, started_at=t.started_at, ended_at=t.ended_at)
