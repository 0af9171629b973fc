"""Every HPOQUEUE_* variable hpoqueue reads and every path it keeps things in, in one place.

Each accessor reads the environment when it is called, not at import: tests and the processes hpoqueue
starts set variables after this module is loaded. docs/config.md lists each variable with its meaning and
default (tests/test_settings.py holds the two together). The variables a trial reads (its parameters and
metric file) are named in trial.py, which every trial imports and which must stay cheap to import.
Kept free of heavy imports so that the CLI's reading commands start quickly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from hpoqueue.errors import ConfigError, GpuError, StorageError

# ---- the variables hpoqueue reads -----------------------------------------------------------------------
ENV_HOME = "HPOQUEUE_HOME"  #: hpoqueue's home: the default database and experiment directories
ENV_STORAGE = "HPOQUEUE_STORAGE_URL"  #: the database when neither --storage nor the config names one
ENV_BROKER = "HPOQUEUE_BROKER_URL"  #: the Redis broker when neither --broker nor the config names one
ENV_BROKER_CA = "HPOQUEUE_BROKER_CA"  #: CA bundle for rediss:// brokers with a private CA
ENV_STORAGE_WAIT = "HPOQUEUE_STORAGE_WAIT"  #: seconds the scheduler waits for a database that went away
ENV_UMASK = "HPOQUEUE_UMASK"  #: octal umask for what hpoqueue creates
ENV_FAKE_GPUS = "HPOQUEUE_FAKE_GPUS"  #: simulated GPUs instead of NVML / nvidia-smi
ENV_GPU_MAP = "HPOQUEUE_GPU_MAP"  #: per-box override of which GPU a queue pins, e.g. gpu0=2,gpu1=3
ENV_GPU_LEASE_TTL = "HPOQUEUE_GPU_LEASE_TTL"  #: seconds a GPU slot outlives its worker's last renewal
ENV_CODE_CACHE = "HPOQUEUE_CODE_CACHE"  #: where a box unpacks shipped trial code
ENV_RUN_DIR = "HPOQUEUE_RUN_DIR"  #: where a box links the directory of each trial it runs
ENV_CGROUP = "HPOQUEUE_CGROUP"  #: `off` runs trials without a cgroup of their own
ENV_KNOWN_HOSTS = "HPOQUEUE_KNOWN_HOSTS"  #: the known_hosts file SSH host keys are checked against

# ---- the variables hpoqueue sets for the processes it starts (the trial's own: trial.py) ---------------
#: the experiment's gpuIndices ("0,1"), set by the scheduler in a trial spec and seen by the trial
ENV_GPU_INDICES = "HPOQUEUE_GPU_INDICES"

DEFAULT_STORAGE_WAIT = 120.0
DEFAULT_UMASK = 0o077  #: what hpoqueue creates is its owner's alone
DEFAULT_GPU_LEASE_TTL = 30.0
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
PBT_CHECKPOINT_DIR = "~/hpoqueue-checkpoints"  #: PBT's all_checkpoint_dir when the config names none
REMOTE_VENV = ".hpoqueue/venv"  #: where `workers up --install` puts hpoqueue on a box, under its $HOME
_OFF = ("0", "off", "no", "false")


def _text(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """The variable's value, None when unset or blank."""
    value = (os.environ if env is None else env).get(name, "").strip()
    return value or None


# ---- where things are ------------------------------------------------------------------------------------
def home_dir() -> Path:
    """Where hpoqueue keeps its database and experiments: $HPOQUEUE_HOME or ~/hpoqueue-experiments."""
    return Path(_text(ENV_HOME) or Path.home() / "hpoqueue-experiments").expanduser()


def storage_url(cli_value: str | None = None, config_value: str | None = None) -> str:
    """`--storage`, else the config's `storage`, else $HPOQUEUE_STORAGE_URL, else SQLite in home_dir()."""
    return cli_value or config_value or _text(ENV_STORAGE) or f"sqlite:///{home_dir() / 'hpoqueue.db'}"


def broker_url() -> str | None:
    """$HPOQUEUE_BROKER_URL, the broker when neither `--broker` nor the config names one (None: none)."""
    return _text(ENV_BROKER)


def broker_ca() -> str | None:
    """$HPOQUEUE_BROKER_CA: the CA bundle that verifies a rediss:// broker (None: the system's CAs)."""
    return _text(ENV_BROKER_CA)


def workers_dir() -> Path:
    """Where `hpoqueue workers start` keeps pid files and logs, so `stop` and `status` find them later."""
    return home_dir() / "workers"


def remote_workers_dir(exp_id: str) -> Path:
    """Where a box keeps the pid files and logs of the workers a remote experiment started on it."""
    return home_dir() / "remote-workers" / exp_id


def attempt_dir(work_dir: str | Path, seq: int, attempt: int) -> Path:
    """An attempt's files (trial.stdout, trial.stderr, trial.log) in its experiment's directory."""
    return Path(work_dir) / "trials" / str(seq) / f"attempt-{attempt}"


def box_attempt_dir(exp_id: str, seq: int, attempt: int) -> Path:
    """An attempt's files on a box that cannot write to the scheduler's directory: under its own home."""
    return attempt_dir(home_dir() / exp_id, seq, attempt)


def code_cache_dir() -> Path:
    """Where this box keeps unpacked trial code: $HPOQUEUE_CODE_CACHE or ~/.hpoqueue/code."""
    return Path(_text(ENV_CODE_CACHE) or Path.home() / ".hpoqueue" / "code").expanduser()


def running_dir() -> Path:
    """Where this box links the directory of every trial it runs: $HPOQUEUE_RUN_DIR or ~/.hpoqueue/running.
    After a worker is SIGKILLed, the next worker to start finds the trials' process groups there."""
    return Path(_text(ENV_RUN_DIR) or Path.home() / ".hpoqueue" / "running").expanduser()


def known_hosts_file(option: str | None = None) -> Path:
    """`--known-hosts`, else $HPOQUEUE_KNOWN_HOSTS, else ~/.ssh/known_hosts: where SSH host keys are checked
    and where `--accept-new-host-keys` records new ones."""
    return Path(option or _text(ENV_KNOWN_HOSTS) or DEFAULT_KNOWN_HOSTS).expanduser()


def pbt_checkpoint_dir(configured: str | None = None) -> Path:
    """PBT's all_checkpoint_dir from the config, else ~/hpoqueue-checkpoints."""
    return Path(configured or PBT_CHECKPOINT_DIR).expanduser()


# ---- behaviour -------------------------------------------------------------------------------------------
def storage_wait() -> float:
    """Seconds the scheduler waits for a database that went away: $HPOQUEUE_STORAGE_WAIT, default 120."""
    text = _text(ENV_STORAGE_WAIT)
    try:
        return float(text) if text else DEFAULT_STORAGE_WAIT
    except ValueError:
        raise StorageError(f"${ENV_STORAGE_WAIT} must be a number of seconds, not {text!r}") from None


def umask() -> int:
    """The umask for what hpoqueue and its children create: $HPOQUEUE_UMASK (octal, e.g. 027 to share with
    the group), default 077 (owner only)."""
    text = _text(ENV_UMASK)
    if text is None:
        return DEFAULT_UMASK
    try:
        mask = int(text, 8)
    except ValueError:
        mask = -1
    if not 0 <= mask <= 0o777:
        raise ConfigError(f"{text!r} is not an octal umask", field=f"${ENV_UMASK}",
                          hint="for example 077 (owner only) or 027 (the group may read)")
    return mask


def fake_gpus(env: Mapping[str, str] | None = None) -> str | None:
    """$HPOQUEUE_FAKE_GPUS: simulated GPUs (a count, or recorded nvidia-smi output), None for the real ones."""
    return _text(ENV_FAKE_GPUS, env)


def gpu_map(env: Mapping[str, str] | None = None) -> str:
    """$HPOQUEUE_GPU_MAP: which GPU each queue pins on this box (`gpu0=2,gpu1=3`), empty for gpuN -> N."""
    return _text(ENV_GPU_MAP, env) or ""


def gpu_lease_ttl(env: Mapping[str, str] | None = None) -> float:
    """Seconds a GPU slot outlives its worker's last renewal: $HPOQUEUE_GPU_LEASE_TTL, default 30."""
    text = _text(ENV_GPU_LEASE_TTL, env)
    try:
        return float(text) if text else DEFAULT_GPU_LEASE_TTL
    except ValueError as exc:
        raise GpuError(f"{ENV_GPU_LEASE_TTL}={text!r} is not a number of seconds (e.g. 30)") from exc


def cgroups_enabled() -> bool:
    """False when $HPOQUEUE_CGROUP is off (0, off, no, false): trials then run in a process group only."""
    return (_text(ENV_CGROUP) or "").lower() not in _OFF


# ---- what an experiment remembers ------------------------------------------------------------------------
def remember_broker(work_dir: Path, url: str) -> None:
    """Record the broker an experiment runs on, for `resume` and the CLI's kill/stop/update."""
    _write_private(work_dir / "broker.url", url)


def stored_broker(work_dir: Path) -> str | None:
    """The broker recorded for the experiment in `work_dir`, if any."""
    try:
        return (work_dir / "broker.url").read_text().strip() or None
    except OSError:
        return None


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (it may hold a broker password)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
