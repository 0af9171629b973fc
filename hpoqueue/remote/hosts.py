"""The hosts file of `hpoqueue workers up HOSTS.yml`: a broker, defaults, and one entry per box with NNI's
machineList fields (host, port, user, password, sshKeyFile, pythonPath, gpuIndices, ...)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hpoqueue.config.experiment_config import MachineConfig, machine_from_dict, read_yaml
from hpoqueue.errors import ConfigError, read_text

_TOP = ("broker", "defaults", "hosts")


@dataclass(frozen=True)
class HostsFile:
    """The boxes to run standing workers on, and the broker they serve (None: $HPOQUEUE_BROKER_URL)."""

    broker: str | None
    machines: tuple[MachineConfig, ...]


def load_hosts(path: str | Path) -> HostsFile:
    """Read and check a hosts file; each entry is `defaults` overlaid with the entry's own fields."""
    path = Path(os.path.abspath(os.path.expanduser(str(path))))
    source = str(path)
    raw = read_yaml(read_text(path, ConfigError, "hosts file", "check the path"), source=source)
    if not isinstance(raw, dict):
        raise ConfigError("must be a mapping with a 'hosts' list", source=source,
                          hint="see workers/hosts.example.yml")
    unknown = next((k for k in raw if k not in _TOP), None)
    if unknown is not None:
        raise ConfigError(f"unknown field '{unknown}'", source=source, field=str(unknown),
                          hint=f"accepted here: {', '.join(_TOP)}")
    defaults = raw.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ConfigError(f"must be a mapping, not {defaults!r}", source=source, field="defaults")
    hosts = raw.get("hosts")
    if not isinstance(hosts, list) or not hosts:
        raise ConfigError("needs a non-empty list of boxes", source=source, field="hosts",
                          hint="for example hosts: [{host: gpu-box-1, user: alice}]")
    machines = []
    for i, entry in enumerate(hosts):
        if not isinstance(entry, dict):
            raise ConfigError(f"must be a mapping, not {entry!r}", source=source, field=f"hosts[{i}]",
                              hint="for example - host: gpu-box-1")
        machines.append(machine_from_dict({**defaults, **entry}, f"hosts[{i}]", source=source,
                                          base_dir=path.parent))
    broker = raw.get("broker")
    if broker is not None and not (isinstance(broker, str) and broker.strip()):
        raise ConfigError(f"must be a Redis URL, not {broker!r}", source=source, field="broker",
                          hint="for example broker: redis://head:6379/0")
    return HostsFile(broker=broker, machines=tuple(machines))
