"""A box reached over SSH: its hpoqueue checked, and `python -m hpoqueue.remote.agent` run there with every
argument quoted for its shell."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import hpoqueue
from hpoqueue.config.experiment_config import MachineConfig
from hpoqueue.remote.ssh import Connection, HostKeys, RemoteError
from hpoqueue.settings import REMOTE_VENV


def agent_command(python_path: str | None, action: str, args: list[str]) -> str:
    """The shell command running the agent with `python_path`: NNI's pythonPath is a directory put first
    on PATH (then `python3` runs); a path to a python works too."""
    python = shlex.quote(python_path or "python3")
    argv = " ".join(shlex.quote(a) for a in [action, *args])
    return (f'p={python}; if [ -d "$p" ]; then PATH="$p:$PATH"; export PATH; p=python3; fi; '
            f'exec "$p" -m hpoqueue.remote.agent {argv}')


class Box:
    """One machine: the SSH connection and the agent's answers."""

    def __init__(self, machine: MachineConfig, keys: HostKeys) -> None:
        self.machine = machine
        self.keys = keys
        self.python_path = machine.python_path
        self._venv_bin: str | None = None
        self.connection = Connection(machine, keys)
        self.name = self.connection.name

    def reconnect(self) -> None:
        self.connection.close()
        self.connection = Connection(self.machine, self.keys)

    def agent(self, action: str, *args: str, stdin: str | None = None) -> dict[str, Any]:
        """Run the agent; its JSON answer, or RemoteError saying what the box lacks and how to fix it."""
        rc, out, err = self.connection.run(agent_command(self.python_path, action, list(args)), stdin=stdin)
        python = self.python_path or "python3"
        if rc == 127:
            raise RemoteError(f"{self.name}: no Python at {python} (set pythonPath to the directory or the python "
                              "that has hpoqueue there)")
        if "No module named 'hpoqueue'" in err or "No module named hpoqueue" in err:
            raise RemoteError(f"{self.name}: {python} has no hpoqueue (pip install hpoqueue=={hpoqueue.__version__} "
                              "there, pass --install, or point pythonPath at a venv that has it)")
        if "No module named 'hpoqueue.remote" in err:
            raise RemoteError(f"{self.name}: {python} has an hpoqueue older than {hpoqueue.__version__} "
                              "(upgrade it there, or pass --install)")
        if rc != 0:
            lines = [line for line in err.strip().splitlines() if line.strip()]
            raise RemoteError(f"{self.name}: {lines[-1] if lines else f'the agent exited with {rc}'}")
        try:
            reply: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
            return reply
        except (IndexError, ValueError):
            raise RemoteError(f"{self.name}: the agent answered {out.strip()[:200]!r}, not JSON") from None

    def probe(self, install: bool = False) -> dict[str, Any]:
        """The box's facts, after checking it runs this machine's hpoqueue version: with `pythonPath`, else in
        the venv of an earlier `--install`, else (with `install`) installed there now."""
        try:
            facts = self.agent("probe")
            if facts.get("version") != hpoqueue.__version__:
                raise RemoteError(f"{self.name}: has hpoqueue {facts.get('version')}, this machine "
                                  f"{hpoqueue.__version__} (install the same version there, or pass --install)")
            return facts
        except RemoteError as exc:
            if self.python_path == self.venv_bin():
                raise
            error = exc
        configured, self.python_path = self.python_path, self.venv_bin()
        try:  # what an earlier `--install` put there
            facts = self.agent("probe")
            if facts.get("version") == hpoqueue.__version__:
                return facts
        except RemoteError:
            pass
        self.python_path = configured
        if not install:
            raise error
        self.install()
        return self.probe()

    def venv_bin(self) -> str:
        """The bin directory of the venv `--install` makes on the box: $HOME/.hpoqueue/venv/bin there."""
        if self._venv_bin is None:
            rc, out, _err = self.connection.run('printf %s "$HOME"')
            self._venv_bin = f"{out.strip() if rc == 0 and out.strip() else '.'}/{REMOTE_VENV}/bin"
        return self._venv_bin

    def install(self) -> None:
        """Upload this machine's hpoqueue as a wheel over SFTP and install it into a venv on the box."""
        wheel = local_wheel()
        venv = self.venv_bin().removesuffix("/bin")
        folder = venv.removesuffix("/venv")
        self.connection.run(f"mkdir -p -m 700 {shlex.quote(folder)}")
        self.connection.put(wheel, f"{folder}/{wheel.name}")
        base = shlex.quote(self.python_path or "python3")
        python = f'p={base}; if [ -d "$p" ]; then p="$p/python3"; fi; '
        rc, _out, err = self.connection.run(
            f'{python}"$p" -m venv {shlex.quote(venv)} && {shlex.quote(venv)}/bin/python -m pip install -q '
            f'{shlex.quote(f"{folder}/{wheel.name}")}', timeout=900)
        if rc != 0:
            lines = err.strip().splitlines()
            raise RemoteError(f"{self.name}: installing hpoqueue failed: {lines[-1] if lines else rc} (install it "
                              "there by hand and set pythonPath)")
        self.python_path = self.venv_bin()

    def close(self) -> None:
        self.connection.close()


@cache
def local_wheel() -> Path:
    """A wheel of the hpoqueue running here, built once per process from its source checkout."""
    root = Path(hpoqueue.__file__).resolve().parents[1]
    if not (root / "pyproject.toml").exists():
        raise RemoteError("--install needs hpoqueue installed from a source checkout here (pip install -e .), "
                          "to build the wheel it uploads; or install hpoqueue on the boxes yourself")
    out = Path(tempfile.mkdtemp(prefix="hpoqueue-wheel-"))
    run = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                          "-w", str(out), str(root)], capture_output=True, text=True)
    found = sorted(out.glob("hpoqueue-*.whl"))
    if run.returncode != 0 or not found:
        raise RemoteError(f"building the hpoqueue wheel failed: {(run.stderr.strip().splitlines() or ['?'])[-1]}")
    return found[-1]
