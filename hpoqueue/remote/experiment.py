"""The workers of a `platform: remote` experiment: started on each machine of machineList when its scheduler
starts and stopped when it ends. With the embedded broker each box reaches it through its SSH connection (a
remote port forward to 127.0.0.1 on the box: no port is opened to the network, and the boxes need not reach
this machine); a dropped connection is made again, forwarding the same port."""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from hpoqueue.broker.capacity import live_workers
from hpoqueue.broker.client import redis_client
from hpoqueue.config.experiment_config import ExperimentConfig, MachineConfig
from hpoqueue.errors import ConfigError
from hpoqueue.remote.box import Box
from hpoqueue.remote.ssh import HostKeys, RemoteError, label
from hpoqueue.remote.standing import agent_options
from hpoqueue.settings import known_hosts_file

log = logging.getLogger(__name__)

FORWARDS_FILE = "remote-forwards.json"  #: box -> port on that box, forwarded again after a crash (`resume`)
WATCH_EVERY = 1.0  #: seconds between two checks that each connection is alive
BOOT_TIMEOUT = 60.0  #: seconds the workers on the boxes have to announce themselves
FORWARD_RETRY = 15.0  #: seconds to wait for the box to free the port a dropped connection forwarded


class RemoteWorkers:
    """The boxes of one remote experiment, their workers, and the connections that carry the broker."""

    def __init__(self, config: ExperimentConfig, exp_id: str, work_dir: Path, broker_url: str,
                 embedded: bool) -> None:
        self.config = config
        self.exp_id = exp_id
        self.work_dir = work_dir
        self.broker_url = broker_url
        self.embedded = embedded
        self.keys = HostKeys(known_hosts_file())
        self.boxes: list[Box] = []
        self.ports: dict[str, int] = self._saved_ports()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._watcher = threading.Thread(target=self._watch, name="hpoqueue-ssh-watch", daemon=True)

    def agent_options(self, machine: MachineConfig) -> list[str]:
        """One worker per GPU (gpuIndices, maxTrialNumberPerGpu, useActiveGpu), or one `cpu` worker."""
        options = ["--experiment", self.exp_id]
        if self.config.trial_gpu_number:
            options += agent_options(machine)
        else:  # the scheduler bounds what runs; the box takes up to trialConcurrency trials
            options += ["--cpu", str(self.config.trial_concurrency)]
        if self.config.assessor is not None:
            options.append("--assess")
        return options

    def start(self, *, up: bool = True) -> list[str]:
        """Connect to every machine, forward the broker, start the workers (`up`: False only finds those
        still running, for `hpoqueue stop`); returns the queues served. A machine that fails is one line
        and the others go on; with none left, RemoteError."""
        with ThreadPoolExecutor(max_workers=min(16, len(self.config.training_service.machine_list))) as pool:
            results = list(pool.map(lambda m: self._start_box(m, up), self.config.training_service.machine_list))
        queues = {q.split("@")[0] for served, _error in results for q in served}
        errors = [error for _served, error in results if error]
        if up:
            self._wait_for_workers({q for served, _error in results for q in served})
        for error in errors:
            log.error("%s", error)
        if up and not queues:
            raise RemoteError(f"no machine of trainingService.machineList could start workers ({len(errors)} "
                              f"failed, see above); fix them, then `hpoqueue resume {self.exp_id}`")
        self._watcher.start()
        return sorted(queues) or ["cpu"]

    def _start_box(self, machine: MachineConfig, up: bool) -> tuple[list[str], str | None]:
        """Connect, forward, start (or find) the workers on one machine: the queues served, or the error."""
        try:
            box = Box(machine, self.keys)
        except RemoteError as exc:
            return [], str(exc)
        with self._lock:
            self.boxes.append(box)
        try:
            box.probe()
            self._forward(box)
            if up:
                facts = box.agent("up", *self.agent_options(machine), stdin=f"{self.box_broker(box)}\n")
            else:
                facts = box.agent("status", "--experiment", self.exp_id)
        except RemoteError as exc:
            return [], str(exc)
        return [f"{q}@{facts['hostname']}" for q in facts["workers"] if q != "assess"], None

    def _wait_for_workers(self, nodes: set[str]) -> None:
        """Wait until the workers started (`queue@host` nodes) have announced themselves to the broker, which
        takes them a second or two, so that the first trials spread over all of them; name the silent ones."""
        client = redis_client(self.broker_url)
        deadline = time.monotonic() + BOOT_TIMEOUT
        while missing := nodes - {w.name for w in live_workers(client)}:
            if time.monotonic() > deadline:
                log.warning(f"worker(s) {', '.join(sorted(missing))} did not start within {BOOT_TIMEOUT:g} s; "
                            f"their logs are in $HPOQUEUE_HOME/remote-workers/{self.exp_id}/ on their box")
                return
            time.sleep(0.1)

    def box_broker(self, box: Box) -> str:
        """The broker URL the workers on `box` use: its forwarded port there, or the cluster's broker."""
        if not self.embedded:
            return self.broker_url
        parts = urlsplit(self.broker_url)
        auth = f":{parts.password}@" if parts.password else ""
        return urlunsplit(parts._replace(netloc=f"{auth}127.0.0.1:{self.ports[box.name]}"))

    def _forward(self, box: Box) -> None:
        """Carry the embedded broker to 127.0.0.1 on the box, on the port it had before if any."""
        if not self.embedded:
            return
        local = urlsplit(self.broker_url).port
        assert local is not None
        wanted = self.ports.get(box.name, 0)
        deadline = time.monotonic() + FORWARD_RETRY
        while True:  # the port of a connection that just dropped is free once the box's sshd notices
            try:
                port = box.connection.forward(local, wanted)
                break
            except RemoteError:
                if not wanted or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        with self._lock:
            self.ports[box.name] = port
            (self.work_dir / FORWARDS_FILE).write_text(json.dumps(self.ports))

    def _saved_ports(self) -> dict[str, int]:
        try:
            return {str(k): int(v) for k, v in json.loads((self.work_dir / FORWARDS_FILE).read_text()).items()}
        except (OSError, ValueError, AttributeError):
            return {}

    def _watch(self) -> None:
        """Make a dropped connection again (with its port forward) until the experiment ends."""
        down: set[str] = set()
        while not self._stop.wait(WATCH_EVERY):
            for box in self.boxes:
                if box.connection.alive or self._stop.is_set():
                    continue
                try:
                    box.reconnect()
                    self._forward(box)
                except RemoteError as exc:
                    if box.name not in down:
                        log.warning(f"lost the connection to {box.name}, retrying every {WATCH_EVERY:g} s: "
                                    f"{str(exc).removeprefix(box.name + ': ')}")
                        down.add(box.name)
                    continue
                down.discard(box.name)
                log.info("reconnected to %s", box.name)

    def stop(self) -> None:
        """Stop the workers (and what they run) on every box, then close the connections."""
        self._stop.set()
        if self._watcher.is_alive():
            self._watcher.join()
        with ThreadPoolExecutor(max_workers=min(16, len(self.boxes) or 1)) as pool:
            list(pool.map(self._stop_box, self.boxes))

    def _stop_box(self, box: Box) -> None:
        try:
            if not box.connection.alive:
                box.reconnect()
            box.agent("down", "--experiment", self.exp_id)
        except RemoteError as exc:
            log.warning(f"could not stop the workers on {box.name}: {str(exc).removeprefix(box.name + ': ')}; "
                        f"stop them on the box with `python3 -m hpoqueue.remote.agent down --experiment {self.exp_id}`")
        finally:
            box.close()


def start_remote_workers(config: ExperimentConfig, exp_id: str, work_dir: Path, broker_url: str, embedded: bool,
                         stack: ExitStack, *, up: bool = True) -> list[str]:
    """The remote experiment's workers, stopped by `stack`; returns the queues they serve."""
    workers = RemoteWorkers(config, exp_id, work_dir, broker_url, embedded)
    stack.callback(workers.stop)
    return workers.start(up=up)


def check_machines(config: ExperimentConfig) -> None:
    """Every machine of machineList is listed once, can be reached and runs this hpoqueue: else one line."""

    def probe(machine: MachineConfig) -> None:
        box = Box(machine, HostKeys(known_hosts_file()))
        try:
            box.probe()
        finally:
            box.close()

    machines = config.training_service.machine_list
    seen: dict[str, int] = {}
    for i, machine in enumerate(machines):
        first = seen.setdefault(label(machine), i)
        if first != i:
            raise ConfigError(f"repeats {label(machine)} of machineList[{first}]", source=config.source,
                              field=f"trainingService.machineList[{i}]",
                              hint="one entry per box: list all its GPUs in that entry's gpuIndices")
    with ThreadPoolExecutor(max_workers=min(16, len(machines))) as pool:
        list(pool.map(probe, machines))  # the first failure is raised
