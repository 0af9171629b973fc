"""Issue 17 #4 and #12: the embedded Redis requires a generated password, trials never see the broker's
or the database's credentials, a broker without a password is named at submit and at worker start,
experiment files are their owner's alone, and an ended experiment's Redis keys expire."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from hpoqueue.broker.embedded import PASSWORD_FILE, EmbeddedRedis, free_port, ping, redis_server_binary
from hpoqueue.broker.keys import ENDED_TTL
from hpoqueue.states import TrialState
from tests.chaos.conftest import ChaosProject
from tests.e2e.conftest import wait_for

pytestmark = [pytest.mark.e2e]

ENV_TRIAL = '''
import json, os
import hpoqueue.trial as nni
nni.get_next_parameter()
with open(os.path.join(os.environ["ECHO_DIR"], nni.get_trial_id() + ".env"), "w") as fh:
    json.dump(dict(os.environ), fh)
nni.report_final_result(1.0)
'''


@pytest.fixture
def chaos(tmp_path: Path) -> Iterator[ChaosProject]:
    project = ChaosProject(tmp_path)
    yield project
    project.cleanup()


def test_the_embedded_redis_refuses_anyone_without_its_password(tmp_path: Path) -> None:
    """What `redis-cli LPUSH cpu '<run_trial message>'` did as any user of the box is refused."""
    server = EmbeddedRedis(tmp_path / "broker")
    server.start()
    try:
        stranger = redis.Redis(host="127.0.0.1", port=server.port, protocol=2)
        with pytest.raises(redis.AuthenticationError):
            stranger.lpush("cpu", json.dumps({"task": "hpoqueue.run_trial"}))
        assert redis.Redis.from_url(server.url).ping()
        password = (tmp_path / "broker" / PASSWORD_FILE).read_text().strip()
        assert len(password) >= 32 and password in server.url
        assert stat.S_IMODE((tmp_path / "broker" / PASSWORD_FILE).stat().st_mode) == 0o600
        assert server.process is not None
        for pid in (server.process.pid,):  # `ps` shows command lines to everyone
            assert password not in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    finally:
        server.stop()
    again = EmbeddedRedis(tmp_path / "broker", port=free_port())  # a resume: the same password
    assert again.url.startswith(f"redis://:{password}@")


def _not_private(root: Path) -> list[str]:
    """Files under `root` that group or others may read, and directories they may enter."""
    found = []
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        if stat.S_IMODE(path.lstat().st_mode) & 0o077:
            found.append(f"{oct(stat.S_IMODE(path.lstat().st_mode))} {path}")
    return found


@pytest.mark.slow
def test_a_local_run_is_private_and_its_trials_see_no_credentials(chaos: ChaosProject) -> None:
    (chaos.root / "env_trial.py").write_text(ENV_TRIAL)
    chaos.env["HPOQUEUE_STORAGE_URL"] = f"sqlite:///{chaos.home / 'hpoqueue.db'}"
    config = chaos.config(trialCommand="python env_trial.py", maxTrialNumber=1, trialConcurrency=1)
    previous = os.umask(0o022)  # as on a usual box: hpoqueue itself must make its files private
    try:
        chaos.cli("submit", str(config), "--quiet", timeout=120, check=True)
    finally:
        os.umask(previous)
    exp_id = chaos.only_experiment()
    [trial] = chaos.storage().trials(exp_id)
    assert trial.state is TrialState.SUCCEEDED
    work_dir = chaos.exp_dir(exp_id)
    password = (work_dir / "broker" / PASSWORD_FILE).read_text().strip()
    env = json.loads((chaos.echo / f"{trial.id}.env").read_text())
    leaks = [k for k, v in env.items() if password in v or "hpoqueue.db" in v and k != "HPOQUEUE_PARAMETER_FILE"]
    assert "HPOQUEUE_BROKER_URL" not in env and "HPOQUEUE_STORAGE_URL" not in env and leaks == [], leaks
    assert list((work_dir / "broker").glob("appendonly*")), list((work_dir / "broker").iterdir())
    assert (work_dir / "trials" / "1" / "attempt-1" / "parameter.json").exists()
    assert _not_private(chaos.home) == []  # the database, logs, parameters, Redis's files, their directories


@pytest.mark.slow
def test_a_broker_without_password_is_named_and_an_ended_experiments_keys_expire(chaos: ChaosProject) -> None:
    port = free_port()
    server = subprocess.Popen([redis_server_binary(), "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                               "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"redis://127.0.0.1:{port}/0"
        wait_for(lambda: ping(url), 10, "the Redis without a password")
        chaos.env["HPOQUEUE_FAKE_GPUS"] = "0"
        started = chaos.cli("workers", "start", "--cpu", "1", "--broker", url, timeout=60, check=True)
        assert f"warning: the broker {url} has no password" in started.stderr, started.stderr
        worker_log = chaos.home / "workers" / "cpu.log"
        wait_for(lambda: worker_log.exists() and "ready." in worker_log.read_text(), 60, "the worker")
        assert "has no password" in worker_log.read_text()
        run = chaos.cli("submit", str(chaos.chaos_config(maxTrialNumber=1, trialConcurrency=1)), "--broker", url,
                        "--quiet", timeout=120, check=True)
        assert f"warning: the broker {url} has no password" in run.stderr, run.stderr
        exp_id = chaos.only_experiment()
        client = redis.Redis.from_url(url)
        keys = [k.decode() for k in client.keys(f"hpoqueue:{exp_id}:*")]
        assert keys, "the experiment left no keys to check"
        assert all(0 < client.ttl(k) <= ENDED_TTL for k in keys), {k: client.ttl(k) for k in keys}
        chaos.cli("workers", "stop", timeout=60, check=True)
    finally:
        server.kill()
        server.wait()
