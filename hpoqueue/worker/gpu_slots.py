"""GPU slots for one trial attempt on this box: leases in Redis, taken in one atomic call, renewed by the
trial's heartbeat, so the per-(host, GPU) cap holds across every worker of the box and a dead worker's
slots free themselves after the lease TTL."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Sequence

from hpoqueue import settings
from hpoqueue.broker.client import BrokerClient, Pipeline
from hpoqueue.broker.protocol import TrialSpec, attempt_experiment
from hpoqueue.errors import GpuError
from hpoqueue.gpu import GpuInfo, discover_gpus, queue_gpu, trial_pids, usable_gpus
from hpoqueue.settings import ENV_GPU_INDICES, ENV_GPU_LEASE_TTL
from hpoqueue.worker.gpu_lease import GpuLeases

log = logging.getLogger(__name__)

#: a lease must outlive a few heartbeats, or a slow heartbeat would free a slot still in use
MIN_TTL_HEARTBEATS = 1.5


def lease_ttl(heartbeat_interval: float) -> float:
    """Seconds a slot outlives its last renewal: $HPOQUEUE_GPU_LEASE_TTL (default 30), at least 1.5
    heartbeat intervals."""
    ttl = settings.gpu_lease_ttl()
    floor = MIN_TTL_HEARTBEATS * heartbeat_interval
    if ttl < floor:
        log.warning("%s=%g is shorter than %.1f heartbeat intervals; using %g s", ENV_GPU_LEASE_TTL, ttl,
                    MIN_TTL_HEARTBEATS, floor)
    return max(ttl, floor)


def gpu_indices_env(gpu_indices: Sequence[int] | None) -> dict[str, str]:
    """What the scheduler puts in a spec's extra_env so workers honour gpuIndices (the trial sees it too)."""
    return {} if gpu_indices is None else {ENV_GPU_INDICES: ",".join(str(i) for i in gpu_indices)}


def allowed_gpus(spec: TrialSpec) -> list[int] | None:
    """The experiment's gpuIndices as the scheduler passed them in the spec, None for every GPU."""
    text = spec.extra_env.get(ENV_GPU_INDICES)
    if text is None:
        return None
    try:
        return [int(i) for i in text.split(",") if i.strip()]
    except ValueError as exc:
        raise GpuError(f"{ENV_GPU_INDICES}={text!r} in the trial spec is not a list like 0,1") from exc


class GpuSlots:
    """The slots one attempt holds on this box's GPUs: the GPU its queue names plus, for trials needing
    more, the least-loaded other usable GPUs of the box (all or nothing)."""

    def __init__(self, client: BrokerClient, spec: TrialSpec, queue: str, node: str = "") -> None:
        self.spec = spec
        self.node = node or socket.gethostname()  #: the Celery node name, for log messages
        self.first = queue_gpu(queue)
        # keyed by the machine, not the Celery node: every worker of this box shares the cap
        self.leases = GpuLeases(client, socket.gethostname(), ttl=lease_ttl(spec.heartbeat_interval))
        self.holder = spec.attempt_id
        self.allowed = allowed_gpus(spec)
        #: the GPUs pinned for the trial: None leaves CUDA_VISIBLE_DEVICES alone, [] hides every GPU
        self.gpus: list[int] | None = None if spec.gpu_number is None else []

    def wanted(self) -> int:
        """How many GPUs to lease: trialGpuNumber on a GPU queue, none on `cpu`."""
        return 0 if self.first is None or not self.spec.gpu_number else self.spec.gpu_number

    def try_acquire(self) -> tuple[bool, str]:
        """Take every slot the trial needs in one atomic Redis call; otherwise say why it waits."""
        count = self.wanted()
        if count == 0:
            return True, ""
        first = self.first
        assert first is not None  # wanted() is 0 on the cpu queue
        gpus = discover_gpus()
        if first not in {g.index for g in gpus}:
            return False, f"gpu{first} is not on this box ({self.node})"
        usable, skipped = usable_gpus(gpus, gpu_indices=None, use_active_gpu=self.spec.use_active_gpu,
                                      our_pids=self._our_trials(gpus))
        if first in skipped:
            return False, skipped[first]
        others = [g.index for g in usable if g.index != first
                  and (self.allowed is None or g.index in self.allowed)]
        if len(others) + 1 < count:
            why = "; ".join(skipped[i] for i in sorted(skipped) if self.allowed is None or i in self.allowed)
            return False, f"needs {count} GPUs, {len(others) + 1} usable on this box" + (f" ({why})" if why else "")
        chosen = self.leases.pick(others, count, self.holder, self.spec.gpu_cap, required=[first])
        if chosen is None:
            if len(self.leases.holders(first)) >= self.spec.gpu_cap:
                return False, f"gpu{first}: all {self.spec.gpu_cap} slot(s) taken"
            return False, f"needs {count} GPUs with a free slot; fewer are free on this box now"
        self.gpus = sorted(chosen)
        return True, ""

    def _our_trials(self, gpus: Sequence[GpuInfo]) -> set[int]:
        """The processes on `gpus` that are trials of experiments holding leases on this broker: a trial of
        another experiment whose slots another broker counts (a second local run) uses the GPU as any
        foreign process does."""
        if self.spec.use_active_gpu or not any(gpu.processes for gpu in gpus):
            return set()
        holders = [holder for gpu in gpus for holder in self.leases.holders(gpu.index)]
        return trial_pids(gpus, experiments={attempt_experiment(holder) for holder in holders})

    def renew_in(self, pipe: Pipeline) -> Callable[[], bool]:
        """Queue the leases' extension in `pipe` (sent with each heartbeat, in one round trip); call what it
        returns once `pipe` ran: a lease that expired meanwhile (a stalled worker, a broker restart) is taken
        again if the cap allows, and it says whether the slots are held."""
        if not self.gpus:
            return lambda: True
        reply = self.leases.renew_in(self.gpus, self.holder, pipe)
        return lambda: self._renewed(bool(reply.value))

    def _renewed(self, extended: bool) -> bool:
        """After a renewal (`extended`: every lease was): take an expired lease again if the cap allows;
        False when it could not be."""
        if extended or not self.gpus:
            return True
        if self.leases.acquire(self.gpus, self.holder, self.spec.gpu_cap):
            log.warning("%s: the GPU lease of %s on gpu %s had expired; taken again", self.node, self.holder,
                        self.gpus)
            return True
        log.error("%s: %s lost its slot on gpu %s to other trials (lease expired, cap %d full); it keeps "
                  "running over the cap", self.node, self.holder, self.gpus, self.spec.gpu_cap)
        return False

    def release(self) -> None:
        """Give the slots back as soon as the trial ends; a second call does nothing."""
        if self.gpus:
            self.leases.release(self.gpus, self.holder)
            self.gpus = []

    def release_in(self, pipe: Pipeline) -> None:
        """Queue the release of the slots in `pipe` (a transaction, which may be built again to retry it);
        once it ran, the caller empties `gpus`."""
        if self.gpus:
            self.leases.release(self.gpus, self.holder, pipe)
