"""`hpoqueue workers up|down|status HOSTS.yml`: standing workers on the boxes of a hosts file, one table row
per box. A box that fails is one line naming it and the fix; the others go on."""

from __future__ import annotations

import argparse
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hpoqueue.broker.embedded import redact, resolve_broker_url
from hpoqueue.cli.tables import table
from hpoqueue.config.experiment_config import MachineConfig
from hpoqueue.errors import BrokerError
from hpoqueue.remote.box import Box
from hpoqueue.remote.hosts import load_hosts
from hpoqueue.remote.ssh import HostKeys, RemoteError, label
from hpoqueue.settings import known_hosts_file

log = logging.getLogger(__name__)

HEADERS = ["host", "reachable", "workers", "GPUs", "running trials", "note"]


def agent_options(machine: MachineConfig) -> list[str]:
    """The agent's options for a machine entry: gpuIndices, maxTrialNumberPerGpu, useActiveGpu."""
    options = ["--cap", str(machine.max_trial_number_per_gpu)]
    if machine.gpu_indices is not None:
        options += ["--gpus", ",".join(map(str, machine.gpu_indices))]
    if machine.use_active_gpu:
        options.append("--use-active-gpu")
    return options


def row(name: str, facts: dict[str, Any], note: str) -> list[Any]:
    workers = ", ".join(sorted(facts.get("workers", {}))) or "none"
    gpus = ", ".join(map(str, facts.get("gpus", []))) or "none"
    return [name, "yes", workers, gpus, facts.get("running_trials", 0), note]


def on_box(action: str, machine: MachineConfig, keys: HostKeys, broker: str | None,
           install: bool) -> tuple[list[Any], str | None]:
    """Do `action` on one box: its table row, and the error line when it failed."""
    try:
        box = Box(machine, keys)
    except RemoteError as exc:
        return [label(machine), "no", "-", "-", "-", "see the error above"], str(exc)
    try:
        box.probe(install=install and action == "up")
        if action == "up":
            facts = box.agent("up", *agent_options(machine), stdin=f"{broker}\n")
            started, skipped = facts.get("started", []), facts.get("skipped", [])
            note = f"started {', '.join(started)}" if started else "already running"
            if skipped:
                note += f"; skipped {'; '.join(skipped)}"
        elif action == "down":
            facts = box.agent("down")
            note = f"stopped {', '.join(facts['stopped'])}" if facts.get("stopped") else "nothing was running"
        else:
            facts = box.agent("status")
            note = f"hpoqueue {facts['version']} on {facts['hostname']}"
        return row(box.name, facts, note), None
    except RemoteError as exc:
        return [box.name, "yes", "-", "-", "-", "see the error above"], str(exc)
    finally:
        box.close()


def hosts_command(args: argparse.Namespace) -> int:
    """`hpoqueue workers up|down|status HOSTS.yml`; exit status 2 unless every box succeeded."""
    hosts = load_hosts(args.hosts)
    broker = None
    if args.action == "up":
        broker = resolve_broker_url(args.broker, hosts.broker)
        if broker is None:
            raise BrokerError(f"{args.hosts}: no broker for the workers (set broker: redis://HOST:6379/0 in the file, "
                              "--broker, or HPOQUEUE_BROKER_URL; every box must reach it)")
    keys = HostKeys(known_hosts_file(args.known_hosts), accept_new=args.accept_new_host_keys)
    with ThreadPoolExecutor(max_workers=min(16, len(hosts.machines))) as pool:
        results = list(pool.map(lambda m: on_box(args.action, m, keys, broker, args.install), hosts.machines))
    failures = [error for _row, error in results if error]
    for error in failures:
        log.error("%s", error)
    print(table(HEADERS, [r for r, _error in results]))
    if broker and not failures:
        log.info("workers serve %s", redact(broker))
    return 2 if failures else 0
