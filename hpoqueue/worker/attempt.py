"""Worker side of one trial attempt: claim it once, take GPU slots, run it supervised, relay everything.

Imports no Celery: `tasks.run_trial` calls `execute_attempt` with the queue it consumed from.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

from hpoqueue.broker import events
from hpoqueue.broker.client import UNREACHABLE, RedisError, redis_client
from hpoqueue.broker.protocol import Channel, TrialSpec
from hpoqueue.credentials import trial_safe_environment
from hpoqueue.gpu import trial_env
from hpoqueue.metrics import Metric, stdout_pattern
from hpoqueue.nni_compat.shim_path import add_nni_shim
from hpoqueue.settings import attempt_dir, box_attempt_dir, running_dir
from hpoqueue.trial import (
    EXP_ID_ENV,
    OUTPUT_DIR_ENV,
    PARAMETER_FILE_ENV,
    PARAMETERS_ENV,
    PLATFORM_ENV,
    SEQ_ID_ENV,
    TRIAL_ID_ENV,
)
from hpoqueue.worker.code_bundle import CodeError, checkout
from hpoqueue.worker.gpu_slots import GpuSlots
from hpoqueue.worker.log_relay import LogRelay, sees_scheduler_files
from hpoqueue.worker.runner import PGID_FILE, Outcome, RunSpec, SpawnError, TrialRunner, kill_stale_groups

GPU_WAIT_POLL = 0.5
#: seconds between two checks for a stop request while an attempt has no event to send (a silent trial):
#: one round trip a slice (0.1 s) was most of a running trial's cost to its worker and to Redis
STOP_CHECK_EVERY = 1.0


def trial_dir(spec: TrialSpec) -> Path:
    """Where this attempt's logs go: <experiment dir>/trials/<seq>/attempt-<n>, created here."""
    path = attempt_dir(spec.work_dir, spec.seq, spec.attempt)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:  # a remote box without the scheduler's directory: keep logs under this box's home
        path = box_attempt_dir(spec.exp_id, spec.seq, spec.attempt)
        path.mkdir(parents=True, exist_ok=True)
    return path


def trial_environment(spec: TrialSpec, directory: Path, gpus: list[int] | None) -> dict[str, str]:
    """The child's environment: parameters by variable and file (never in the command line), NNI names."""
    param_file = directory / "parameter.json"
    param_file.write_text(json.dumps(spec.params))
    env = trial_env(gpus, trial_safe_environment(os.environ))  # no broker or database credentials
    # `python` in a trialCommand is the Python running this worker (NNI's pythonPath, by default)
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", os.defpath)])
    env.update(spec.extra_env)
    add_nni_shim(env)  # `import nni` works in the trial without NNI installed
    env.update({
        PARAMETERS_ENV: json.dumps(spec.params),
        PARAMETER_FILE_ENV: str(param_file),
        PLATFORM_ENV: "hpoqueue",
        EXP_ID_ENV: spec.exp_id,
        TRIAL_ID_ENV: spec.trial_id,
        SEQ_ID_ENV: str(spec.seq),
        OUTPUT_DIR_ENV: str(directory),
    })
    return env


class Outbox:
    """An attempt's events, held until the supervisor's next slice (or the attempt's end) and sent in one
    round trip with the check for a stop request: a trial shorter than a slice costs one round trip for
    its start, its metrics and its end. Each event keeps the time it happened."""

    def __init__(self, channel: Channel, spec: TrialSpec) -> None:
        self.channel = channel
        self.spec = spec
        self.events: list[events.Event] = []
        self._checked = 0.0  #: when a stop request was last looked for (time.monotonic); never yet

    def add(self, event_class: type[events.Event], /, **fields: Any) -> None:
        """Hold an event of that class about this attempt, stamped now."""
        self.events.append(event_class(trial=self.spec.trial_id, attempt=self.spec.attempt, ts=time.time(),
                                       **fields))

    def log(self, stream: events.Stream, at: int, data: str) -> None:
        """Hold a chunk of a log file (LogRelay's way out)."""
        self.add(events.Log, stream=stream, at=at, data=data)

    def send(self) -> events.StopReason | None:
        """Send what is held; returns the reason of a stop asked for meanwhile (None while Redis is away:
        the trial goes on). With nothing to send, the stop request is looked for every STOP_CHECK_EVERY s."""
        held, self.events = self.events, []
        now = time.monotonic()
        if held:
            self._checked = now
            return self.channel.emit_many(self.spec.attempt_id, held, take_stop=True)
        if now - self._checked < STOP_CHECK_EVERY:
            return None
        self._checked = now
        try:
            return self.channel.pending_stop(self.spec.attempt_id)
        except UNREACHABLE:
            return None

    def beat(self, slots: GpuSlots) -> events.StopReason | None:
        """The attempt's heartbeat, its GPU leases' renewal and the check for a stop request (whose reason
        is returned) in one round trip: three every heartbeat interval were most of what a running trial
        sent."""
        pipe = self.channel.client.pipeline(transaction=False)
        renewed = slots.renew_in(pipe)
        taken = self.channel.beat_in(pipe, self.spec.attempt_id)
        pipe.execute()
        self._checked = time.monotonic()
        try:
            renewed()  # a lease that expired is taken again: one more round trip, rarely
        except UNREACHABLE:  # the next beat tries again; the stop request taken must not be lost
            pass
        return events.stop_reason(taken.value)

    def finish(self, slots: GpuSlots, reason: events.EndReason, message: str, *, exit_code: int | None = None,
               signal: str | None = None, stop_reason: events.StopReason | None = None,
               metrics_rejected: int = 0) -> None:
        """Send what is held and the `finished` event, giving the GPU slots back first and ending the
        attempt's heartbeat, in one transaction."""
        self.add(events.Finished, reason=reason, message=message, exit_code=exit_code, signal=signal,
                 stop_reason=stop_reason, metrics_rejected=metrics_rejected)
        held, self.events = self.events, []
        self.channel.emit_many(self.spec.attempt_id, held, clear_heartbeat=True, before=slots.release_in)
        slots.gpus = []  # given back


def execute_attempt(raw_spec: dict[str, Any], *, queue: str, hostname: str, broker_url: str) -> str:
    """Run one attempt end to end; returns a word for Celery's task log (the real record is the events)."""
    spec = TrialSpec.from_dict(raw_spec)
    client = redis_client(broker_url)
    channel = Channel(client, spec.exp_id)
    claimed, stop = channel.claim(spec.attempt_id, f"{hostname}:{os.getpid()}")
    if not claimed:
        return "duplicate delivery ignored"
    slots = GpuSlots(client, spec, queue, hostname)
    outbox = Outbox(channel, spec)

    def finish(reason: events.EndReason, message: str, **outcome: Any) -> None:
        """The slots go back with `finished`, in the same transaction: the scheduler dispatches the trial
        that takes this one's place as soon as it reads it, and that trial must find its GPU slot free. With
        the broker away the result still goes out (retried until it is back)."""
        outbox.finish(slots, reason, message, **outcome)

    try:
        reason = stop or _wait_for_slots(channel, spec, slots)
        if reason is not None:
            finish("stopped", f"stopped ({reason}) before it started", stop_reason=reason)
            return "stopped before start"
        try:
            outcome = _run(outbox, spec, slots, queue, hostname)
        except Exception as exc:  # the trial must end recorded, never hang as RUNNING
            finish("error", f"worker error: {exc!r}")
            raise
        finish(outcome.reason, outcome.message, exit_code=outcome.exit_code, signal=outcome.signal,
               stop_reason=outcome.stop_reason, metrics_rejected=outcome.metrics_rejected)
        return outcome.message
    finally:
        _release(slots)  # an attempt that ended without `finished` (the broker never came back)


def _release(slots: GpuSlots) -> None:
    """Give the GPU slots back if the broker answers; if not, their lease expires on its own (LEASE_TTL)."""
    try:
        slots.release()
    except UNREACHABLE:
        pass


def _wait_for_slots(channel: Channel, spec: TrialSpec, slots: GpuSlots) -> events.StopReason | None:
    """Wait (heartbeating) until the GPU slots are ours; returns a stop reason if stopped meanwhile."""
    announced = ""
    while True:
        ok, why = slots.try_acquire()
        if ok:
            return None
        if why != announced:
            channel.emit(events.Waiting(trial=spec.trial_id, attempt=spec.attempt, ts=time.time(), why=why))
            announced = why
        channel.heartbeat(spec.attempt_id)
        time.sleep(GPU_WAIT_POLL)
        reason = channel.pending_stop(spec.attempt_id)
        if reason:
            return reason


def reap_orphans() -> list[int]:
    """Kill the process groups of trials whose worker died (called when a worker starts)."""
    killed: list[int] = []
    root = running_dir()
    if not root.is_dir():
        return killed
    for link in root.iterdir():
        target = link.resolve()
        if target.is_dir():
            killed += kill_stale_groups(target)
        if not (target / PGID_FILE).exists():
            link.unlink(missing_ok=True)
    return killed


def _run(outbox: Outbox, spec: TrialSpec, slots: GpuSlots, queue: str, hostname: str) -> Outcome:
    directory = trial_dir(spec)
    link = running_dir() / spec.attempt_id
    link.parent.mkdir(parents=True, exist_ok=True)
    link.unlink(missing_ok=True)
    link.symlink_to(directory, target_is_directory=True)
    try:
        return _supervise(outbox, spec, slots, queue, hostname, directory)
    finally:
        link.unlink(missing_ok=True)


def _supervise(outbox: Outbox, spec: TrialSpec, slots: GpuSlots, queue: str, hostname: str,
               directory: Path) -> Outcome:
    steps = {"intermediate": 0, "final": 0, "loss": 0}

    def on_metrics(metrics: list[Metric]) -> None:
        for metric in metrics:
            outbox.add(events.Metric, kind=metric.kind, step=steps[metric.kind], value=metric.value,
                       data=metric.data)
            steps[metric.kind] += 1

    def on_heartbeat() -> None:
        try:
            reason = outbox.beat(slots)
        except UNREACHABLE:  # broker restarting: the trial goes on
            return
        if reason:
            runner.stop(reason)

    def on_tick() -> None:
        relay.pump()
        reason = outbox.send()
        if reason:
            runner.stop(reason)

    relay = LogRelay(directory, outbox.log, socket.gethostname(), active=not (
        directory == attempt_dir(spec.work_dir, spec.seq, spec.attempt)
        and sees_scheduler_files(Path(spec.work_dir), spec.log_token)))
    try:
        cwd = checkout(outbox.channel.client, spec.code_hash) if spec.code_hash else Path(spec.code_dir)
    except (CodeError, OSError, tarfile.TarError, RedisError) as exc:
        message = f"could not get the trial code: {exc}"
        with open(directory / "trial.log", "a", encoding="utf-8") as fh:
            fh.write(message + "\n")
        relay.pump(final=True)
        return Outcome(reason="spawn_failed", exit_code=None, signal=None, stop_reason=None,
                       message=message, pid=None, metrics_rejected=0)
    run_spec = RunSpec(
        command=spec.command, cwd=cwd, env=trial_environment(spec, directory, slots.gpus),
        stdout_path=directory / "trial.stdout", stderr_path=directory / "trial.stderr",
        metric_path=directory / "metrics.jsonl", log_path=directory / "trial.log",
        metric_regex=stdout_pattern(spec.metric_name, spec.metric_pattern),
        timeout=spec.timeout, grace=spec.grace, heartbeat_interval=spec.heartbeat_interval,
    )
    runner = TrialRunner(run_spec, on_metrics=on_metrics, on_heartbeat=on_heartbeat, on_tick=on_tick)
    try:
        pid = runner.start()
    except (OSError, SpawnError) as exc:  # SpawnError says why in trial.log, which goes back with it
        relay.pump(final=True)
        return Outcome(reason="spawn_failed", exit_code=None, signal=None, stop_reason=None,
                       message=str(exc) if isinstance(exc, SpawnError) else f"could not start: {exc}",
                       pid=None, metrics_rejected=0)
    outbox.add(events.Started, host=hostname, pid=pid, gpus=slots.gpus, queue=queue, log_dir=str(directory),
               machine=relay.machine)
    outcome = runner.wait()
    relay.pump(final=True)
    return outcome
