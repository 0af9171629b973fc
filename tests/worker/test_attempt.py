"""The worker side of one attempt against a real Redis, without Celery: claim once, honour an early stop,
relay metrics and the end in order."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from hpoqueue.broker import keys
from hpoqueue.broker.client import connect
from hpoqueue.broker.embedded import EmbeddedRedis, free_port, ping
from hpoqueue.broker.protocol import Channel, TrialSpec
from hpoqueue.worker.attempt import execute_attempt
from hpoqueue.worker.gpu_slots import GpuSlots

TRIAL = "import pathlib; pathlib.Path('ran').touch(); print('loss=0.5'); print('loss=0.25')"


def _spec(tmp_path: Path, exp_id: str) -> TrialSpec:
    (tmp_path / "trial.py").write_text(TRIAL)
    return TrialSpec(exp_id=exp_id, trial_id=f"{exp_id}-1", seq=1, attempt=1, params={"x": 1},
                     command=f"{sys.executable} trial.py", code_dir=str(tmp_path), work_dir=str(tmp_path / "exp"),
                     metric_name="loss")


def _events(url: str, exp_id: str) -> list[dict]:
    client = redis.Redis.from_url(url)
    return [json.loads(fields[b"e"]) for _id, fields in client.xrange(keys.events(exp_id))]


def _run(spec: TrialSpec, url: str) -> str:
    return execute_attempt(spec.to_dict(), queue="cpu", hostname="test", broker_url=url)


def test_an_attempt_runs_once_and_reports_started_metrics_finished(tmp_path: Path, redis_url: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPOQUEUE_RUN_DIR", str(tmp_path / "running"))
    spec = _spec(tmp_path, "wk1")
    assert _run(spec, redis_url) == "exited with 0"
    assert _run(spec, redis_url) == "duplicate delivery ignored"
    events = _events(redis_url, "wk1")
    assert [e["type"] for e in events if e["type"] != "log"] == ["started", "metric", "metric", "finished"]
    assert [e["value"] for e in events if e["type"] == "metric"] == [0.5, 0.25]
    assert [e["step"] for e in events if e["type"] == "metric"] == [0, 1]
    assert Channel(connect(redis_url), "wk1").heartbeats() == {}  # ended with the attempt


def test_a_stop_asked_before_the_attempt_started_keeps_the_command_from_running(
        tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPOQUEUE_RUN_DIR", str(tmp_path / "running"))
    spec = _spec(tmp_path, "wk2")
    Channel(connect(redis_url), "wk2").stop(spec.attempt_id, "user_canceled")
    assert _run(spec, redis_url) == "stopped before start"
    [event] = _events(redis_url, "wk2")
    assert (event["type"], event["reason"], event["stop_reason"]) == ("finished", "stopped", "user_canceled")
    assert not (tmp_path / "ran").exists()


def test_events_sent_together_keep_the_time_they_happened(tmp_path: Path, redis_url: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPOQUEUE_RUN_DIR", str(tmp_path / "running"))
    # shorter than a supervision slice: its start and end leave the worker in one round trip
    spec = TrialSpec(exp_id="wk3", trial_id="wk3-1", seq=1, attempt=1, params={}, command="sleep 0.05",
                     code_dir=str(tmp_path), work_dir=str(tmp_path / "exp"))
    assert _run(spec, redis_url) == "exited with 0"
    started, finished = [e for e in _events(redis_url, "wk3") if e["type"] != "log"]
    assert (started["type"], finished["type"]) == ("started", "finished")
    # each stamped when it happened, not when sent (then both would carry one time); no duration is assumed:
    # on a loaded machine the start may be stamped most of the 0.05 s after the command began
    assert finished["ts"] > started["ts"]


def test_a_stop_asked_while_the_trial_runs_ends_it(tmp_path: Path, redis_url: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPOQUEUE_RUN_DIR", str(tmp_path / "running"))
    spec = TrialSpec(exp_id="wk4", trial_id="wk4-1", seq=1, attempt=1, params={}, command="sleep 300",
                     code_dir=str(tmp_path), work_dir=str(tmp_path / "exp"))
    assert _stopped_once_started(lambda: _run(spec, redis_url), spec, redis_url) == ["stopped (user_canceled): SIGTERM"]
    finished = _events(redis_url, "wk4")[-1]
    assert (finished["type"], finished["reason"], finished["stop_reason"]) == ("finished", "stopped", "user_canceled")


def test_a_stop_taken_with_a_heartbeat_ends_the_trial(tmp_path: Path, redis_url: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The heartbeat, the GPU lease's renewal and the check for a stop request share one round trip: a stop
    request the heartbeat took must stop the trial (here nothing else looks for one)."""
    monkeypatch.setenv("HPOQUEUE_RUN_DIR", str(tmp_path / "running"))
    monkeypatch.setenv("HPOQUEUE_FAKE_GPUS", "1")
    monkeypatch.setattr("hpoqueue.worker.attempt.STOP_CHECK_EVERY", 1e6)  # the silent slices never look
    spec = _gpu_spec(tmp_path, "wk10", 1, "sleep 300", heartbeat_interval=0.2)
    assert _stopped_once_started(lambda: _run_on_gpu0(spec, redis_url), spec, redis_url) == [
        "stopped (user_canceled): SIGTERM"]
    assert GpuSlots(connect(redis_url), _gpu_spec(tmp_path, "wk10", 2, "true"), "gpu0", "other").try_acquire() \
        == (True, "")  # and its slot was given back


def test_a_gpu_slot_is_free_before_the_trial_is_reported_finished(tmp_path: Path, redis_url: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The scheduler dispatches the next trial for a GPU the moment it reads `finished`: the slot must be
    back by then, or that trial waits for a slot that is about to free."""
    monkeypatch.setenv("HPOQUEUE_RUN_DIR", str(tmp_path / "running"))
    monkeypatch.setenv("HPOQUEUE_FAKE_GPUS", "1")
    spec = TrialSpec(exp_id="wk5", trial_id="wk5-1", seq=1, attempt=1, params={}, command="true",
                     code_dir=str(tmp_path), work_dir=str(tmp_path / "exp"), gpu_number=1, gpu_cap=1)
    commands: list[str] = []
    # MONITOR (on once the context is entered) lists the commands in the order the server ran them
    with redis.Redis.from_url(redis_url).monitor() as monitor:

        def collect() -> None:
            for entry in monitor.listen():
                commands.append(entry["command"])
                if entry["command"].startswith("XADD") and '"finished"' in entry["command"]:
                    return

        collector = threading.Thread(target=collect, daemon=True)
        collector.start()
        assert execute_attempt(spec.to_dict(), queue="gpu0", hostname="test", broker_url=redis_url) == \
            "exited with 0"
        collector.join(10)
    taken = [i for i, c in enumerate(commands) if c.startswith("EVALSHA") and "wk5-1-a1" in c]
    given_back = [i for i, c in enumerate(commands) if c.startswith("ZREM") and "wk5-1-a1" in c]
    assert taken and given_back, commands  # the slot was leased, and released before `finished` was sent
    assert commands[-1].startswith("XADD") and '"finished"' in commands[-1]


@pytest.mark.parametrize("sees", [True, False])
def test_output_is_relayed_only_when_the_submit_machine_cannot_see_it(tmp_path: Path, redis_url: str,
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      sees: bool) -> None:
    from dataclasses import replace

    from hpoqueue.worker.log_relay import scheduler_token

    monkeypatch.setenv("HPOQUEUE_RUN_DIR", str(tmp_path / "running"))
    spec = _spec(tmp_path, f"wk-relay-{sees}")
    (tmp_path / "exp").mkdir()
    token = scheduler_token(tmp_path / "exp")
    assert _run(replace(spec, log_token=token if sees else "the submit machine's"), redis_url) == "exited with 0"
    relayed = "".join(e["data"] for e in _events(redis_url, spec.exp_id)
                      if e["type"] == "log" and e["stream"] == "stdout")
    assert relayed == ("" if sees else "loss=0.5\nloss=0.25\n")


def test_a_trial_that_cannot_start_ends_failed_and_its_log_says_why(tmp_path: Path, redis_url: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    monkeypatch.setenv("HPOQUEUE_RUN_DIR", str(tmp_path / "running"))
    spec = replace(_spec(tmp_path, "wk-nocode"), code_dir=str(tmp_path / "not-on-this-box"))
    _run(spec, redis_url)
    events = _events(redis_url, spec.exp_id)
    [finished] = [e for e in events if e["type"] == "finished"]
    assert finished["reason"] == "spawn_failed"
    assert finished["message"] == f"could not start: working directory {tmp_path / 'not-on-this-box'} does not exist"
    relayed = "".join(e["data"] for e in events if e["type"] == "log" and e["stream"] == "log")
    assert "does not exist" in relayed


#: Writes what the trial reads from each channel: the variable, the file, the API (which reads the variable
#: first), and the API again once the variable is gone (it then reads the file).
CHANNELS_TRIAL = '''
import json, os
import hpoqueue.trial as nni

seen = {"variable": json.loads(os.environ["HPOQUEUE_PARAMETERS"]), "api": nni.get_next_parameter()}
with open(os.environ["HPOQUEUE_PARAMETER_FILE"], encoding="utf-8") as fh:
    seen["file"] = json.load(fh)
del os.environ["HPOQUEUE_PARAMETERS"]
seen["api_from_file"] = nni.get_next_parameter()
with open("seen.json", "w") as fh:
    json.dump(seen, fh)
'''


def test_the_trial_reads_its_parameters_from_every_channel(tmp_path: Path, redis_url: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPOQUEUE_RUN_DIR", str(tmp_path / "running"))
    (tmp_path / "trial.py").write_text(CHANNELS_TRIAL)
    params = {"x": 0.25, "n": 3, "name": "a b'$(touch pwned)\"", "opt": {"_name": "adam", "beta": 0.9}}
    spec = TrialSpec(exp_id="wk6", trial_id="wk6-1", seq=1, attempt=1, params=params,
                     command=f"{sys.executable} trial.py", code_dir=str(tmp_path), work_dir=str(tmp_path / "exp"))
    assert _run(spec, redis_url) == "exited with 0"
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen == {"variable": params, "api": params, "file": params, "api_from_file": params}
    assert not (tmp_path / "pwned").exists()


def test_the_heartbeat_count_grows_all_through_a_long_attempt(tmp_path: Path, redis_url: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The scheduler takes an attempt whose heartbeat count stops changing for heartbeatTimeout as LOST:
    the count must keep growing while the trial runs, not only at its start."""
    monkeypatch.setenv("HPOQUEUE_RUN_DIR", str(tmp_path / "running"))
    spec = TrialSpec(exp_id="wk7", trial_id="wk7-1", seq=1, attempt=1, params={}, command="sleep 1.5",
                     code_dir=str(tmp_path), work_dir=str(tmp_path / "exp"), heartbeat_interval=0.1)
    channel = Channel(connect(redis_url), "wk7")
    worker = threading.Thread(target=_run, args=(spec, redis_url))
    worker.start()
    counts: list[int] = []
    while worker.is_alive():
        count = channel.heartbeats().get(spec.attempt_id)
        if count is not None and (not counts or count != counts[-1]):
            counts.append(count)
        time.sleep(0.05)
    worker.join()
    assert len(counts) >= 4, counts  # a beat every 0.1 s for 1.5 s, seen changing at least 4 times
    assert counts == sorted(counts), counts


def _gpu_spec(tmp_path: Path, exp_id: str, seq: int, command: str, **fields: object) -> TrialSpec:
    return TrialSpec(exp_id=exp_id, trial_id=f"{exp_id}-{seq}", seq=seq, attempt=1, params={}, command=command,
                     code_dir=str(tmp_path), work_dir=str(tmp_path / "exp"), gpu_number=1, gpu_cap=1,
                     **fields)  # type: ignore[arg-type]


def test_an_attempt_waiting_for_a_gpu_slot_keeps_heartbeating(tmp_path: Path, redis_url: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A wait for a busy GPU may be longer than heartbeatTimeout: the waiting attempt must keep beating, or
    the scheduler takes its worker for lost. It runs once the slot frees."""
    monkeypatch.setenv("HPOQUEUE_RUN_DIR", str(tmp_path / "running"))
    monkeypatch.setenv("HPOQUEUE_FAKE_GPUS", "1")
    client = connect(redis_url)
    holder = GpuSlots(client, _gpu_spec(tmp_path, "wk8", 9, "true"), "gpu0", "other")
    assert holder.try_acquire() == (True, "")
    spec = _gpu_spec(tmp_path, "wk8", 1, "true")
    result: list[str] = []
    worker = threading.Thread(target=lambda: result.append(
        execute_attempt(spec.to_dict(), queue="gpu0", hostname="test", broker_url=redis_url)))
    worker.start()
    channel = Channel(client, "wk8")
    counts: list[int] = []
    deadline = time.monotonic() + 15
    while len(counts) < 4 and time.monotonic() < deadline:  # a beat every 0.5 s while waiting
        count = channel.heartbeats().get(spec.attempt_id)
        if count is not None and (not counts or count != counts[-1]):
            counts.append(count)
        time.sleep(0.05)
    assert [e["type"] for e in _events(redis_url, "wk8")] == ["waiting"]  # still waiting, and beating
    holder.release()
    worker.join(30)
    assert len(counts) == 4 and counts == sorted(counts), counts
    assert result == ["exited with 0"]


def test_a_running_trial_keeps_its_gpu_slot_past_the_lease_ttl(tmp_path: Path, redis_url: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The heartbeat renews the GPU lease: a trial running for longer than HPOQUEUE_GPU_LEASE_TTL keeps its
    slot, so no other attempt gets the GPU over the cap meanwhile."""
    monkeypatch.setenv("HPOQUEUE_RUN_DIR", str(tmp_path / "running"))
    monkeypatch.setenv("HPOQUEUE_FAKE_GPUS", "1")
    monkeypatch.setenv("HPOQUEUE_GPU_LEASE_TTL", "1.2")
    client = connect(redis_url)
    spec = _gpu_spec(tmp_path, "wk9", 1, "sleep 3", heartbeat_interval=0.2)
    worker = threading.Thread(target=_run_on_gpu0, args=(spec, redis_url))
    worker.start()
    other = GpuSlots(client, _gpu_spec(tmp_path, "wk9", 2, "true"), "gpu0", "other")
    deadline = time.monotonic() + 60
    while not any(e["type"] == "started" for e in _events(redis_url, "wk9")) and time.monotonic() < deadline:
        time.sleep(0.05)
    refusals, taken, ended = 0, False, False
    while worker.is_alive():
        taken, why = other.try_acquire()
        if taken:  # legitimate only once the trial ended: its slot goes back with `finished`, atomically
            other.release()
            ended = any(e["type"] == "finished" for e in _events(redis_url, "wk9"))
            break
        refusals += 1
        time.sleep(0.1)
    worker.join()
    assert not taken or ended, f"another attempt got gpu0 while the trial ran (after {refusals} refusals)"
    assert refusals >= 15  # asked all through the 3 s run, well past the 1.2 s TTL


def _run_on_gpu0(spec: TrialSpec, url: str) -> str:
    return execute_attempt(spec.to_dict(), queue="gpu0", hostname="test", broker_url=url)


def test_a_gpu_trial_that_ends_while_the_broker_is_away_still_reports(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The GPU slot is given back before `finished` is sent. With the broker away that give-back fails, and
    the result must still reach the broker once it is back (the worker keeps sending for a minute)."""
    monkeypatch.setenv("HPOQUEUE_RUN_DIR", str(tmp_path / "running"))
    monkeypatch.setenv("HPOQUEUE_FAKE_GPUS", "1")
    port = free_port()
    server = EmbeddedRedis(tmp_path / "broker", port=port)
    url = server.start()
    done = tmp_path / "done"
    spec = _gpu_spec(tmp_path, "wk10", 1, f"sleep 1 && touch {done}")
    result: list[str] = []
    worker = threading.Thread(target=lambda: result.append(_run_on_gpu0(spec, url)))
    try:
        worker.start()
        deadline = time.monotonic() + 60
        while not any(e["type"] == "started" for e in _events(url, "wk10")) and time.monotonic() < deadline:
            time.sleep(0.05)
        server.stop()
        while not done.exists() and time.monotonic() < deadline:  # the trial ends with the broker away
            time.sleep(0.05)
        time.sleep(1)  # and the worker tries to give its slot back and to send `finished` meanwhile
        server = EmbeddedRedis(tmp_path / "broker", port=port)  # the same data, port and password
        assert server.start() == url and ping(url)
        worker.join(90)
        assert result == ["exited with 0"]
        [finished] = [e for e in _events(url, "wk10") if e["type"] == "finished"]
        assert finished["exit_code"] == 0
    finally:
        worker.join(90)
        server.stop()


def _stopped_once_started(run: Callable[[], str], spec: TrialSpec, redis_url: str) -> list[str]:
    """What `run` (an attempt of `spec`, in a thread) returned after a user's stop request sent once it started."""
    result: list[str] = []
    worker = threading.Thread(target=lambda: result.append(run()))
    worker.start()
    deadline = time.monotonic() + 30
    while not any(e["type"] == "started" for e in _events(redis_url, spec.exp_id)) and time.monotonic() < deadline:
        time.sleep(0.05)
    Channel(connect(redis_url), spec.exp_id).stop(spec.attempt_id, "user_canceled")
    worker.join(30)
    return result
