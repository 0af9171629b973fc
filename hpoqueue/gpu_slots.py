"""GPU slots for one trial attempt on this box: leases in Redis, renewed by the trial's heartbeat."""

from __future__ import annotations

import socket

import redis

from hpoqueue.gpu import discover_gpus, queue_gpu, usable_gpus
from hpoqueue.gpu_lease import GpuLeases
from hpoqueue.protocol import TrialSpec


class GpuSlots:
    """Slots on this box's GPUs for one attempt, held in Redis leases renewed by the heartbeat."""

    def __init__(self, client: redis.Redis, spec: TrialSpec, queue: str, hostname: str) -> None:
        self.spec = spec
        self.first = queue_gpu(queue)
        self.leases = GpuLeases(client, socket.gethostname())
        self.holder = spec.attempt_id
        self.gpus: list[int] | None = None if spec.gpu_number is None else []
        del hostname

    def wanted(self) -> int:
        return 0 if self.first is None or not self.spec.gpu_number else self.spec.gpu_number

    def try_acquire(self) -> tuple[bool, str]:
        """Take every slot the trial needs, all or nothing; otherwise say why it waits."""
        count = self.wanted()
        if count == 0:
            return True, ""
        usable, reasons = usable_gpus(discover_gpus(), gpu_indices=None,
                                      use_active_gpu=self.spec.use_active_gpu)
        if self.first in reasons:
            return False, reasons[self.first]
        others = sorted((g.index for g in usable if g.index != self.first),
                        key=lambda i: len(self.leases.holders(i)))
        for extra in _combinations(others, count - 1):
            chosen = [self.first, *extra]
            if self.leases.acquire(chosen, self.holder, self.spec.gpu_cap):
                self.gpus = chosen
                return True, ""
        if len(others) + 1 < count:
            return False, f"needs {count} GPUs, {len(others) + 1} usable on this box"
        return False, f"gpu{self.first}: all {self.spec.gpu_cap} slot(s) taken"

    def renew(self) -> None:
        if self.gpus:
            self.leases.renew(self.gpus, self.holder)

    def release(self) -> None:
        if self.gpus:
            self.leases.release(self.gpus, self.holder)


def _combinations(items: list[int], k: int) -> list[tuple[int, ...]]:
    from itertools import combinations

    return list(combinations(items, k)) if k > 0 else [()]
