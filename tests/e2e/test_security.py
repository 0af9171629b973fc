"""Security: pickle refused by workers, password and TLS broker URLs, parameters never reach a shell,
the embedded Redis and Flower listen on 127.0.0.1 only, Flower's basic auth."""

from __future__ import annotations

import base64
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hpoqueue.broker.app import make_app
from hpoqueue.broker.embedded import EmbeddedRedis, free_port, ping, redis_server_binary
from hpoqueue.states import TrialState
from tests.chaos.conftest import ChaosProject
from tests.e2e.conftest import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BASIC_TOKEN = base64.b64encode(b"admin:pw123").decode()
NASTY = ["'; rm -rf ~ #", "$(touch MARKER)", "`touch MARKER2`"]


@pytest.fixture
def chaos(tmp_path: Path) -> Iterator[ChaosProject]:
    """A scratch project whose processes are all killed at the end."""
    project = ChaosProject(tmp_path)
    yield project
    project.cleanup()


class _Evil:
    """Unpickling this creates a marker file: what a pickle message could do on a worker."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple:
        return (open, (self.path, "w"))


def test_a_pickle_message_is_refused_by_the_worker(chaos: ChaosProject, redis_url: str) -> None:
    chaos.worker(redis_url, "one")
    marker = chaos.root / "PICKLE_RAN"
    app = make_app(redis_url)
    with app.producer_or_acquire() as producer:
        producer.publish(pickle.dumps(((_Evil(marker),), {}, {})), exchange="cpu", routing_key="cpu",
                         content_type="application/x-python-serialize", content_encoding="binary",
                         headers={"task": "hpoqueue.run_trial", "id": "evil-1", "lang": "py"},
                         declare=[app.amqp.queues["cpu"]])
    log = chaos.root / "worker-one.log"
    wait_for(lambda: "refusing to deserialize" in log.read_text().lower(), 30, "the worker to refuse it")
    assert not marker.exists()


def _listeners(pid: int) -> set[str]:
    """Local addresses (hex, as in /proc/net/tcp*) of the TCP sockets `pid` listens on."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # 0A = LISTEN
                found.add(cols[1].split(":")[0])
    return found


LOOPBACK = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1 and ::1


def test_the_embedded_redis_listens_on_loopback_only(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "broker")
    server.start()
    try:
        assert server.process is not None
        listeners = _listeners(server.process.pid)
        assert listeners and listeners <= LOOPBACK, listeners
    finally:
        server.stop()


def _redis_server(args: list[str], binary: str | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen([binary or redis_server_binary(), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _run_nasty_experiment(chaos: ChaosProject, broker: str, extra_env: dict[str, str] | None = None) -> None:
    """Trials with shell metacharacters as parameter values get them unchanged, and nothing runs them."""
    fake_home = chaos.root / "fakehome"
    fake_home.mkdir()
    (fake_home / "canary").write_text("still here")
    chaos.env.update({"HOME": str(fake_home), **(extra_env or {})})
    config = chaos.config(maxTrialNumber=len(NASTY), trialConcurrency=2, tuner={"name": "GridSearch"},
                          searchSpace={"text": {"_type": "choice", "_value": NASTY}})
    chaos.cli("submit", str(config), "--broker", broker, "--local-workers", "--quiet", timeout=120, check=True)
    trials = chaos.storage().trials(chaos.only_experiment())
    assert len(trials) == len(NASTY) and all(t.state is TrialState.SUCCEEDED for t in trials), trials
    assert sorted(e["params"]["text"] for e in chaos.echoes().values()) == sorted(NASTY)
    assert (fake_home / "canary").exists()
    assert not list(chaos.root.rglob("MARKER*")) and not list(Path(chaos.home).rglob("MARKER*"))


def test_a_password_protected_broker_works_and_a_wrong_password_is_refused(chaos: ChaosProject) -> None:
    port = free_port()
    server = _redis_server(["--port", str(port), "--requirepass", "s3cretpw"])
    try:
        url = f"redis://:s3cretpw@127.0.0.1:{port}/0"
        wait_for(lambda: ping(url), 10, "the password-protected Redis")
        wrong = chaos.config("wrong.yml")
        run = chaos.cli("submit", str(wrong), "--broker", f"redis://:badpass9@127.0.0.1:{port}/0")
        assert run.code == 2 and len(run.stderr.strip().splitlines()) == 1, run.stderr
        assert "badpass9" not in run.stderr and "cannot reach" in run.stderr
        assert chaos.storage().list_experiments() == []
        _run_nasty_experiment(chaos, url)
        assert "s3cretpw" not in (chaos.root / "config.yml").read_text()
    finally:
        _stop(server)


def _tls_redis() -> str | None:
    """A redis-server that supports TLS, or None."""
    for binary in ("/usr/bin/redis-server", shutil.which("redis-server")):
        if binary and Path(binary).exists():
            out = subprocess.run([binary, "--help"], capture_output=True, text=True).stdout
            version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
            if "tls" in (out + version).lower() or "v=7" in version or "v=6" in version:
                return binary
    return None


def _certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1 signed by it."""
    ca_key, ca, key, csr, cert = (directory / n for n in ("ca.key", "ca.crt", "server.key", "server.csr",
                                                           "server.crt"))
    ext = directory / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "1",
        "-subj", "/CN=hpoqueue-test-ca")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(cert), "-days", "1", "-extfile", str(ext))
    return ca, cert, key


@pytest.mark.parametrize("ca_by", ["url", "env"])
def test_a_tls_broker_works(chaos: ChaosProject, ca_by: str) -> None:
    binary = _tls_redis()
    if binary is None or shutil.which("openssl") is None:
        pytest.skip("no redis-server with TLS or no openssl here")
    ca, cert, key = _certificates(chaos.root)
    port = free_port()
    server = _redis_server(["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert),
                            "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca),
                            "--tls-auth-clients", "no"], binary=binary)
    try:
        if ca_by == "url":
            url = f"rediss://127.0.0.1:{port}/0?ssl_cert_reqs=required&ssl_ca_certs={ca}"
        else:  # a private CA named once, in $HPOQUEUE_BROKER_CA, for Celery and hpoqueue's own clients
            url = f"rediss://127.0.0.1:{port}/0"
            chaos.env["HPOQUEUE_BROKER_CA"] = str(ca)
            os.environ["HPOQUEUE_BROKER_CA"] = str(ca)
        time.sleep(0.5)
        if server.poll() is not None:
            pytest.skip(f"{binary} does not start with --tls-port (built without TLS)")
        wait_for(lambda: ping(url), 10, "the TLS Redis")
        _run_nasty_experiment(chaos, url)
    finally:
        os.environ.pop("HPOQUEUE_BROKER_CA", None)
        _stop(server)


def _http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes] | None:
    """(status, body) of a GET, or None while nothing answers."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""
    except OSError:
        return None


@contextmanager
def _flower(chaos: ChaosProject, redis_url: str, *args: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`hpoqueue flower` on a free port: (its process, its base URL), once it answers. Skipped only where
    Flower is not installed: an installed Flower that does not answer fails the test, with its output."""
    pytest.importorskip("flower", reason="Flower is not installed")
    port = free_port()
    log_path = chaos.root / "flower.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "hpoqueue", "flower", "--broker", redis_url, "--port",
                                 str(port), *args], cwd=chaos.root, env=chaos.env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while _http_get(f"{base}/api/workers") is None:
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(f"`hpoqueue flower` did not answer on {base} (exit status {proc.poll()}):\n"
                            f"{log_path.read_text(errors='replace')[-2000:]}")
            time.sleep(0.3)
        yield proc, base
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def test_flower_binds_loopback_and_requires_basic_auth(chaos: ChaosProject, redis_url: str) -> None:
    with _flower(chaos, redis_url, "--basic-auth", "admin:pw123") as (proc, base):
        api = f"{base}/api/workers"
        assert _http_get(api) == (401, b"")
        reply = _http_get(api, {"Authorization": f"Basic {BASIC_TOKEN}"})
        assert reply is not None and reply[0] == 200
        listeners = _listeners(proc.pid)  # `hpoqueue flower` becomes the Flower process itself
        assert listeners and listeners <= LOOPBACK, listeners


def test_flower_turns_task_events_on_and_shows_trial_attempts(chaos: ChaosProject, redis_url: str) -> None:
    """Workers send no task events by default (they cost every trial CPU); Flower enables them every 5 s."""
    with _flower(chaos, redis_url, "--basic-auth", "admin:pw123") as (_, base):
        config = chaos.config(maxTrialNumber=8, trialConcurrency=2,
                              searchSpace={"sleep": {"_type": "choice", "_value": [0.5]},
                                           "x": {"_type": "uniform", "_value": [0, 1]}})
        chaos.cli("submit", str(config), "--broker", redis_url, "--local-workers", "--quiet", timeout=120,
                  check=True)
        exp = chaos.only_experiment()
        reply = _http_get(f"{base}/api/tasks", {"Authorization": f"Basic {BASIC_TOKEN}"})
        assert reply is not None and reply[0] == 200
        tasks = json.loads(reply[1])
        ours = {uuid: t for uuid, t in tasks.items() if uuid.startswith(f"{exp}-")}
        assert ours, f"Flower saw no trial attempt of {exp}: {sorted(tasks)[:5]}"
        assert all(uuid.endswith("-a1") and t["state"] == "SUCCESS" for uuid, t in ours.items()), ours
        # an attempt already running when events came on has no task-received event, so no name
        assert {t["name"] for t in ours.values()} - {None} == {"hpoqueue.run_trial"}, ours
