"""Run one trial command as a supervised subprocess: own process group, metrics tailed, always cleaned up.

No Celery and no Redis here: the task hands in a RunSpec and callbacks, so this runs and is tested alone.
The group is killed on stop, on timeout and when the leader exits, so no trial process outlives its attempt
(Celery's ``revoke(terminate=True)`` kills only the pool process: the trial's subprocess would live on under
PID 1, holding its GPU).
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

from hpoqueue.broker.events import StopReason
from hpoqueue.errors import HpoQueueError, MetricError
from hpoqueue.metrics import Metric, match_stdout, parse_metric_line, stdout_value
from hpoqueue.processes import start_time
from hpoqueue.trial import METRIC_FILE_ENV
from hpoqueue.worker.cgroup import AttemptCgroup

__all__ = ["Outcome", "RunSpec", "SpawnError", "TrialRunner", "kill_stale_groups"]

PGID_FILE = "trial.pgid"
_PR_SET_PDEATHSIG = 1
#: a command made only of these characters has no shell syntax: it is exec'd without a shell in between
_PLAIN_COMMAND = re.compile(r"[A-Za-z0-9_@%+=:,./ -]+")
_MAX_PARTIAL = 1 << 20  # a "line" longer than 1 MiB without a newline is cut and handled as a line
MAX_METRICS = 100_000  #: metrics one attempt may report; more are rejected (a runaway loop, not a curve)
MAX_LOGGED_REJECTIONS = 100  #: rejected lines named in trial.log; the rest are only counted


class SpawnError(HpoQueueError):
    """The trial command could not be started (missing cwd, unwritable log files, ...)."""


@dataclass(frozen=True)
class RunSpec:
    """Everything needed to run one trial attempt. ``command`` runs as ``/bin/bash -c`` would run it."""

    command: str
    cwd: Path
    env: Mapping[str, str]
    stdout_path: Path
    stderr_path: Path
    metric_path: Path
    log_path: Path
    metric_regex: re.Pattern[str] | None = None
    timeout: float | None = None
    grace: float = 5.0
    heartbeat_interval: float = 2.0
    poll_interval: float = 0.1
    #: the longest slice (at most heartbeat_interval), reached by doubling while the trial reports nothing;
    #: its exit still ends a slice at once. At 0.1 s a silent trial cost its worker about 4 ms of CPU a second;
    #: 1 s matches how often a silent attempt looks for a stop request (attempt.STOP_CHECK_EVERY), so a slice
    #: that does not look for one is rare; a metric after a quiet spell is relayed within that second
    quiet_interval: float = 1.0


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended. ``exit_code`` is None when a signal killed the leader (named in ``signal``)."""

    reason: Literal["exited", "stopped", "timeout", "spawn_failed"]
    exit_code: int | None
    signal: str | None
    stop_reason: StopReason | None
    message: str
    pid: int | None
    metrics_rejected: int


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _killpg(pgid: int, sig: int) -> bool:
    """Signal the whole group; False when no process of it is left."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


@cache
def _setpriv() -> str | None:
    """util-linux's setpriv, which sets PR_SET_PDEATHSIG and execs: cheaper than a preexec_fn, which
    forces a full fork() of the (large, threaded) worker instead of vfork()."""
    return shutil.which("setpriv")


def launch_argv(command: str, env: Mapping[str, str]) -> list[str]:
    """The argv that runs `command` as ``bash -c`` would and dies with the worker (SIGKILL, Linux).

    A command without shell syntax whose program is on the trial's PATH is exec'd directly (bash -c would
    exec it too, after ~4 ms of its own start-up); anything else goes through ``/bin/bash -c``.
    """
    argv = ["/bin/bash", "-c", command]
    words = command.split()
    if _PLAIN_COMMAND.fullmatch(command) and words and "=" not in words[0] and \
            ("/" not in words[0] or os.path.isabs(words[0])):
        search = [d for d in env.get("PATH", os.defpath).split(os.pathsep) if os.path.isabs(d)]
        program = shutil.which(words[0], path=os.pathsep.join(search))
        if program is not None:
            argv = [program, *words[1:]]
    setpriv = _setpriv()
    return [setpriv, "--pdeathsig", "KILL", "--", *argv] if setpriv else argv


def _die_with_parent_hook() -> Callable[[], None] | None:
    """Without setpriv: a preexec_fn that makes the direct child get SIGKILL when the worker dies."""
    if _setpriv() is not None:
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the worker died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


class _Tail:
    """Reads the lines appended to a file since the last call, keeping a partial last line for later."""

    def __init__(self, path: Path, label: str) -> None:
        self.path = path
        self.label = label
        self.offset = path.stat().st_size if path.exists() else 0
        self.partial = b""
        self.number = 0

    def lines(self, final: bool = False) -> list[tuple[int, str]]:
        """New complete lines with their 1-based numbers; ``final`` also returns an unterminated last line."""
        if not final:  # a stat, not an open and a read, for the slices in which nothing was written
            try:
                if os.stat(self.path).st_size <= self.offset:
                    return []
            except FileNotFoundError:
                return []
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
        except FileNotFoundError:
            chunk = b""
        self.offset += len(chunk)
        data = self.partial + chunk
        cut = max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
        if final or len(data) - cut > _MAX_PARTIAL:
            cut = len(data)
        self.partial = data[cut:]
        found = [(self.number + i, line.decode("utf-8", "replace"))
                 for i, line in enumerate(data[:cut].splitlines(), start=1)]
        self.number += len(found)
        return found


class _ExitSignal:
    """Wakes the supervisor the moment the child exits (a pidfd on Linux), else after the slice.

    Popen.wait(timeout) polls with growing sleeps and notices an exit up to 50 ms late: on short trials
    that alone doubled the cost of a trial.
    """

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        try:
            self.fd: int | None = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):
            self.fd = None

    def wait(self, timeout: float) -> None:
        """Return when the child exits, or after `timeout` seconds."""
        if self.proc.poll() is not None:  # exited already: only its group may linger
            time.sleep(timeout)
            return
        if self.fd is None:
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
            return
        select.select([self.fd], [], [], timeout)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class TrialRunner:
    """Starts a trial, supervises it in slices of ``poll_interval`` (doubling up to ``quiet_interval`` while
    it reports nothing) and reports metrics and heartbeats.

    ``on_metrics`` (the metrics read in one pass, in order), ``on_heartbeat`` and ``on_tick`` (after every
    slice while the trial runs, not once it has exited) run in the thread that calls ``wait()``; an exception
    from them ends the attempt (the group is killed) and propagates. ``stop()`` may be called from any thread
    or a signal handler. The direct child dies with the *thread* that started it (PR_SET_PDEATHSIG), so call
    ``start()`` from a thread that lives as long as the attempt.
    """

    def __init__(self, spec: RunSpec, *, on_metrics: Callable[[list[Metric]], None] = lambda metrics: None,
                 on_heartbeat: Callable[[], None] = lambda: None, on_tick: Callable[[], None] = lambda: None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.spec = spec
        self._on_metrics = on_metrics
        self._on_heartbeat = on_heartbeat
        self._on_tick = on_tick
        self._clock = clock
        self._lock = threading.RLock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._spawn_error: str | None = None
        self._stop_reason: StopReason | None = None
        self._kill_at: float | None = None
        self._escalated = False
        self._sigkilled = False
        self._rejected = 0
        self._reported = 0
        self._started_at = 0.0
        self._regex = spec.metric_regex
        self._sources: list[tuple[_Tail, Callable[[str], Metric | None]]] = []
        self.pgid_path = spec.log_path.parent / PGID_FILE
        self._cgroup: AttemptCgroup | None = None  #: where cgroups work: what setsid cannot leave

    def log(self, message: str) -> None:
        """Append a timestamped line to the trial's own log."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        with open(self.spec.log_path, "a", encoding="utf-8") as handle:
            handle.write(f"{stamp}Z {message}\n")

    def start(self) -> int:
        """Spawn the command in its own session; return its pid (also its process group id)."""
        spec = self.spec
        if self._proc is not None or self._spawn_error is not None:
            raise HpoQueueError("TrialRunner.start() called twice; use one TrialRunner per attempt")
        try:
            for directory in {p.parent for p in (spec.stdout_path, spec.stderr_path, spec.metric_path,
                                                 spec.log_path)}:
                directory.mkdir(parents=True, exist_ok=True)
            self._sources = [(_Tail(spec.metric_path, "metric file"), parse_metric_line)]
            if self._regex is not None:
                self._sources.append((_Tail(spec.stdout_path, "stdout"), self._parse_stdout))
            env = {**spec.env, METRIC_FILE_ENV: str(spec.metric_path)}
            argv = launch_argv(spec.command, env)
            self._cgroup = AttemptCgroup.create()
            if self._cgroup is not None:
                argv = self._cgroup.wrap(argv)
            with open(spec.stdout_path, "ab") as out, open(spec.stderr_path, "ab") as err:
                self._proc = subprocess.Popen(
                    argv, cwd=spec.cwd, env=env, stdin=subprocess.DEVNULL,
                    stdout=out, stderr=err, start_new_session=True, preexec_fn=_die_with_parent_hook())
        except OSError as exc:
            missing_cwd = isinstance(exc, FileNotFoundError) and not Path(spec.cwd).is_dir()
            detail = f"working directory {spec.cwd} does not exist" if missing_cwd else str(exc)
            self._spawn_error = f"could not start: {detail}"
            self._safe_log(self._spawn_error)
            raise SpawnError(self._spawn_error) from None
        self._started_at = self._clock()
        pid = self._proc.pid
        self.pgid_path.write_text(json.dumps({
            "pgid": pid, "leader_start": start_time(pid),
            "runner_pid": os.getpid(), "runner_start": start_time(os.getpid()),
            "cgroup": str(self._cgroup.path) if self._cgroup else None}) + "\n")
        self.log(f"started pid {pid} (process group {pid}) in {spec.cwd}: {shlex.join(argv)}")
        return pid

    def _safe_log(self, message: str) -> None:
        try:
            self.log(message)
        except OSError:
            pass

    def stop(self, reason: StopReason) -> None:
        """Ask the trial to end: SIGTERM to its whole group now, SIGKILL after ``grace`` (done by wait())."""
        with self._lock:
            proc = self._proc
            if self._stop_reason is not None or proc is None or proc.returncode is not None:
                return
            self._stop_reason = reason
            self._kill_at = self._clock() + self.spec.grace
            self._safe_log(f"stop requested ({reason}): SIGTERM to process group {proc.pid}")
            _killpg(proc.pid, signal.SIGTERM)
            if self._cgroup is not None:  # and to what left the group
                self._cgroup.signal(signal.SIGTERM)

    def wait(self) -> Outcome:
        """Supervise until the trial ends, then kill what is left of its group and return the outcome."""
        if self._spawn_error is not None:
            return self._outcome("spawn_failed", None, self._spawn_error)
        proc = self._proc
        if proc is None:
            raise HpoQueueError("TrialRunner.wait() called before start()")
        try:
            self._supervise(proc)
        finally:
            leftovers = _killpg(proc.pid, signal.SIGKILL)
            if self._cgroup is not None:  # also what left the group: setsid, double forks
                leftovers = self._cgroup.kill() or leftovers
            if proc.returncode is None:
                proc.wait()
            if self._cgroup is not None:
                self._cgroup.remove()
            self.pgid_path.unlink(missing_ok=True)
        if leftovers:
            where = f"group {proc.pid}" + (f" and cgroup {self._cgroup.path.name}" if self._cgroup else "")
            self.log(f"killed the processes left in {where} after the trial ended (SIGKILL)")
        self._pump(final=True)
        outcome = self._finish(proc.returncode)
        self.log(f"{outcome.message}; {outcome.metrics_rejected} metric(s) rejected")
        return outcome

    def run(self) -> Outcome:
        """start() then wait(); a command that cannot be started gives a ``spawn_failed`` outcome."""
        try:
            self.start()
        except SpawnError:
            pass
        return self.wait()

    def _supervise(self, proc: subprocess.Popen[bytes]) -> None:
        spec = self.spec
        next_beat = self._started_at + spec.heartbeat_interval
        exit_signal = _ExitSignal(proc)
        slice_ = spec.poll_interval
        longest = max(spec.poll_interval, min(spec.quiet_interval, spec.heartbeat_interval))
        try:
            while True:
                if proc.poll() is None or self._kill_at is not None:  # exited unasked: nothing to wait for
                    exit_signal.wait(slice_)
                reported = self._reported + self._rejected
                self._pump()
                quiet = reported == self._reported + self._rejected
                slice_ = min(2 * slice_, longest) if quiet else spec.poll_interval
                now = self._clock()
                if now >= next_beat:
                    self._on_heartbeat()
                    next_beat = now + spec.heartbeat_interval
                if proc.poll() is not None and (self._kill_at is None or self._escalated
                                                or not _killpg(proc.pid, 0)):
                    return  # exited; when stopped, its whole group is gone or got SIGKILL
                self._on_tick()
                if spec.timeout is not None and now - self._started_at >= spec.timeout:
                    self.stop("timeout")
                if self._kill_at is not None and not self._escalated and now >= self._kill_at:
                    self._escalated = True
                    self._sigkilled = proc.returncode is None
                    self.log(f"grace of {spec.grace} s over: SIGKILL to process group {proc.pid}")
                    _killpg(proc.pid, signal.SIGKILL)
                    if self._cgroup is not None:
                        self._cgroup.kill()
        finally:
            exit_signal.close()

    def _pump(self, final: bool = False) -> None:
        """Read new metric-file and stdout lines; report valid metrics in order, log and count the rest."""
        metrics: list[Metric] = []
        for tail, parse in self._sources:
            for number, line in tail.lines(final):
                try:
                    metric = parse(line)
                    if metric is not None and self._reported >= MAX_METRICS:
                        raise MetricError(f"more than {MAX_METRICS} metrics from one attempt")
                except MetricError as exc:
                    self._rejected += 1
                    if self._rejected <= MAX_LOGGED_REJECTIONS:
                        self.log(f"rejected metric from {tail.label} line {number}: {exc} "
                                 f"(line: {line.strip()[:200]!r})"
                                 + ("; further rejections are counted, not logged"
                                    if self._rejected == MAX_LOGGED_REJECTIONS else ""))
                    continue
                if metric is not None:
                    metrics.append(metric)
                    self._reported += 1
        if metrics:
            self._on_metrics(metrics)

    def _parse_stdout(self, line: str) -> Metric | None:
        """Stdout matches are intermediate results; the scheduler decides what the final one is."""
        text = match_stdout(line, self._regex) if self._regex is not None else None
        if text is None:
            return None
        value = stdout_value(text)
        return Metric("intermediate", value, value)

    def _finish(self, returncode: int) -> Outcome:
        code, sig = (None, _signal_name(-returncode)) if returncode < 0 else (returncode, None)
        ended = self._describe_exit(code, sig)
        reason = self._stop_reason
        if reason == "timeout":
            message = f"timed out after {float(self.spec.timeout or 0)} s (maxTrialDuration): {ended}"
            return self._outcome("timeout", code, message, sig)
        if reason is not None:
            return self._outcome("stopped", code, f"stopped ({reason}): {ended}", sig)
        return self._outcome("exited", code, ended, sig)

    def _describe_exit(self, code: int | None, sig: str | None) -> str:
        if self._sigkilled:
            return f"killed by SIGKILL after ignoring SIGTERM for {float(self.spec.grace)} s"
        if sig is not None:
            return sig if self._stop_reason is not None and sig == "SIGTERM" else f"killed by {sig}"
        text = f"exited with {code}"
        if code == 127:
            return f"{text} (command not found){self._stderr_hint()}"
        if code == 126:
            return f"{text} (command not executable){self._stderr_hint()}"
        if code is not None and 128 < code <= 128 + 64:
            return f"{text} ({_signal_name(code - 128)})"
        return text

    def _stderr_hint(self) -> str:
        """The last line of the trial's stderr, which names what bash could not run."""
        try:
            with open(self.spec.stderr_path, "rb") as handle:
                handle.seek(max(0, handle.seek(0, os.SEEK_END) - 4096))
                lines = handle.read().decode("utf-8", "replace").strip().splitlines()
        except OSError:
            return ""
        return f": {lines[-1].strip()}" if lines else ""

    def _outcome(self, reason: Literal["exited", "stopped", "timeout", "spawn_failed"], code: int | None,
                 message: str, sig: str | None = None) -> Outcome:
        return Outcome(reason=reason, exit_code=code, signal=sig, stop_reason=self._stop_reason,
                       message=message, pid=self._proc.pid if self._proc else None,
                       metrics_rejected=self._rejected)


def kill_stale_groups(pid_dir: Path) -> list[int]:
    """SIGKILL the groups of ``trial.pgid`` files under ``pid_dir`` whose runner is dead; return their pgids.

    For a worker's startup: a worker killed with SIGKILL takes its trial's direct child along
    (PR_SET_PDEATHSIG) but not the child's own children. A group whose leader pid now belongs to another
    process (pid reused) is left alone; the file is removed either way.
    """
    killed: list[int] = []
    for path in sorted(Path(pid_dir).rglob(PGID_FILE)):
        try:
            info = json.loads(path.read_text())
            pgid, runner = int(info["pgid"]), int(info["runner_pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if info.get("runner_start") is not None and start_time(runner) == info["runner_start"]:
            continue  # its runner is alive and supervising it
        swept = False
        if info.get("cgroup") and Path(info["cgroup"]).is_dir():  # everything the trial started, setsid too
            cgroup = AttemptCgroup(Path(info["cgroup"]))
            swept = cgroup.kill()
            cgroup.remove()
        leader = start_time(pgid)
        if (leader is None or leader == info.get("leader_start")) and _killpg(pgid, signal.SIGKILL):
            swept = True
        if swept:
            killed.append(pgid)
        path.unlink(missing_ok=True)
    return killed
