"""Each trial attempt in a cgroup v2 of its own, where the box allows it (root, or a delegated subtree with
cgroup.kill, Linux 5.14+): killing the cgroup ends every process the trial started, also those that left
its process group (``setsid``, a double fork). Elsewhere the process group is all hpoqueue can reach;
docs/reliability.md says which applies where. ``HPOQUEUE_CGROUP=off`` turns cgroups off."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from functools import cache
from pathlib import Path

from hpoqueue.settings import cgroups_enabled

PREFIX = "hpoqueue-"
#: moves the shell into the cgroup, then becomes the trial; if the move fails the trial still runs
_ENTER = 'echo 0 > "$0" 2>/dev/null; exec "$@"'
#: one probe at a time: a worker's trial threads ask at once, and a second probe must not find the first's
_PROBING = threading.Lock()


def _cgroup2_mount() -> tuple[Path, str] | None:
    """Where the cgroup v2 hierarchy is mounted, and the hierarchy path at that mount's root."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields, _, fs = line.partition(" - ")
        parts = fields.split()
        if fs.split()[:1] == ["cgroup2"] and len(parts) >= 5:
            return Path(parts[4]), parts[3]
    return None


def _own_cgroup() -> str | None:
    """This process's cgroup v2 path (the ``0::`` line of /proc/self/cgroup)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    return next((line[3:] for line in lines if line.startswith("0::")), None)


def cgroup_base() -> Path | None:
    """The cgroup v2 directory (this process's own) in which attempt cgroups can be made and killed, or
    None: no cgroup v2, not allowed to write there, no cgroup.kill, or turned off."""
    with _PROBING:
        return _probe_base()


@cache
def _probe_base() -> Path | None:
    """cgroup_base, worked out once per process."""
    if not cgroups_enabled():
        return None
    mount, own = _cgroup2_mount(), _own_cgroup()
    if mount is None or own is None:
        return None
    root, mount_root = mount
    relative = os.path.relpath(own, mount_root) if mount_root != "/" else own.lstrip("/")
    base = root / relative if relative not in ("", ".") else root
    probe = base / f"{PREFIX}probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        probe.mkdir()
    except OSError:
        return None
    try:
        usable = (probe / "cgroup.kill").exists() and os.access(probe / "cgroup.procs", os.W_OK)
    finally:
        try:
            probe.rmdir()
        except OSError:
            pass
    return base if usable else None


class AttemptCgroup:
    """The cgroup of one attempt: `wrap` an argv so the trial starts inside it, `signal` or `kill` all its
    processes, `remove` it once empty."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(cls) -> AttemptCgroup | None:
        """A new, empty cgroup for an attempt, or None where cgroups are not available."""
        base = cgroup_base()
        if base is None:
            return None
        path = base / f"{PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}"
        try:
            path.mkdir()
        except OSError:
            return None
        return cls(path)

    def wrap(self, argv: list[str]) -> list[str]:
        """`argv` run inside the cgroup: after setpriv's own options when it leads (so the death signal
        is set first), else in front."""
        cut = argv.index("--") + 1 if Path(argv[0]).name == "setpriv" and "--" in argv else 0
        return [*argv[:cut], "/bin/sh", "-c", _ENTER, str(self.path / "cgroup.procs"), *argv[cut:]]

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return []

    def signal(self, sig: int) -> None:
        """Send `sig` to every process in the cgroup (SIGTERM to those that left the process group)."""
        for pid in self.pids():
            try:
                os.kill(pid, sig)
            except OSError:
                pass

    def kill(self) -> bool:
        """SIGKILL every process in the cgroup at once (cgroup.kill); True when there was any."""
        if not self.pids():
            return False
        try:
            (self.path / "cgroup.kill").write_text("1")
        except OSError:
            self.signal(signal.SIGKILL)
        return True

    def remove(self, timeout: float = 2.0) -> None:
        """Kill what is left, wait until the cgroup is empty (killed processes leave it as they exit), and
        remove it; a cgroup that stays busy is left for kill_stale_groups."""
        self.kill()
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                if time.monotonic() >= deadline:
                    return
                time.sleep(0.01)
