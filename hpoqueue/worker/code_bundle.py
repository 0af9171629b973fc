"""Trial code that travels with the work: `submit` packs trialCodeDirectory into a gzipped tar stored in the
broker under its SHA-256, and a worker unpacks each version once per box into a cache, where trials run.

What is packed honours NNI's `.nniignore` (gitignore patterns) in the code directory; `.git/` and
`__pycache__/` are always left out. The tar is deterministic (sorted, fixed owners and times), so the same
code gives the same hash and is unpacked once per box, whatever the experiment.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import io
import os
import re
import shutil
import stat
import tarfile
import tempfile
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpoqueue.broker import keys
from hpoqueue.errors import ConfigError, HpoQueueError
from hpoqueue.settings import code_cache_dir

if TYPE_CHECKING:
    from hpoqueue.broker.client import BrokerClient

IGNORE_FILE = ".nniignore"
ALWAYS_IGNORED = (".git/", "__pycache__/")
MAX_BYTES = 100 * 2**20  #: the most file bytes a shipped code directory may hold
MAX_FILES = 2000  #: NNI's own limit on uploaded code
CACHE_KEEP = 7 * 24 * 3600  #: an unpacked version no trial started in for this long is removed
_MTIME = 1  #: every packed entry's modification time: the same code packs to the same bytes


class CodeError(HpoQueueError):
    """Trial code that cannot be shipped, fetched or unpacked."""


@dataclass(frozen=True)
class Bundle:
    """Packed trial code: the gzipped tar and its SHA-256 (hex), by which workers fetch and cache it."""

    digest: str
    data: bytes
    files: int
    size: int


# ---- packing (submit machine) ----------------------------------------------------------------------
def _glob_regex(pattern: str) -> str:
    """A gitignore glob as a regex over '/'-separated relative paths."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and (end := pattern.find("]", i + 1)) > i:
            body = pattern[i + 1:end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


def ignore_rules(lines: list[str]) -> list[tuple[bool, bool, re.Pattern[str]]]:
    """(negated, directories only, regex) for each pattern of a .nniignore (gitignore syntax)."""
    rules = []
    for line in lines:
        line = line.rstrip("\n").rstrip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        line = line[1:] if negated else line
        dir_only = line.endswith("/")
        line = line.rstrip("/")
        anchored = "/" in line
        body = _glob_regex(line.lstrip("/"))
        rules.append((negated, dir_only, re.compile(("" if anchored else "(?:.*/)?") + body + r"\Z")))
    return rules


def _ignored(rel: str, is_dir: bool, rules: list[tuple[bool, bool, re.Pattern[str]]]) -> bool:
    verdict = False
    for negated, dir_only, regex in rules:
        if (not dir_only or is_dir) and regex.match(rel):
            verdict = not negated
    return verdict


def scan(directory: Path, *, max_bytes: int = MAX_BYTES, max_files: int = MAX_FILES,
         source: str | None = None, leave_out: Collection[Path] = ()) -> list[str]:
    """The relative paths that would be packed, sorted; ConfigError when over a limit. `leave_out`: files and
    directories never packed nor opened (hpoqueue's own, see pack)."""
    rules = ignore_rules(list(ALWAYS_IGNORED))
    left_out = {os.path.realpath(p) for p in leave_out}
    ignore_file = directory / IGNORE_FILE
    if ignore_file.is_file():
        rules += ignore_rules(ignore_file.read_text(encoding="utf-8", errors="replace").splitlines())
    found: list[str] = []
    total, largest = 0, (0, "")
    for root, dirs, files in os.walk(directory):
        base = Path(root).relative_to(directory).as_posix()
        prefix = "" if base == "." else base + "/"
        dirs[:] = sorted(d for d in dirs if not _ignored(prefix + d, True, rules)
                         and os.path.realpath(os.path.join(root, d)) not in left_out)
        found += [prefix + d for d in dirs]
        for name in sorted(files):
            rel = prefix + name
            if _ignored(rel, False, rules) or os.path.realpath(os.path.join(root, name)) in left_out:
                continue
            size = os.lstat(os.path.join(root, name)).st_size
            total += size
            largest = max(largest, (size, rel))
            found.append(rel)
            if total > max_bytes or len(found) > max_files:
                what = (f"more than {max_bytes / 2**20:g} MiB" if total > max_bytes
                        else f"more than {max_files} files and directories")
                raise ConfigError(
                    f"{directory} holds {what}, the limit for code shipped to workers (largest file so far: "
                    f"{largest[1]}, {largest[0] / 2**20:.1f} MiB)", source=source, field="trialCodeDirectory",
                    hint=f"list data, checkpoints and outputs in {ignore_file}, or keep the code on a "
                         "filesystem every box mounts and set shipCode: false")
    return sorted(found)


def pack(directory: Path, *, max_bytes: int = MAX_BYTES, max_files: int = MAX_FILES,
         source: str | None = None, leave_out: Collection[Path] = ()) -> Bundle:
    """Pack `directory` as scan() lists it into a deterministic tar.gz. `leave_out`: what the packing
    process must not open, e.g. its live SQLite database (closing any descriptor of it drops the process's
    POSIX locks, and the next process to open the database then resets its shared memory under this one:
    SIGBUS)."""
    names = scan(directory, max_bytes=max_bytes, max_files=max_files, source=source, leave_out=leave_out)
    buffer = io.BytesIO()
    size = 0
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, compresslevel=6) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in names:
            info = tar.gettarinfo(str(directory / rel), arcname=rel)
            if not (info.isfile() or info.isdir() or info.issym()):
                continue  # sockets, fifos, devices
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = _MTIME
            info.mode = 0o755 if info.isdir() or info.mode & stat.S_IXUSR else 0o644
            if info.isfile():
                with open(directory / rel, "rb") as fh:
                    tar.addfile(info, fh)
                size += info.size
            else:
                tar.addfile(info)
    data = buffer.getvalue()
    return Bundle(digest=hashlib.sha256(data).hexdigest(), data=data, files=len(names), size=size)


def ship(bundle: Bundle, client: BrokerClient) -> None:
    """Store `bundle` in the broker (once per version); it expires keys.CODE_TTL after its last dispatch."""
    key = keys.code(bundle.digest)
    if not client.expire(key, keys.CODE_TTL):
        client.set(key, bundle.data, ex=keys.CODE_TTL)


def worker_code_dir(code_dir: Path, shared_storage: dict[str, Any] | None) -> str:
    """Where a worker finds unshipped code: trialCodeDirectory itself, or, under sharedStorage's
    localMountPoint, the same place under its remoteMountPoint (NNI's meaning of the two)."""
    local = (shared_storage or {}).get("localMountPoint")
    remote = (shared_storage or {}).get("remoteMountPoint")
    if local and remote:
        try:
            return str(Path(remote) / code_dir.relative_to(Path(local).expanduser()))
        except ValueError:
            pass
    return str(code_dir)


# ---- unpacking (worker box) ------------------------------------------------------------------------
def checkout(client: BrokerClient, digest: str) -> Path:
    """The directory holding code version `digest` on this box, fetched and unpacked on first use. Workers
    of one box take turns (a lock file), and the unpacked tree appears at once (a rename)."""
    root = code_cache_dir()
    final = root / digest
    if final.is_dir():
        os.utime(final)  # in use: kept CACHE_KEEP longer
        return final
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{digest}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if final.is_dir():
            return final
        data = client.get(keys.code(digest))
        if data is None:
            raise CodeError(f"code version {digest[:12]} is no longer in the broker (it expires "
                            f"{keys.CODE_TTL // 3600} h after its last trial); `hpoqueue resume` ships it again")
        if hashlib.sha256(data).hexdigest() != digest:
            raise CodeError(f"code version {digest[:12]} in the broker does not match its hash")
        tmp = Path(tempfile.mkdtemp(prefix=f".{digest[:12]}-", dir=root))
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(tmp, filter="data")
                else:  # a Python before 3.10.12 / 3.11.4 has no extraction filters; the bundle's hash was checked
                    tar.extractall(tmp)
            os.rename(tmp, final)  # the owner's alone, as mkdtemp made it: code may hold secrets
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    prune(root)
    return final


def prune(root: Path, keep: float = CACHE_KEEP) -> list[str]:
    """Remove the versions in the cache `root` that no trial started in for `keep` seconds (and leftovers of
    unpackings that died, and old lock files); returns their names."""
    removed = []
    cutoff = time.time() - keep
    for entry in root.iterdir():
        try:
            if entry.stat().st_mtime < cutoff:
                if entry.is_dir():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
                removed.append(entry.name)
        except OSError:
            continue  # another worker of the box removed it first
    return removed


def ships(ship_code: bool | None, local: bool) -> bool:
    """Whether a run ships its code: as `shipCode` says, else only when workers may run on other boxes (an
    external broker, or `platform: remote`); `local`: every worker runs on this machine (the embedded broker's
    own workers), in place."""
    return ship_code if ship_code is not None else not local
