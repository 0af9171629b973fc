"""The per-(host, GPU) cap in a real Redis: atomic, all-or-nothing, shared by workers, self-healing."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from hpoqueue.broker.client import BrokerClient, connect
from hpoqueue.errors import GpuError
from hpoqueue.worker.gpu_lease import GpuLeases


class FakeTime:
    """A clock that moves only when told to, so expiry is tested without waiting."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def client(redis_url: str) -> Iterator[BrokerClient]:
    c = connect(redis_url)
    yield c
    c.close()


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime()


@pytest.fixture
def leases(client: BrokerClient, clock: FakeTime) -> GpuLeases:
    return GpuLeases(client, "box1", ttl=30.0, clock=clock)


def test_cap_holds_against_sixteen_racing_workers(redis_url: str, client: BrokerClient) -> None:
    start = threading.Barrier(16)
    won: list[str] = []

    def worker(name: str) -> None:
        client = connect(redis_url)
        mine = GpuLeases(client, "box1")
        start.wait()
        if mine.acquire([0], name, cap=2):
            won.append(name)
        client.close()

    threads = [threading.Thread(target=worker, args=(f"trial-{i}",)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 2
    assert GpuLeases(client, "box1").holders(0) == sorted(won)


def test_cap_is_never_exceeded_while_workers_come_and_go(redis_url: str) -> None:
    lock = threading.Lock()
    inside = [0, 0]  # [now, most ever]
    seen_holders: list[int] = []

    def worker(name: str) -> None:
        client = connect(redis_url)
        mine = GpuLeases(client, "box1")
        while not mine.acquire([0], name, cap=2):
            time.sleep(0.001)
        with lock:
            inside[0] += 1
            inside[1] = max(inside[1], inside[0])
        seen_holders.append(len(mine.holders(0)))
        time.sleep(0.005)
        with lock:
            inside[0] -= 1
        mine.release([0], name)
        client.close()

    threads = [threading.Thread(target=worker, args=(f"trial-{i}",)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(seen_holders) == 16  # every worker got its turn
    assert inside[1] <= 2
    assert max(seen_holders) <= 2


def test_multi_gpu_acquire_is_all_or_nothing(leases: GpuLeases) -> None:
    assert leases.acquire([1], "a", cap=1)
    assert not leases.acquire([0, 1], "b", cap=1)
    assert leases.holders(0) == []  # b took nothing on GPU 0
    assert leases.acquire([0, 2], "b", cap=1)
    assert (leases.holders(0), leases.holders(1), leases.holders(2)) == (["b"], ["a"], ["b"])


def test_reacquire_by_the_same_holder_is_idempotent(leases: GpuLeases, clock: FakeTime) -> None:
    assert leases.acquire([0], "a", cap=1)
    clock.now += 20
    assert leases.acquire([0], "a", cap=1)  # renews rather than counting twice
    clock.now += 20
    assert leases.holders(0) == ["a"]


def test_release_frees_the_slot(leases: GpuLeases) -> None:
    assert leases.acquire([0, 1], "a", cap=1)
    leases.release([0, 1], "a")
    assert leases.holders(0) == leases.holders(1) == []
    assert leases.acquire([0, 1], "b", cap=1)
    leases.release([0], "never-held")  # harmless
    assert leases.holders(0) == ["b"]


def test_renew_keeps_the_lease_past_ttl(leases: GpuLeases, clock: FakeTime) -> None:
    assert leases.acquire([0, 1], "a", cap=1)
    for _ in range(3):
        clock.now += 20
        assert leases.renew([0, 1], "a")
    assert leases.holders(0) == leases.holders(1) == ["a"]
    assert not leases.acquire([0], "b", cap=1)


def test_dead_holders_slot_frees_itself_after_ttl(leases: GpuLeases, clock: FakeTime) -> None:
    assert leases.acquire([0], "crashed", cap=1)
    clock.now += 29
    assert not leases.acquire([0], "b", cap=1)
    clock.now += 2
    assert leases.holders(0) == []
    assert leases.acquire([0], "b", cap=1)
    assert not leases.renew([0], "crashed")  # the crashed worker learns it lost the slot


def test_renew_extends_nothing_when_one_lease_was_lost(leases: GpuLeases, clock: FakeTime) -> None:
    assert leases.acquire([0, 1], "a", cap=1)
    leases.release([1], "a")
    assert not leases.renew([0, 1], "a")
    clock.now += 31
    assert leases.holders(0) == []


def test_server_clock_expiry_frees_a_dead_holder(client: BrokerClient) -> None:
    real = GpuLeases(client, "box1", ttl=0.3)  # the production path: Redis TIME, no simulated clock
    assert real.acquire([0], "crashed", cap=1)
    assert real.holders(0) == ["crashed"]
    time.sleep(0.5)
    assert real.acquire([0], "b", cap=1)
    assert real.holders(0) == ["b"]


def test_workers_of_one_host_share_the_cap(client: BrokerClient, redis_url: str, clock: FakeTime) -> None:
    other_client = connect(redis_url)
    worker_a = GpuLeases(client, "box1", clock=clock)
    worker_b = GpuLeases(other_client, "box1", clock=clock)
    assert worker_a.acquire([0], "t1", cap=2)
    assert worker_b.acquire([0], "t2", cap=2)
    assert not worker_a.acquire([0], "t3", cap=2)
    assert worker_a.holders(0) == worker_b.holders(0) == ["t1", "t2"]
    other_client.close()


def test_hosts_do_not_share_gpus(client: BrokerClient, clock: FakeTime) -> None:
    box1 = GpuLeases(client, "box1", clock=clock)
    box2 = GpuLeases(client, "box2", clock=clock)
    assert box1.acquire([0], "t1", cap=1)
    assert box2.acquire([0], "t2", cap=1)
    assert (box1.holders(0), box2.holders(0)) == (["t1"], ["t2"])


def test_pick_takes_the_least_loaded_gpus(leases: GpuLeases) -> None:
    assert leases.acquire([0], "x", cap=2)
    assert leases.acquire([0, 1], "y", cap=2)
    assert leases.pick([0, 1, 2, 3], 2, "t", cap=2) == [2, 3]
    assert leases.pick([0, 1, 2, 3], 3, "u", cap=2) == [1, 2, 3]
    assert leases.pick([0, 1, 2, 3], 1, "v", cap=2) is None  # all four are full
    assert leases.holders(1) == ["u", "y"]


def test_pick_takes_nothing_when_too_few_gpus_are_free(leases: GpuLeases) -> None:
    assert leases.acquire([0], "x", cap=1)
    assert leases.pick([0, 1], 2, "t", cap=1) is None
    assert leases.holders(1) == []
    assert leases.pick([0, 1], 3, "t", cap=1) is None
    assert leases.pick([0, 1], 0, "t", cap=1) == []


def test_pick_again_by_the_same_holder_keeps_its_gpus(leases: GpuLeases) -> None:
    assert leases.pick([0, 1], 1, "t", cap=1) == [0]
    assert leases.pick([0, 1], 2, "t", cap=1) == [0, 1]


def test_pick_always_includes_the_required_gpu(leases: GpuLeases) -> None:
    assert leases.acquire([1], "x", cap=1)
    assert leases.pick([0, 2, 3], 2, "t", cap=1, required=[3]) == [3, 0]
    assert leases.pick([0, 1, 2], 2, "u", cap=1, required=[1]) is None  # gpu1 is full
    assert leases.holders(2) == []
    assert leases.pick([0, 1, 2], 1, "u", cap=1, required=[2]) == [2]


@pytest.mark.parametrize(("call", "match"), [
    (lambda lz: lz.acquire([0], "a", cap=0), "maxTrialNumberPerGpu is 0"),
    (lambda lz: lz.acquire([0, 0], "a", cap=1), "repeats"),
    (lambda lz: lz.pick([0, 1], -1, "a", cap=1), "trialGpuNumber"),
    (lambda lz: lz.pick([0, 1], 1, "a", cap=1, required=[0, 1]), "required"),
])
def test_bad_requests_are_gpu_errors(leases: GpuLeases, call: Callable[[GpuLeases], object],
                                     match: str) -> None:
    with pytest.raises(GpuError, match=match):
        call(leases)


@pytest.mark.parametrize(("host", "ttl"), [("", 30.0), ("a:b", 30.0), ("box", 0)])
def test_bad_construction_is_a_gpu_error(client: BrokerClient, host: str, ttl: float) -> None:
    with pytest.raises(GpuError):
        GpuLeases(client, host, ttl=ttl)
