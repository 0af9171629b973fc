"""Real OpenSSH servers on loopback, each a child process of the test session on a free port with its own
generated host key, authorized key and host name (a UTS namespace), so that two of them are two boxes."""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hpoqueue.broker.embedded import free_port
from hpoqueue.worker.runner import kill_stale_groups

SSHD = "/usr/sbin/sshd"
BOX2_PASSWORD = "s3cret box2 'pw"  #: box2's password for this user (a quote and a space on purpose)
VENV_BIN = str(Path(sys.executable).parent)  #: the boxes run this checkout's hpoqueue (pythonPath)


@dataclass
class Box:
    """One sshd: `name` is the host name its sessions see, `root / "login_home"` their $HOME, and `home`
    their HPOQUEUE_HOME."""

    name: str
    port: int
    root: Path
    home: Path
    proc: subprocess.Popen[bytes]

    @property
    def host_key(self) -> str:
        """`type base64` of the box's host key."""
        return " ".join((self.root / "host_key.pub").read_text().split()[:2])

    def known_hosts_line(self) -> str:
        return f"[127.0.0.1]:{self.port} {self.host_key}\n"

    def sessions(self) -> list[int]:
        """The per-connection sshd processes (children of the listener)."""
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(p) for p in path.read_text().split()] if path.exists() else []

    def worker_pids(self, experiment: str | None = None) -> list[int]:
        """Live workers whose pid files are in this box's standing (or experiment's) worker directory."""
        folder = self.home / ("remote-workers/" + experiment if experiment else "workers")
        pids = []
        for pid_file in folder.glob("*.pid"):
            pid = int(pid_file.read_text())
            if _alive(pid):
                pids.append(pid)
        return pids

    def machine(self, key: Path, **fields: object) -> dict[str, object]:
        """A machineList / hosts entry for this box."""
        return {"host": "127.0.0.1", "port": self.port, "user": getpass.getuser(), "sshKeyFile": str(key),
                "pythonPath": VENV_BIN, **fields}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)], check=True)
    return path


@pytest.fixture(scope="session")
def ssh_ready() -> None:
    """Skip where this machine cannot run a private sshd (a user's machine without openssh-server)."""
    if not os.path.exists(SSHD):
        pytest.skip(f"no {SSHD} (install openssh-server to run the SSH tests)")
    if shutil.which("ssh-keygen") is None:
        pytest.skip("no ssh-keygen (install openssh-client to run the SSH tests)")
    if os.geteuid() != 0:
        pytest.skip("the SSH tests give each sshd its own host name (unshare --uts), which needs root")


@pytest.fixture(scope="session")
def user_key(ssh_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return keygen(tmp_path_factory.mktemp("keys") / "user_key")


def start_box(name: str, root: Path, user_key: Path, gpus: int, password: str | None = None) -> Box:
    """An sshd as a box; with `password`, it also takes that password for this user (a shadow file of its
    own, bound over /etc/shadow in its mount namespace only)."""
    root.mkdir(parents=True, exist_ok=True)
    home = root / "home"
    home.mkdir(exist_ok=True)
    keygen(root / "host_key")
    shutil.copy(f"{user_key}.pub", root / "authorized_keys")
    os.chmod(root / "authorized_keys", 0o600)
    port = free_port()
    login_home = root / "login_home"  # the box's own $HOME (its sessions still start in this machine's)
    login_home.mkdir(exist_ok=True)
    # SPT_NOENV: Celery's process titles (setproctitle) must not write over /proc/PID/environ, which the
    # tests read to see which broker a worker was given
    env = (f"HOME={login_home} HPOQUEUE_FAKE_GPUS={gpus} HPOQUEUE_HOME={home} HPOQUEUE_RUN_DIR={root / 'running'} "
           "SPT_NOENV=1")
    (root / "sshd_config").write_text(f"""\
Port {port}
ListenAddress 127.0.0.1
HostKey {root / 'host_key'}
PidFile {root / 'sshd.pid'}
AuthorizedKeysFile {root / 'authorized_keys'}
PubkeyAuthentication yes
PasswordAuthentication {"yes" if password else "no"}
KbdInteractiveAuthentication no
PermitRootLogin {"yes" if password else "prohibit-password"}
StrictModes no
UsePAM no
AllowTcpForwarding yes
Subsystem sftp internal-sftp
SetEnv {env}
LogLevel ERROR
""")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
    bind = ""
    if password:
        hashed = subprocess.run(["openssl", "passwd", "-6", password], capture_output=True, text=True,
                                check=True).stdout.strip()
        user = getpass.getuser()
        lines = [f"{user}:{hashed}:{line.split(':', 2)[2]}" if line.startswith(f"{user}:") else line
                 for line in Path("/etc/shadow").read_text().splitlines()]
        (root / "shadow").write_text("\n".join(lines) + "\n")
        os.chmod(root / "shadow", 0o600)
        bind = f"mount --bind {root / 'shadow'} /etc/shadow && "
    proc = subprocess.Popen(["unshare", "--uts", "--mount", "sh", "-c",
                             f'hostname {name} && {bind}exec {SSHD} -D -e -f {root / "sshd_config"}'],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=open(root / "sshd.log", "ab"))  # noqa: SIM115
    deadline = time.monotonic() + 10
    import socket

    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited: {(root / 'sshd.log').read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return Box(name, port, root, home, proc)
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("sshd did not listen within 10 s")


def clear_box(box: Box) -> None:
    """Kill what a test left running on the box (workers, standing or an experiment's, and their trials) and
    forget its trials, so that a failed test leaves nothing a later one would find."""
    workers = box.worker_pids() + [p for d in (box.home / "remote-workers").glob("*") for p in _pids_in(d)]
    for pid in workers:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    running = box.root / "running"
    for link in running.iterdir() if running.is_dir() else []:
        kill_stale_groups(link.resolve())  # the trials' own process groups and cgroups, as a new worker would
        link.unlink(missing_ok=True)


def stop_box(box: Box) -> None:
    """Stop the sshd and anything its sessions left running (workers and their trials)."""
    clear_box(box)
    box.proc.terminate()
    box.proc.wait(5)


def _pids_in(folder: Path) -> list[int]:
    return [int(f.read_text()) for f in folder.glob("*.pid") if _alive(int(f.read_text()))]


@pytest.fixture(scope="session")
def box_servers(user_key: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Box, Box]]:
    """Two boxes: box1 with two fake GPUs, box2 with one, which also takes the password BOX2_PASSWORD."""
    root = tmp_path_factory.mktemp("boxes")
    started = [start_box("box1", root / "box1", user_key, 2),
               start_box("box2", root / "box2", user_key, 1, password=BOX2_PASSWORD)]
    try:
        yield started[0], started[1]
    finally:
        for box in started:
            stop_box(box)


@pytest.fixture
def boxes(box_servers: tuple[Box, Box]) -> Iterator[tuple[Box, Box]]:
    """The two boxes for one test, cleared after it whether it passed or not."""
    yield box_servers
    for box in box_servers:
        clear_box(box)


@pytest.fixture
def known_hosts(tmp_path: Path, boxes: tuple[Box, Box]) -> Path:
    """A known_hosts file that knows both boxes."""
    path = tmp_path / "known_hosts"
    path.write_text("".join(b.known_hosts_line() for b in boxes))
    return path


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of an `hpoqueue` call: none of this session's HPOQUEUE_* settings, no SSH agent."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPOQUEUE_") and k != "SSH_AUTH_SOCK"}
    return {**env, **extra}


def hpoqueue(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hpoqueue", *args], capture_output=True, text=True,
                          env=env or cli_env(), timeout=timeout)
