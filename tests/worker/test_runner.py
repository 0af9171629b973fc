"""The supervised trial subprocess, with real processes: exit reasons, metrics, stop, timeout, no orphans."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hpoqueue import settings
from hpoqueue.metrics import Metric, stdout_pattern
from hpoqueue.worker import cgroup
from hpoqueue.worker.runner import PGID_FILE, Outcome, RunSpec, TrialRunner, kill_stale_groups


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for a reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def wait_for(condition: Callable[[], bool], limit: float = 10.0) -> bool:
    """Poll ``condition`` until it holds or ``limit`` seconds pass (a bound, not a timing assertion)."""
    end = time.monotonic() + limit
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


def read_pid(path: Path) -> int:
    assert wait_for(lambda: path.exists() and path.read_text().strip() != ""), f"{path} never written"
    return int(path.read_text())


def read_leader(directory: Path) -> int:
    """The trial's process group leader, from the pgid file the runner of another process writes once
    its Popen returns (the trial may already be running, and writing, by then)."""
    path = directory / PGID_FILE
    assert wait_for(lambda: path.exists() and path.read_text().endswith("\n")), f"{path} never written"
    return int(json.loads(path.read_text())["pgid"])


@pytest.fixture(params=["cgroup", "process group"])
def isolation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Each way a trial's processes are reached: its cgroup where the box allows one, else its process
    group alone (HPOQUEUE_CGROUP=off, as on a box without a writable cgroup v2)."""
    if request.param == "cgroup" and cgroup.cgroup_base() is None:
        pytest.skip("no writable cgroup v2 with cgroup.kill on this box")
    if request.param == "process group":
        monkeypatch.setenv(settings.ENV_CGROUP, "off")
    cgroup._probe_base.cache_clear()
    yield request.param
    cgroup._probe_base.cache_clear()


def make_spec(tmp_path: Path, command: str, **options: object) -> RunSpec:
    env = dict(os.environ)
    env.update(options.pop("extra_env", {}))  # type: ignore[call-overload]
    options.setdefault("poll_interval", 0.05)
    return RunSpec(command=command, cwd=tmp_path, env=env, stdout_path=tmp_path / "trial.stdout",
                   stderr_path=tmp_path / "trial.stderr", metric_path=tmp_path / "metrics.jsonl",
                   log_path=tmp_path / "trial.log", **options)  # type: ignore[arg-type]


def run(spec: RunSpec) -> tuple[Outcome, list[Metric]]:
    seen: list[Metric] = []
    return TrialRunner(spec, on_metrics=seen.extend).run(), seen


@pytest.mark.parametrize("code", [0, 3])
def test_exit_code_is_reported(tmp_path: Path, code: int) -> None:
    outcome, _ = run(make_spec(tmp_path, f"exit {code}"))
    assert (outcome.reason, outcome.exit_code, outcome.signal) == ("exited", code, None)
    assert outcome.message == f"exited with {code}"
    assert f"exited with {code}" in (tmp_path / "trial.log").read_text()


def test_missing_command_is_reported_as_command_not_found(tmp_path: Path) -> None:
    outcome, _ = run(make_spec(tmp_path, "nosuchcmd-hpoqueue --lr 0.1"))
    assert (outcome.reason, outcome.exit_code) == ("exited", 127)
    assert outcome.message.startswith("exited with 127 (command not found)")
    assert "nosuchcmd-hpoqueue" in outcome.message


def test_missing_cwd_is_a_spawn_failure_not_an_exception(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, "true")
    spec = RunSpec(**{**spec.__dict__, "cwd": tmp_path / "absent"})
    outcome, _ = run(spec)
    assert (outcome.reason, outcome.pid, outcome.exit_code) == ("spawn_failed", None, None)
    assert outcome.message == f"could not start: working directory {tmp_path / 'absent'} does not exist"
    assert not (tmp_path / PGID_FILE).exists()


def test_stdout_and_stderr_land_in_their_files(tmp_path: Path) -> None:
    outcome, _ = run(make_spec(tmp_path, "echo to-out; echo to-err >&2; cat"))  # cat reads /dev/null
    assert outcome.exit_code == 0
    assert (tmp_path / "trial.stdout").read_text() == "to-out\n"
    assert (tmp_path / "trial.stderr").read_text() == "to-err\n"


TRIAL_SCRIPT = """
import json, sys
import hpoqueue.trial as nni
params = nni.get_next_parameter()
open("params.json", "w").write(json.dumps(params))
for step in range(3):
    nni.report_intermediate_result(params["lr"] * step)
nni.report_final_result({"default": 0.5, "acc": 0.9})
"""


def test_metrics_from_the_trial_api_arrive_in_order(tmp_path: Path) -> None:
    (tmp_path / "trial.py").write_text(TRIAL_SCRIPT)
    spec = make_spec(tmp_path, f"{sys.executable} trial.py", extra_env={"HPOQUEUE_PARAMETERS": '{"lr": 0.1}'})
    outcome, seen = run(spec)
    assert outcome.message == "exited with 0", (tmp_path / "trial.stderr").read_text()
    assert [(m.kind, m.value) for m in seen] == [
        ("intermediate", 0.0), ("intermediate", 0.1), ("intermediate", 0.2), ("final", 0.5)]
    assert seen[-1].data == {"default": 0.5, "acc": 0.9}


def test_parameters_with_shell_metacharacters_reach_the_trial_unchanged(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    params = {"lr": 0.1, "a": "'; rm -rf ~ #", "b": f"$(touch {marker})", "c": f"`touch {marker}`"}
    (tmp_path / "trial.py").write_text(TRIAL_SCRIPT)
    env = {"HPOQUEUE_PARAMETERS": json.dumps(params)}
    spec = make_spec(tmp_path, f"{sys.executable} trial.py", extra_env=env)
    outcome, _ = run(spec)
    assert outcome.exit_code == 0
    assert json.loads((tmp_path / "params.json").read_text()) == params
    assert not marker.exists()


def test_a_metric_line_written_in_two_pieces_is_read_once(tmp_path: Path) -> None:
    command = ("printf '{\"kind\": \"fi' >> \"$HPOQUEUE_METRIC_FILE\"; sleep 0.3; "
               "printf 'nal\", \"value\": 1}\\n' >> \"$HPOQUEUE_METRIC_FILE\"")
    outcome, seen = run(make_spec(tmp_path, command))
    assert [(m.kind, m.value) for m in seen] == [("final", 1.0)]
    assert outcome.metrics_rejected == 0


def test_stdout_metrics_are_matched_by_the_regex(tmp_path: Path) -> None:
    script = 'print("epoch 1 loss=0.5"); print("val_loss=9"); print("loss: 0.25")'
    command = f"{sys.executable} -c '{script}'"
    outcome, seen = run(make_spec(tmp_path, command, metric_regex=stdout_pattern("loss")))
    assert outcome.exit_code == 0
    assert [(m.kind, m.value) for m in seen] == [("intermediate", 0.5), ("intermediate", 0.25)]


def test_invalid_metrics_are_logged_and_counted_not_reported(tmp_path: Path) -> None:
    command = ("echo '{\"kind\": \"final\", \"value\": \"abc\"}' >> \"$HPOQUEUE_METRIC_FILE\"; "
               "echo '{\"kind\": \"intermediate\", \"value\": NaN}' >> \"$HPOQUEUE_METRIC_FILE\"; "
               "echo '{\"kind\": \"intermediate\", \"value\": 2}' >> \"$HPOQUEUE_METRIC_FILE\"; "
               "echo loss=nan")
    outcome, seen = run(make_spec(tmp_path, command, metric_regex=stdout_pattern("loss")))
    assert [(m.kind, m.value) for m in seen] == [("intermediate", 2.0)]
    assert outcome.metrics_rejected == 3
    log = (tmp_path / "trial.log").read_text()
    assert "rejected metric from metric file line 1: metric must be a finite number or a dict with a " \
           "numeric 'default'; got 'abc'" in log
    assert "rejected metric from metric file line 2" in log and "rejected metric from stdout line 1" in log
    assert (tmp_path / "trial.stderr").read_text() == ""


def test_heartbeats_are_sent_all_through_the_trial(tmp_path: Path) -> None:
    """Not only a first beat: a trial of ten intervals gets beats until it ends (a trial whose beats stop
    while it runs is taken for LOST)."""
    beats: list[float] = []
    spec = make_spec(tmp_path, "sleep 1", heartbeat_interval=0.1)
    started = time.monotonic()
    TrialRunner(spec, on_heartbeat=lambda: beats.append(time.monotonic())).run()
    assert len(beats) >= 4, beats
    assert beats[-1] - started >= 0.5, "no heartbeat in the second half of the trial"


def test_a_silent_trial_wakes_its_supervisor_about_once_a_second(tmp_path: Path) -> None:
    """A trial that reports nothing is looked at in slices doubling from 0.1 s up to 1 s (its exit still
    ends a slice at once): each slice costs its worker CPU, and 256 slots run 256 of them. A count, not a
    timing: a busy machine can only make the slices fewer. 3 s of silence: 0.1+0.2+0.4+0.8+1 s, 5 slices
    before the exit (a cap of 0.4 s would make 8)."""
    ticks: list[float] = []
    spec = make_spec(tmp_path, "sleep 3", poll_interval=0.1)
    outcome = TrialRunner(spec, on_tick=lambda: ticks.append(time.monotonic())).run()
    assert outcome.reason == "exited" and outcome.exit_code == 0
    assert 1 <= len(ticks) <= 6, ticks


def test_timeout_kills_the_trial(tmp_path: Path) -> None:
    outcome, _ = run(make_spec(tmp_path, "sleep 300", timeout=0.5))
    assert (outcome.reason, outcome.stop_reason, outcome.signal) == ("timeout", "timeout", "SIGTERM")
    assert outcome.message == "timed out after 0.5 s (maxTrialDuration): SIGTERM"


def test_stop_kills_the_trial_and_its_children(tmp_path: Path, isolation: str) -> None:
    runner = TrialRunner(make_spec(tmp_path, "sleep 300 & echo $! > child.pid; sleep 300; wait"))
    leader = runner.start()
    assert json.loads((tmp_path / PGID_FILE).read_text())["pgid"] == leader
    child = read_pid(tmp_path / "child.pid")
    stopper = threading.Thread(target=lambda: (runner.stop("early_stopped"), runner.stop("again")))
    stopper.start()
    outcome = runner.wait()
    stopper.join()
    assert (outcome.reason, outcome.stop_reason) == ("stopped", "early_stopped")
    assert outcome.message == "stopped (early_stopped): SIGTERM"
    assert wait_for(lambda: not alive(leader) and not alive(child))
    assert not (tmp_path / PGID_FILE).exists()


def test_stop_sends_sigterm_to_every_process_of_the_group(tmp_path: Path, isolation: str) -> None:
    """A child of the trial gets the SIGTERM too (it may save a checkpoint): its handler writes a file. With
    SIGTERM to the leader alone the child would only get the SIGKILL at the end, and write nothing."""
    (tmp_path / "child.py").write_text(
        "import os, signal, sys, time\n"
        "def on_term(*_):\n"
        "    open('child.term', 'w').write(str(os.getpid()))\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, on_term)\n"
        "open('child.pid', 'w').write(str(os.getpid()))\n"
        "time.sleep(300)\n")
    runner = TrialRunner(make_spec(tmp_path, f"{sys.executable} child.py & wait", grace=1.0))
    runner.start()
    child = read_pid(tmp_path / "child.pid")
    runner.stop("user_canceled")
    outcome = runner.wait()
    assert outcome.reason == "stopped"
    assert (tmp_path / "child.term").exists(), "the trial's child never got SIGTERM"
    assert int((tmp_path / "child.term").read_text()) == child
    assert not alive(child)


def test_a_trial_ignoring_sigterm_is_killed_after_grace(tmp_path: Path) -> None:
    runner = TrialRunner(make_spec(tmp_path, "trap '' TERM; echo ready > ready; sleep 300", grace=0.5))
    leader = runner.start()
    assert wait_for(lambda: (tmp_path / "ready").exists())
    runner.stop("user_canceled")
    outcome = runner.wait()
    assert (outcome.reason, outcome.signal, outcome.exit_code) == ("stopped", "SIGKILL", None)
    assert outcome.message == "stopped (user_canceled): killed by SIGKILL after ignoring SIGTERM for 0.5 s"
    assert not alive(leader)


def test_background_children_do_not_outlive_a_trial_that_exits(tmp_path: Path, isolation: str) -> None:
    outcome, _ = run(make_spec(tmp_path, "sleep 300 & echo $! > child.pid; exit 0"))
    assert outcome.message == "exited with 0"
    child = int((tmp_path / "child.pid").read_text())
    assert wait_for(lambda: not alive(child))
    assert "killed the processes left in group" in (tmp_path / "trial.log").read_text()


SUPERVISOR = """
import os, sys
from pathlib import Path
from hpoqueue.worker.runner import RunSpec, TrialRunner
d = Path(sys.argv[1])
TrialRunner(RunSpec("sleep 300 & echo $! > child.pid; sleep 300", d, dict(os.environ), d / "out", d / "err",
                    d / "metrics", d / "trial.log")).run()
"""


def test_a_killed_worker_takes_its_trial_along_and_the_sweep_kills_the_rest(tmp_path: Path) -> None:
    worker = subprocess.Popen([sys.executable, "-c", SUPERVISOR, str(tmp_path)])
    try:
        child = read_pid(tmp_path / "child.pid")
        leader = read_leader(tmp_path)
        assert kill_stale_groups(tmp_path) == []  # its runner is alive: not stale
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        assert wait_for(lambda: not alive(leader))  # PR_SET_PDEATHSIG
        assert alive(child)  # a grandchild survives the worker's death ...
        assert kill_stale_groups(tmp_path) == [leader]  # ... until the sweep
        assert wait_for(lambda: not alive(child))
        assert not (tmp_path / PGID_FILE).exists()
    finally:
        worker.kill()
        worker.wait()


PLAIN_SUPERVISOR = """
import os, sys
from pathlib import Path
from hpoqueue.worker.runner import RunSpec, TrialRunner
d = Path(sys.argv[1])
TrialRunner(RunSpec("sleep 300", d, dict(os.environ), d / "out", d / "err", d / "metrics", d / "trial.log")).run()
"""


def test_a_command_without_shell_syntax_runs_with_no_shell_between_and_dies_with_its_worker(tmp_path: Path) -> None:
    worker = subprocess.Popen([sys.executable, "-c", PLAIN_SUPERVISOR, str(tmp_path)])
    try:
        leader = read_leader(tmp_path)
        assert wait_for(lambda: Path(f"/proc/{leader}/comm").read_text().strip() == "sleep")  # no bash
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        assert wait_for(lambda: not alive(leader))  # PR_SET_PDEATHSIG, set before the exec
    finally:
        worker.kill()
        worker.wait()


@pytest.mark.parametrize("command", ["sh hello.sh 7", "./hello.sh 7", "X=7; ./hello.sh $X", "./hello.sh '7'"])
def test_relative_programs_and_shell_syntax_run_as_bash_would(tmp_path: Path, command: str) -> None:
    script = tmp_path / "hello.sh"
    script.write_text("#!/bin/sh\necho \"loss=$1\"\n")
    script.chmod(0o755)
    outcome, _ = run(make_spec(tmp_path, command))
    assert outcome.message == "exited with 0"
    assert (tmp_path / "trial.stdout").read_text() == "loss=7\n"


def test_a_trial_that_exited_before_its_supervision_began_is_not_waited_for(tmp_path: Path) -> None:
    """A trial that is over by the time the supervisor first looks (a quick failure, `true`) is reported at
    once, not after a slice: the next trial waits for that report. A 60 s slice makes a wait show."""
    runner = TrialRunner(make_spec(tmp_path, "true", poll_interval=60, quiet_interval=60, heartbeat_interval=60))
    pid = runner.start()
    assert wait_for(lambda: not alive(pid)), "the trial never exited"
    waited = threading.Thread(target=runner.wait, daemon=True)
    waited.start()
    waited.join(30)  # a bound: the wait() this test is about would take 60 s
    assert not waited.is_alive(), "wait() slept a slice after the trial had exited"
