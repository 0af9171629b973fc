"""A trial's stdout, stderr and trial.log brought back to the submit machine while it runs.

The worker reads what each file gained since the supervisor's last slice and adds it to the attempt's
outbox as `log` events (the same round trip as its metrics); the scheduler writes each chunk at its offset
into the attempt's directory on the submit machine, where `hpoqueue logs` reads, so a chunk read twice
(after a scheduler crash) changes nothing. Per stream and attempt the first LIMIT bytes travel as they
come; beyond that only the last TAIL bytes travel, at the end, after a line saying how much was cut and
where the whole file stays. A worker that writes into that very directory (same machine, or a shared
filesystem) relays nothing: it finds there the token file the scheduler wrote, whose text the spec carries.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hpoqueue.broker.events import Log, Stream

log = logging.getLogger(__name__)

STREAMS: dict[Stream, str] = {"stdout": "trial.stdout", "stderr": "trial.stderr", "log": "trial.log"}
LIMIT = 2**20  #: bytes of a stream relayed as they come, per attempt
TAIL = 256 * 2**10  #: bytes of its end relayed when the attempt ends, past LIMIT
CHUNK = 64 * 2**10  #: the most bytes of one stream in one event
TOKEN_FILE = "logs.token"


def scheduler_token(work_dir: Path) -> str:
    """The token of the experiment directory `work_dir` on the submit machine (made on first use): a worker
    that reads the same text there writes its logs where `hpoqueue logs` reads them."""
    path = work_dir / TOKEN_FILE
    try:
        return path.read_text()
    except FileNotFoundError:
        token = uuid.uuid4().hex
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token)
        return token


def sees_scheduler_files(work_dir: Path, token: str | None) -> bool:
    """Whether this box sees the submit machine's experiment directory `work_dir` (its token is there)."""
    try:
        return token is not None and (work_dir / TOKEN_FILE).read_text() == token
    except OSError:
        return False


class LogRelay:
    """The worker side for one attempt: `pump()` after each slice, `pump(final=True)` once it ended; it
    relays nothing when not `active` (the submit machine sees `directory`). `add(stream, at, data)` sends
    one chunk (Outbox.log: a `log` event)."""

    def __init__(self, directory: Path, add: Callable[[Stream, int, str], None], machine: str,
                 active: bool = True) -> None:
        self.directory = directory
        self.add = add
        self.machine = machine
        self.active = active
        self.read = dict.fromkeys(STREAMS, 0)  #: bytes of each file dealt with (sent or cut)
        self.sent = dict.fromkeys(STREAMS, 0)  #: bytes of each stream at the other end

    def pump(self, final: bool = False) -> None:
        """Relay what the files gained: up to CHUNK per stream while under LIMIT; when `final`, the rest
        up to LIMIT and then the tail."""
        if not self.active:
            return
        for stream, name in STREAMS.items():
            path = self.directory / name
            try:
                size = path.stat().st_size
            except OSError:
                continue
            if size <= self.read[stream]:
                if final and not self.sent[stream]:
                    self._emit(stream, b"")  # an empty file is there too
                continue
            with open(path, "rb") as fh:
                while self.read[stream] < size and self.sent[stream] < LIMIT:
                    self._send(stream, fh, min(size - self.read[stream], CHUNK, LIMIT - self.sent[stream]))
                    if not final:
                        break
                if final and self.read[stream] < size:
                    cut = max(0, size - TAIL - self.read[stream])
                    if cut:
                        note = (f"\n[hpoqueue: {cut} bytes cut here (a trial's {stream} comes back up to "
                                f"{LIMIT // 1024} KiB and its last {TAIL // 1024} KiB); the whole file stays on "
                                f"{self.machine} in {path}]\n")
                        self._emit(stream, note.encode())
                        self.read[stream] += cut
                    while self.read[stream] < size:
                        self._send(stream, fh, min(size - self.read[stream], CHUNK))

    def _send(self, stream: Stream, fh: Any, length: int) -> None:
        fh.seek(self.read[stream])
        data = fh.read(length)
        self.read[stream] += len(data)
        self._emit(stream, data)

    def _emit(self, stream: Stream, data: bytes) -> None:
        # surrogateescape: any bytes (a multi-byte character cut in two, binary output) travel in JSON as
        # text and come back as the same bytes
        self.add(stream, self.sent[stream], data.decode("utf-8", "surrogateescape"))
        self.sent[stream] += len(data)


def store(directory: Path, event: Log) -> None:
    """The scheduler side: write one relayed chunk into the attempt's `directory`. A disk problem is logged;
    it never stops the scheduler."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / STREAMS[event.stream], os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.pwrite(fd, event.data.encode("utf-8", "surrogateescape"), event.at)
        finally:
            os.close(fd)
    except (OSError, ValueError) as exc:  # ValueError: a negative offset
        log.warning("cannot write the relayed %s of %s: %s", event.stream, directory, exc)

