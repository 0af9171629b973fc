"""`hpoqueue workers up|status|down HOSTS.yml` against real sshd boxes on loopback."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from hpoqueue.broker.capacity import live_workers
from hpoqueue.broker.client import connect
from hpoqueue.broker.embedded import free_port
from tests.remote.conftest import BOX2_PASSWORD, Box, cli_env, hpoqueue, keygen

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def hosts_file(tmp_path: Path, broker: str, entries: list[dict]) -> Path:
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump({"broker": broker, "hosts": entries}))
    return path


def test_up_status_down(tmp_path: Path, boxes: tuple[Box, Box], user_key: Path, redis_url: str) -> None:
    box1, box2 = boxes
    hosts = hosts_file(tmp_path, redis_url, [box1.machine(user_key, gpuIndices=[0, 1], maxTrialNumberPerGpu=2),
                                             box2.machine(user_key)])
    known = tmp_path / "known_hosts"
    refused = hpoqueue("workers", "up", str(hosts), "--known-hosts", str(known))
    assert refused.returncode == 2
    assert refused.stderr.count("unknown host key") == 2 and "--accept-new-host-keys" in refused.stderr
    assert not box1.worker_pids() and not box2.worker_pids()

    up = hpoqueue("workers", "up", str(hosts), "--known-hosts", str(known), "--accept-new-host-keys")
    assert up.returncode == 0, up.stderr
    assert known.read_text().count("ssh-ed25519") == 2  # recorded: the next call needs no flag
    rows = {line.split()[0]: line for line in up.stdout.splitlines() if "127.0.0.1" in line}
    assert "started gpu0, gpu1" in rows[box1.machine(user_key)["user"] + f"@127.0.0.1:{box1.port}"]
    assert "started gpu0" in rows[box2.machine(user_key)["user"] + f"@127.0.0.1:{box2.port}"]
    first = sorted(box1.worker_pids() + box2.worker_pids())
    assert len(first) == 3  # they outlived the SSH session that started them

    client = connect(redis_url)
    deadline = time.monotonic() + 30
    while {(w.host, w.concurrency) for w in live_workers(client)} != {("box1", 2), ("box2", 1)}:
        assert time.monotonic() < deadline, [w for w in live_workers(client)]
        time.sleep(0.2)  # the workers reached the broker, each on its box, with the cap of its entry

    again = hpoqueue("workers", "up", str(hosts), "--known-hosts", str(known))
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already running") == 2
    assert sorted(box1.worker_pids() + box2.worker_pids()) == first

    status = hpoqueue("workers", "status", str(hosts), "--known-hosts", str(known))
    assert status.returncode == 0, status.stderr
    assert "gpu0, gpu1" in status.stdout and "on box1" in status.stdout and "on box2" in status.stdout

    down = hpoqueue("workers", "down", str(hosts), "--known-hosts", str(known))
    assert down.returncode == 0, down.stderr
    assert "stopped gpu0, gpu1" in down.stdout
    assert not box1.worker_pids() and not box2.worker_pids()
    status = hpoqueue("workers", "status", str(hosts), "--known-hosts", str(known))
    assert status.stdout.count(" none ") >= 2


def one_error(run, box_port: int) -> str:
    assert run.returncode == 2, run
    errors = [line for line in run.stderr.splitlines() if line.startswith("hpoqueue: error:")]
    assert len(errors) == 1, run.stderr
    assert f"127.0.0.1:{box_port}" in errors[0]
    assert "Traceback" not in run.stderr
    return errors[0]


def test_failing_boxes_are_one_line_each_and_the_others_go_on(
        tmp_path: Path, boxes: tuple[Box, Box], user_key: Path, known_hosts: Path, redis_url: str) -> None:
    box1, box2 = boxes
    wrong_key = keygen(tmp_path / "wrong_key")
    bare = tmp_path / "bare"  # a Python without hpoqueue
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    cases = {
        "authentication failed": box1.machine(wrong_key),
        "cannot connect: connection refused": {**box1.machine(user_key), "port": free_port()},
        "has no hpoqueue": box1.machine(user_key, pythonPath=str(bare / "bin" / "python")),
        "passwordEnv names $HPOQUEUE_TEST_UNSET, which is not set": {
            **{k: v for k, v in box1.machine(user_key).items() if k != "sshKeyFile"},
            "passwordEnv": "HPOQUEUE_TEST_UNSET"},
    }
    for expected, entry in cases.items():
        hosts = hosts_file(tmp_path, redis_url, [entry, box2.machine(user_key)])
        run = hpoqueue("workers", "status", str(hosts), "--known-hosts", str(known_hosts))
        line = one_error(run, entry["port"])
        assert expected in line, line
        assert "on box2" in run.stdout  # the good box was served all the same

    changed = tmp_path / "changed_known_hosts"
    changed.write_text(box1.known_hosts_line().replace(box1.host_key, box2.host_key) + box2.known_hosts_line())
    hosts = hosts_file(tmp_path, redis_url, [box1.machine(user_key), box2.machine(user_key)])
    run = hpoqueue("workers", "status", str(hosts), "--known-hosts", str(changed), "--accept-new-host-keys")
    line = one_error(run, box1.port)
    assert "host key changed" in line and "ssh-keygen -R" in line
    assert changed.read_text().count("\n") == 2  # a changed key is never recorded


def test_bad_hosts_file_is_one_line(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts.yml"
    hosts.write_text("hosts:\n  - {host: a, user: b, gpuIndex: [0]}\n")
    run = hpoqueue("workers", "up", str(hosts), env=cli_env(HPOQUEUE_BROKER_URL="redis://127.0.0.1:1/0"))
    assert run.returncode == 2
    assert run.stderr.strip() == (f"hpoqueue: error: {hosts}: hosts[0].gpuIndex: unknown field 'gpuIndex' "
                                  "(did you mean 'gpuIndices'?)")


def test_a_broker_the_boxes_cannot_reach_is_named_per_box(
        tmp_path: Path, boxes: tuple[Box, Box], user_key: Path, known_hosts: Path) -> None:
    box1, box2 = boxes
    hosts = hosts_file(tmp_path, f"redis://:pw@127.0.0.1:{free_port()}/0", [box1.machine(user_key)])
    run = hpoqueue("workers", "up", str(hosts), "--known-hosts", str(known_hosts))
    line = one_error(run, box1.port)
    assert "cannot reach the broker at redis://:***@127.0.0.1:" in line and ":pw@" not in run.stderr
    assert not box1.worker_pids()


def test_the_ssh_agent_logs_in(tmp_path: Path, boxes: tuple[Box, Box], user_key: Path, known_hosts: Path,
                               redis_url: str) -> None:
    if shutil.which("ssh-agent") is None or shutil.which("ssh-add") is None:
        pytest.skip("no ssh-agent (install openssh-client)")
    box1, _box2 = boxes
    agent = subprocess.run(["ssh-agent", "-s", "-a", str(tmp_path / "agent.sock")], capture_output=True, text=True,
                           check=True)
    pid = int(re.search(r"SSH_AGENT_PID=(\d+)", agent.stdout)[1])
    try:
        env = cli_env(SSH_AUTH_SOCK=str(tmp_path / "agent.sock"), HOME=str(tmp_path))  # no ~/.ssh keys either
        subprocess.run(["ssh-add", "-q", str(user_key)], env=env, check=True, capture_output=True)
        entry = {k: v for k, v in box1.machine(user_key).items() if k != "sshKeyFile"}
        hosts = hosts_file(tmp_path, redis_url, [entry])
        run = hpoqueue("workers", "status", str(hosts), "--known-hosts", str(known_hosts), env=env)
        assert run.returncode == 0, run.stderr
        assert "on box1" in run.stdout
    finally:
        os.kill(pid, signal.SIGTERM)


def test_passwords_from_a_variable_or_written_in_the_file(tmp_path: Path, boxes: tuple[Box, Box], user_key: Path,
                                                          known_hosts: Path, redis_url: str) -> None:
    _box1, box2 = boxes
    entry = {k: v for k, v in box2.machine(user_key).items() if k != "sshKeyFile"}
    env = cli_env(BOX2_PW=BOX2_PASSWORD, HOME=str(tmp_path))  # no agent, no ~/.ssh keys: the password it is

    def status(**fields: str) -> subprocess.CompletedProcess[str]:
        hosts = hosts_file(tmp_path, redis_url, [{**entry, **fields}])
        return hpoqueue("workers", "status", str(hosts), "--known-hosts", str(known_hosts), env=env)

    from_env = status(passwordEnv="BOX2_PW")
    assert from_env.returncode == 0, from_env.stderr
    assert "on box2" in from_env.stdout and "warning" not in from_env.stderr
    written = status(password=BOX2_PASSWORD)
    assert written.returncode == 0, written.stderr
    assert "on box2" in written.stdout and "the SSH password is written in the config" in written.stderr
    assert "authentication failed with the password" in one_error(status(password="nope"), box2.port)
