"""Hosts files of `hpoqueue workers up`: defaults merged into entries, NNI field names, one-line errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hpoqueue.cli.commands import main
from hpoqueue.config.experiment_config import config_from_dict
from hpoqueue.errors import ConfigError
from hpoqueue.remote.box import agent_command
from hpoqueue.remote.experiment import check_machines
from hpoqueue.remote.hosts import load_hosts

EXAMPLE = Path(__file__).parents[2] / "workers" / "hosts.example.yml"


def test_the_example_hosts_file_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "id_ed25519").write_text("key")  # the example names ~/.ssh/id_ed25519
    monkeypatch.setenv("HOME", str(tmp_path))
    hosts = load_hosts(EXAMPLE)
    assert hosts.broker == "redis://:password@head.example.org:6379/0"
    first, second, third = hosts.machines
    assert (first.user, first.port, first.python_path) == ("alice", 22, "/opt/hpoqueue/venv/bin")
    assert first.ssh_key_file == tmp_path / ".ssh" / "id_ed25519"
    assert (second.gpu_indices, second.max_trial_number_per_gpu, second.use_active_gpu) == ((0, 1), 2, True)
    assert (third.user, third.port, third.password_env) == ("bob", 2222, "BOB_SSH_PASSWORD")


@pytest.mark.parametrize(("text", "expected"), [
    ("hosts: []\n", "hosts: needs a non-empty list of boxes"),
    ("hosts: [{host: a}]\n", "hosts[0].user: is required"),
    ("hosts: [{host: a, user: b, port: 0}]\n", "hosts[0].port: must be between 1 and 65535"),
    ("host: [a]\n", "unknown field 'host'"),
    ("defaults: {user: u, sshKeyFile: /nonexistent/key}\nhosts: [{host: a}]\n",
     "hosts[0].sshKeyFile: file not found: /nonexistent/key"),
])
def test_mistakes_name_the_field(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "hosts.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_hosts(path)
    assert str(info.value).startswith(f"{path}: ") and expected in str(info.value)


def test_the_remote_command_quotes_every_argument(tmp_path: Path) -> None:
    bin_dir = tmp_path / "my venv; touch pwned" / "bin"  # pythonPath: a directory, as in NNI
    bin_dir.mkdir(parents=True)
    (bin_dir / "python3").write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    (bin_dir / "python3").chmod(0o755)
    command = agent_command(str(bin_dir), "up", ["--experiment", "$(touch pwned) `touch pwned` 'x\""])
    run = subprocess.run(["sh", "-c", command], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert run.stdout.splitlines() == ["-m", "hpoqueue.remote.agent", "up", "--experiment",
                                       "$(touch pwned) `touch pwned` 'x\""]
    assert not (tmp_path / "pwned").exists()


def test_a_machine_listed_twice_is_refused_before_any_connection(tmp_path: Path) -> None:
    machine = {"host": "10.9.9.9", "user": "u", "port": 1}  # nothing answers there: no connection is tried
    config = config_from_dict({"trialCommand": "true", "trialConcurrency": 1, "searchSpace": {},
                               "trainingService": {"platform": "remote", "machineList": [machine, machine]}},
                              source="exp.yml")
    with pytest.raises(ConfigError) as info:
        check_machines(config)
    assert str(info.value) == ("exp.yml: trainingService.machineList[1]: repeats u@10.9.9.9:1 of machineList[0] "
                               "(one entry per box: list all its GPUs in that entry's gpuIndices)")


@pytest.mark.parametrize(("argv", "expected"), [
    (["workers", "up"], "`hpoqueue workers up` needs a hosts file"),
    (["workers", "start", "hosts.yml"], "acts on this box and takes no hosts file (use up for the boxes of hosts.yml)"),
    (["workers", "up", "hosts.yml", "--gpus", "0"], "--gpus does not go with `hpoqueue workers up HOSTS.yml`"),
    (["workers", "start", "--accept-new-host-keys"], "--accept-new-host-keys does not go with `hpoqueue workers start`"
     ),
    (["workers", "status", "hosts.yml", "--install"], "--install goes with `hpoqueue workers up HOSTS.yml`"),
])
def test_workers_actions_and_hosts_files_go_together(argv: list[str], expected: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert expected in capsys.readouterr().err
