"""Relayed trial logs: what the worker sends (live up to the limit, then the tail with a note of the cut), what
the scheduler writes (any bytes, idempotent), and no copy over the worker's own files."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpoqueue.broker.events import Log, Stream, decode, encode
from hpoqueue.worker import log_relay
from hpoqueue.worker.log_relay import LogRelay, scheduler_token, sees_scheduler_files, store


class Sent:
    """The outbox: log events as they travel (through JSON, as the scheduler reads them)."""

    def __init__(self) -> None:
        self.events: list[Log] = []

    def add(self, stream: Stream, at: int, data: str) -> None:
        event = decode(encode(Log(trial="t-1", attempt=1, ts=0.0, stream=stream, at=at, data=data)))
        assert isinstance(event, Log)
        self.events.append(event)


def replay(sent: Sent, target: Path) -> None:
    for event in sent.events:
        store(target, event)


def test_a_remote_trials_output_arrives_as_it_is_written_and_whole(tmp_path: Path) -> None:
    box, here = tmp_path / "box" / "attempt-1", tmp_path / "here" / "attempt-1"
    box.mkdir(parents=True)
    sent = Sent()
    relay = LogRelay(box, sent.add, "boxa")
    (box / "trial.stdout").write_bytes(b"epoch 1\n")
    relay.pump()
    replay(sent, here)
    assert (here / "trial.stdout").read_bytes() == b"epoch 1\n"  # live, before the trial ends
    odd = "\u00e9t\u00e9 \u2713\n".encode() + b"\xff\xfe binary\n"
    with open(box / "trial.stdout", "ab") as fh:
        fh.write(odd)
    (box / "trial.stderr").write_bytes(b"warning\n")
    (box / "trial.log").write_text("exited with 0\n")
    relay.pump(final=True)
    replay(sent, here)
    replay(sent, here)  # read again after a scheduler crash: nothing changes
    for name in ("trial.stdout", "trial.stderr", "trial.log"):
        assert (here / name).read_bytes() == (box / name).read_bytes()
    assert (here / "trial.stdout").stat().st_mode & 0o777 == 0o600


def test_past_the_limit_only_the_tail_comes_back_after_a_note_of_the_cut(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log_relay, "LIMIT", 1000)
    monkeypatch.setattr(log_relay, "TAIL", 300)
    monkeypatch.setattr(log_relay, "CHUNK", 256)
    box, here = tmp_path / "box", tmp_path / "here"
    box.mkdir()
    sent = Sent()
    relay = LogRelay(box, sent.add, "boxa")
    text = b"".join(f"line {i:05d}\n".encode() for i in range(1000))  # 11000 bytes
    (box / "trial.stdout").write_bytes(text)
    for _ in range(10):
        relay.pump()
    assert sum(len(e.data) for e in sent.events) == 1000  # live relay stops at the limit
    relay.pump(final=True)
    replay(sent, here)
    got = (here / "trial.stdout").read_bytes()
    assert got.startswith(text[:1000]) and got.endswith(text[-300:])
    note = got[1000:-300].decode()
    assert note.count("\n[hpoqueue: ") == 1 and "9700 bytes cut here" in note
    assert f"stays on boxa in {box / 'trial.stdout'}" in note
    assert max(len(e.data.encode("utf-8", "surrogateescape")) for e in sent.events) <= 256 + len(note)


def test_a_worker_that_sees_the_experiment_directory_relays_nothing(tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    exp.mkdir()
    token = scheduler_token(exp)
    assert scheduler_token(exp) == token and (exp / log_relay.TOKEN_FILE).stat().st_mode & 0o777 == 0o600
    assert sees_scheduler_files(exp, token)  # same machine, or a shared filesystem
    assert not sees_scheduler_files(exp, "another experiment's") and not sees_scheduler_files(exp, None)
    assert not sees_scheduler_files(tmp_path / "hidden", token)  # a box without the submit machine's files
    sent = Sent()
    relay = LogRelay(exp, sent.add, "vm", active=False)
    (exp / "trial.stdout").write_bytes(b"x" * 10)
    relay.pump(final=True)
    assert sent.events == []


def test_an_empty_output_arrives_as_an_empty_file(tmp_path: Path) -> None:
    box, here = tmp_path / "box", tmp_path / "here"
    box.mkdir()
    sent = Sent()
    relay = LogRelay(box, sent.add, "boxa")
    (box / "trial.stdout").write_bytes(b"")
    relay.pump()
    relay.pump(final=True)
    replay(sent, here)
    assert (here / "trial.stdout").read_bytes() == b"" and not (here / "trial.stderr").exists()
