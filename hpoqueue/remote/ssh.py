"""One SSH connection to a box (paramiko): authentication, host keys checked against known_hosts, commands,
SFTP uploads, and remote port forwards that carry a broker on this machine to the box."""

from __future__ import annotations

import logging
import os
import select
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko

from hpoqueue.config.experiment_config import MachineConfig
from hpoqueue.errors import HpoQueueError

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0


class RemoteError(HpoQueueError):
    """A box cannot be used: unreachable, refused, or without a usable hpoqueue. One line naming the box."""


def label(machine: MachineConfig) -> str:
    """`user@host:port`, how a box is named in tables and errors."""
    return f"{machine.user}@{machine.host}:{machine.port}"


@dataclass(frozen=True)
class HostKeys:
    """How host keys are checked: against `path`; unknown ones refused unless `accept_new` (then recorded)."""

    path: Path
    accept_new: bool = False


class _Policy(paramiko.MissingHostKeyPolicy):
    """An unknown host key: refused with the fix, or recorded in known_hosts with `accept_new`."""

    def __init__(self, machine: MachineConfig, keys: HostKeys) -> None:
        self.machine = machine
        self.keys = keys

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        if not self.keys.accept_new:
            raise RemoteError(f"{label(self.machine)}: unknown host key {key.get_name()} {key.fingerprint} "
                              f"(not in {self.keys.path}; check it, then record it: connect once with `ssh -p "
                              f"{self.machine.port} {self.machine.user}@{self.machine.host}`, or pass "
                              "--accept-new-host-keys to `hpoqueue workers`)")
        self.keys.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(self.keys.path, "a") as fh:
            fh.write(paramiko.hostkeys.HostKeyEntry([hostname], key).to_line() or "")
        client.get_host_keys().add(hostname, key.get_name(), key)


class Connection:
    """An open SSH connection to `machine`. Raises RemoteError (one line naming the box) when it cannot be
    made: unreachable, a host key unknown or changed, authentication refused."""

    def __init__(self, machine: MachineConfig, keys: HostKeys, *, timeout: float = CONNECT_TIMEOUT) -> None:
        self.machine = machine
        self.name = label(machine)
        self.client = paramiko.SSHClient()
        if keys.path.exists():
            self.client.load_host_keys(str(keys.path))
        self.client.set_missing_host_key_policy(_Policy(machine, keys))
        password = _password(machine)
        key_file = str(machine.ssh_key_file) if machine.ssh_key_file else None
        try:
            self.client.connect(machine.host, port=machine.port, username=machine.user, password=password,
                                key_filename=key_file, passphrase=machine.ssh_passphrase, allow_agent=True,
                                look_for_keys=key_file is None and password is None, timeout=timeout,
                                banner_timeout=timeout, auth_timeout=timeout)
        except RemoteError:
            self.client.close()
            raise
        except paramiko.BadHostKeyException as exc:
            self.client.close()
            raise RemoteError(f"{self.name}: the host key changed ({exc.key.get_name()} {exc.key.fingerprint}, "
                              f"{keys.path} has {exc.expected_key.fingerprint}); if the box was reinstalled, "
                              f"remove the old key: ssh-keygen -R {_known_name(machine)} -f {keys.path}") from None
        except paramiko.AuthenticationException:
            self.client.close()
            how, fix = ("the password", "check passwordEnv / password") if password else (
                f"the key {key_file}" if key_file else "the SSH agent and ~/.ssh keys",
                "add your public key to the box's ~/.ssh/authorized_keys, or fix sshKeyFile")
            raise RemoteError(f"{self.name}: authentication failed with {how} ({fix})") from None
        except (OSError, paramiko.SSHException, EOFError) as exc:
            self.client.close()
            raise RemoteError(f"{self.name}: cannot connect: {_reason(exc)} (check host and port, and that "
                              "sshd runs there)") from None
        transport = self.client.get_transport()
        assert transport is not None
        transport.set_keepalive(5)  # a dead connection is noticed within seconds
        self.transport: paramiko.Transport = transport
        self._forwards: dict[int, int] = {}

    @property
    def alive(self) -> bool:
        return self.transport.is_active()

    def run(self, command: str, *, stdin: str | None = None, timeout: float = 120.0) -> tuple[int, str, str]:
        """Run a shell command on the box; returns (exit status, stdout, stderr)."""
        try:
            channel = self.transport.open_session(timeout=timeout)
            channel.settimeout(timeout)
            channel.exec_command(command)
            if stdin is not None:
                channel.sendall(stdin.encode())
            channel.shutdown_write()
            out, err = _drain(channel)
            return channel.recv_exit_status(), out.decode(errors="replace"), err.decode(errors="replace")
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise RemoteError(f"{self.name}: the connection failed: {_reason(exc)}") from None

    def put(self, local: Path, remote: str) -> None:
        """Upload a file over SFTP (a relative remote path is relative to the login directory)."""
        try:
            with self.client.open_sftp() as sftp:
                sftp.put(str(local), remote)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise RemoteError(f"{self.name}: uploading {local.name} over SFTP failed: {_reason(exc)} (the box's "
                              "sshd needs an sftp Subsystem, as Debian's has)") from None

    def forward(self, local_port: int, remote_port: int = 0) -> int:
        """Listen on 127.0.0.1:`remote_port` of the box (0: any free port) and carry each connection made
        there to 127.0.0.1:`local_port` here, through this SSH connection. Returns the box's port."""

        def handler(channel: paramiko.Channel, _origin: Any, server: tuple[str, int]) -> None:
            threading.Thread(target=_pipe, args=(channel, self._forwards[server[1]]), daemon=True).start()

        try:
            port = self.transport.request_port_forward("127.0.0.1", remote_port, handler=handler)
        except paramiko.SSHException as exc:
            raise RemoteError(f"{self.name}: the box refused a port forward to 127.0.0.1:{remote_port or 'any'} "
                              f"({exc}; allow it with AllowTcpForwarding yes in its sshd_config)") from None
        self._forwards[port] = local_port
        return port

    def close(self) -> None:
        self.client.close()


def _password(machine: MachineConfig) -> str | None:
    """The password from the variable named by passwordEnv, else the one written in the file (warned)."""
    if machine.password_env:
        value = os.environ.get(machine.password_env)
        if not value:
            raise RemoteError(f"{label(machine)}: passwordEnv names ${machine.password_env}, which is not set "
                              f"(export {machine.password_env}=... first)")
        return value
    if machine.password:
        log.warning("%s: the SSH password is written in the config; prefer a key, the SSH agent, or "
                    "passwordEnv: NAME_OF_A_VARIABLE", label(machine))
    return machine.password


def _known_name(machine: MachineConfig) -> str:
    return machine.host if machine.port == 22 else f"'[{machine.host}]:{machine.port}'"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        return "connection refused"
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    return (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__).splitlines()[0]


def _drain(channel: paramiko.Channel) -> tuple[bytes, bytes]:
    """Read stdout and stderr together until the command closes both (neither can fill and block it)."""
    out, err = bytearray(), bytearray()
    while not (channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready()):
        select.select([channel], [], [], 0.1)
        while channel.recv_ready():
            out += channel.recv(65536)
        while channel.recv_stderr_ready():
            err += channel.recv_stderr(65536)
    while True:  # what arrived with the exit status
        chunk = channel.recv(65536) if channel.recv_ready() else b""
        if not chunk:
            break
        out += chunk
    return bytes(out), bytes(err)


def _pipe(channel: paramiko.Channel, local_port: int) -> None:
    """Copy bytes both ways between a forwarded channel and a connection to 127.0.0.1:`local_port`."""
    try:
        sock = socket.create_connection(("127.0.0.1", local_port), timeout=5)
    except OSError:
        channel.close()
        return
    sock.settimeout(None)
    try:
        while True:
            ready, _, _ = select.select([sock, channel], [], [], 30)  # type: ignore[type-var]
            if sock in ready:
                data = sock.recv(65536)
                if not data:
                    break
                channel.sendall(data)
            if channel in ready:
                data = channel.recv(65536)
                if not data:
                    break
                sock.sendall(data)
    except (OSError, paramiko.SSHException, EOFError):
        pass
    finally:
        sock.close()
        channel.close()
