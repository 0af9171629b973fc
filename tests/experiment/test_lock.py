"""One scheduler per experiment across machines: the broker key a scheduler takes, renews and gives up."""

from __future__ import annotations

import json
import os
import socket
import time

import pytest

from hpoqueue.broker.client import connect
from hpoqueue.broker.protocol import Channel
from hpoqueue.errors import AlreadyRunningError
from hpoqueue.experiment.lock import broker_lock
from hpoqueue.processes import start_time


def channel(redis_url: str) -> Channel:
    return Channel(connect(redis_url), "lk")


def test_a_scheduler_on_another_machine_is_refused_until_its_word_expires(redis_url: str) -> None:
    ch = channel(redis_url)
    other = {"host": "other-box", "pid": 4242, "start": 1}
    ch.client.set(ch.alive_key, json.dumps(other), px=600)
    with pytest.raises(AlreadyRunningError) as info:
        with broker_lock(ch, "lk", ttl=5):
            pass
    assert str(info.value).startswith("experiment lk is already running on other-box (scheduler pid 4242)")
    assert json.loads(ch.client.get(ch.alive_key)) == other  # a refused scheduler leaves the key alone
    time.sleep(0.7)  # the other machine's scheduler died: its word expires
    with broker_lock(ch, "lk", ttl=5):
        assert json.loads(ch.client.get(ch.alive_key))["pid"] == os.getpid()
        assert ch.mark_alive(5)
    assert not ch.client.exists(ch.alive_key)


def test_a_dead_scheduler_on_this_machine_is_replaced_at_once(redis_url: str) -> None:
    ch = channel(redis_url)
    dead = {"host": socket.gethostname(), "pid": os.getpid(), "start": (start_time(os.getpid()) or 0) - 1}
    ch.client.set(ch.alive_key, json.dumps(dead), ex=60)
    assert not ch.scheduler_alive()
    assert ch.take_scheduler(5) is None
    assert ch.scheduler_alive()


def test_a_scheduler_whose_key_was_taken_over_learns_it_and_does_not_give_it_up(redis_url: str) -> None:
    ch = channel(redis_url)
    assert ch.take_scheduler(5) is None
    other = json.dumps({"host": "other-box", "pid": 1, "start": 1})
    ch.client.set(ch.alive_key, other)  # ours expired while the broker was away; another one took over
    assert not ch.mark_alive(5)
    ch.clear_alive()
    assert ch.client.get(ch.alive_key).decode() == other
