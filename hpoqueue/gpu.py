"""GPU facts and GPU policy: discovery (NVML, nvidia-smi, fakes), queue names, and which GPUs a trial may use.

Pure functions and small frozen classes; nothing happens at import time (pynvml is imported lazily) and
`CUDA_VISIBLE_DEVICES` is only ever set in a copy of an environment meant for a child process.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from hpoqueue import settings
from hpoqueue.errors import GpuError
from hpoqueue.settings import ENV_FAKE_GPUS, ENV_GPU_MAP
from hpoqueue.trial import EXP_ID_ENV, PARAMETER_FILE_ENV

log = logging.getLogger(__name__)

QUERY_GPU_FIELDS = "index,uuid,name,memory.total,memory.used,memory.free,utilization.gpu,temperature.gpu"
QUERY_APPS_FIELDS = "gpu_uuid,pid,used_memory"
NVIDIA_SMI_TIMEOUT = 10.0
_MIB = 1024 * 1024
_FAKE_MEMORY_MIB = 81559  # what a real H100 80GB HBM3 reports
_QUEUE_RE = re.compile(r"gpu(0|[1-9][0-9]*)")
#: every trial's environment names its parameter file, so its processes (and theirs) are recognisable
TRIAL_MARKER = f"{PARAMETER_FILE_ENV}=".encode()
#: and its experiment, which tells a trial of ours from one of another experiment with another broker
EXPERIMENT_MARKER = f"{EXP_ID_ENV}=".encode()


@dataclass(frozen=True)
class GpuProcess:
    """A compute process on a GPU; `used_memory_mib` is None where the driver does not say."""

    pid: int
    used_memory_mib: int | None


@dataclass(frozen=True)
class GpuInfo:
    """One GPU as the driver reports it. Memory the driver does not report reads 0, utilization None."""

    index: int
    uuid: str
    name: str
    memory_total_mib: int
    memory_used_mib: int
    utilization: int | None
    processes: tuple[GpuProcess, ...] = ()


# --- nvidia-smi CSV ------------------------------------------------------------------------------------

def _optional_int(text: str) -> int | None:
    """An integer cell, or None for nvidia-smi's "[N/A]", "[Not Supported]" and friends."""
    text = text.strip()
    if text.startswith("[") or text in ("", "N/A"):
        return None
    return int(float(text))


def _csv_rows(text: str, columns: int, what: str) -> list[list[str]]:
    """Non-blank rows of `nvidia-smi --format=csv,noheader,nounits` output, each of `columns` cells."""
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        cells = [cell.strip() for cell in line.split(",")]
        if len(cells) != columns:
            raise GpuError(f"{what} line {number}: expected {columns} comma-separated values, got "
                           f"{len(cells)} in {line.strip()!r} (run it with --format=csv,noheader,nounits)")
        rows.append(cells)
    return rows


def parse_query_gpu(text: str) -> list[GpuInfo]:
    """GPUs from `nvidia-smi --query-gpu=QUERY_GPU_FIELDS --format=csv,noheader,nounits` output."""
    gpus = []
    for cells in _csv_rows(text, len(QUERY_GPU_FIELDS.split(",")), "nvidia-smi --query-gpu"):
        index, uuid, name, total, used, _free, util, _temp = cells
        try:
            gpus.append(GpuInfo(index=int(index), uuid=uuid, name=name,
                                memory_total_mib=_optional_int(total) or 0,
                                memory_used_mib=_optional_int(used) or 0,
                                utilization=_optional_int(util), processes=()))
        except ValueError as exc:
            row = ", ".join(cells)
            raise GpuError(f"nvidia-smi --query-gpu: cannot read GPU row {row!r}: {exc}") from exc
    return gpus


def attach_processes(gpus: Sequence[GpuInfo], apps_text: str) -> list[GpuInfo]:
    """`gpus` with their processes from `nvidia-smi --query-compute-apps=QUERY_APPS_FIELDS` output."""
    by_uuid: dict[str, list[GpuProcess]] = {gpu.uuid: [] for gpu in gpus}
    for uuid, pid, used in _csv_rows(apps_text, len(QUERY_APPS_FIELDS.split(",")),
                                     "nvidia-smi --query-compute-apps"):
        try:
            process = GpuProcess(pid=int(pid), used_memory_mib=_optional_int(used))
        except ValueError as exc:
            raise GpuError(f"nvidia-smi --query-compute-apps: cannot read pid {pid!r} on {uuid}") from exc
        if uuid in by_uuid:
            by_uuid[uuid].append(process)
    return [replace(gpu, processes=gpu.processes + tuple(by_uuid[gpu.uuid])) for gpu in gpus]


# --- discovery ---------------------------------------------------------------------------------------

def fake_gpus(count: int) -> list[GpuInfo]:
    """`count` idle H100-like GPUs with made-up, stable UUIDs (for tests and CPU-only development boxes)."""
    return [GpuInfo(index=i, uuid=f"GPU-fake0000-0000-0000-0000-{i:012d}", name="Fake NVIDIA H100 80GB HBM3",
                    memory_total_mib=_FAKE_MEMORY_MIB, memory_used_mib=0, utilization=0, processes=())
            for i in range(count)]


def _gpus_from_files(query_path: Path, apps_path: Path | None) -> list[GpuInfo]:
    """GPUs from recorded nvidia-smi output files."""
    try:
        gpus = parse_query_gpu(query_path.read_text())
        return attach_processes(gpus, apps_path.read_text()) if apps_path is not None else gpus
    except OSError as exc:
        raise GpuError(f"{ENV_FAKE_GPUS}: cannot read {exc.filename}: {exc.strerror}") from exc


def _fake_from_env(value: str) -> list[GpuInfo]:
    """HPOQUEUE_FAKE_GPUS: a count, a directory with query_gpu.csv (+ compute_apps.csv), or q.csv:a.csv."""
    value = value.strip()
    if value.lstrip("-").isdigit():
        if int(value) < 0:
            raise GpuError(f"{ENV_FAKE_GPUS}={value}: the GPU count cannot be negative (use 0 for none)")
        return fake_gpus(int(value))
    path = Path(value).expanduser()
    if path.is_dir():
        apps = path / "compute_apps.csv"
        return _gpus_from_files(path / "query_gpu.csv", apps if apps.exists() else None)
    if ":" in value:
        query, apps_name = value.rsplit(":", 1)
        return _gpus_from_files(Path(query).expanduser(), Path(apps_name).expanduser())
    raise GpuError(f"{ENV_FAKE_GPUS}={value!r} is neither a GPU count, a directory holding query_gpu.csv and "
                   "compute_apps.csv, nor 'query.csv:apps.csv' (e.g. HPOQUEUE_FAKE_GPUS=4)")


def _text(value: str | bytes) -> str:
    """NVML strings are bytes in old nvidia-ml-py releases and str in new ones."""
    return value.decode() if isinstance(value, bytes) else value


def _gpus_from_nvml() -> list[GpuInfo] | None:
    """GPUs through NVML (nvidia-ml-py), or None when the library or the driver is missing."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        log.debug("NVML unavailable (%s); trying nvidia-smi", exc)
        return None
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            try:
                utilization: int | None = int(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            except pynvml.NVMLError:
                utilization = None
            processes = tuple(
                GpuProcess(pid=int(p.pid),
                           used_memory_mib=None if p.usedGpuMemory is None else int(p.usedGpuMemory) // _MIB)
                for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle))
            gpus.append(GpuInfo(index=index, uuid=_text(pynvml.nvmlDeviceGetUUID(handle)),
                                name=_text(pynvml.nvmlDeviceGetName(handle)),
                                memory_total_mib=int(memory.total) // _MIB,
                                memory_used_mib=int(memory.used) // _MIB,
                                utilization=utilization, processes=processes))
        return gpus
    except pynvml.NVMLError as exc:
        log.warning("NVML failed while listing GPUs (%s); trying nvidia-smi", exc)
        return None
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass


def _nvidia_smi(executable: str, query: str) -> str:
    """stdout of one `nvidia-smi --query-...=... --format=csv,noheader,nounits` call."""
    result = subprocess.run([executable, query, "--format=csv,noheader,nounits"], capture_output=True,
                            text=True, timeout=NVIDIA_SMI_TIMEOUT, check=True)
    return result.stdout


def _gpus_from_nvidia_smi(env: Mapping[str, str]) -> list[GpuInfo] | None:
    """GPUs through the `nvidia-smi` on PATH, or None when there is none or it fails."""
    executable = shutil.which("nvidia-smi", path=env.get("PATH"))
    if executable is None:
        return None
    try:
        gpus = parse_query_gpu(_nvidia_smi(executable, f"--query-gpu={QUERY_GPU_FIELDS}"))
        return attach_processes(gpus, _nvidia_smi(executable, f"--query-compute-apps={QUERY_APPS_FIELDS}"))
    except (OSError, subprocess.SubprocessError, GpuError) as exc:
        detail = getattr(exc, "stdout", None) or exc
        log.warning("nvidia-smi failed (%s); treating this box as having no GPU", str(detail).strip())
        return None


def discover_gpus(env: Mapping[str, str] = os.environ) -> list[GpuInfo]:
    """This box's GPUs: $HPOQUEUE_FAKE_GPUS if set, else NVML, else `nvidia-smi`, else none."""
    fake = settings.fake_gpus(env)
    if fake is not None:
        return _fake_from_env(fake)
    for source in (_gpus_from_nvml, lambda: _gpus_from_nvidia_smi(env)):
        gpus = source()
        if gpus is not None:
            return gpus
    return []


# --- queues and environments -------------------------------------------------------------------------

def queue_gpu(queue: str, env: Mapping[str, str] = os.environ) -> int | None:
    """The GPU index a queue pins on this box ("gpu3" -> 3), None for the "cpu" queue.

    $HPOQUEUE_GPU_MAP overrides the mapping on a box whose GPUs are numbered differently, e.g.
    ``gpu0=2,gpu1=3`` makes a worker of queue gpu0 pin GPU 2.
    """
    if queue == "cpu":
        return None
    overrides = parse_gpu_map(settings.gpu_map(env))
    if queue in overrides:
        return overrides[queue]
    match = _QUEUE_RE.fullmatch(queue)
    if match is None:
        raise GpuError(f"queue {queue!r} names no GPU slot (use gpu<N> with N a GPU index without leading "
                       "zeros, e.g. gpu0, or cpu for CPU trials)")
    return int(match.group(1))


def parse_gpu_map(text: str) -> dict[str, int]:
    """``gpu0=2,gpu1=3`` -> {"gpu0": 2, "gpu1": 3}; anything else is a GpuError naming the variable."""
    mapping: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        queue, _, index = item.partition("=")
        if not _QUEUE_RE.fullmatch(queue.strip()) or not index.strip().isdigit():
            raise GpuError(f"{ENV_GPU_MAP}: {item!r} is not of the form gpu<N>=<GPU index> (e.g. gpu0=2,gpu1=3)")
        mapping[queue.strip()] = int(index)
    return mapping


def _check_indices(indices: Sequence[int]) -> None:
    negative = [i for i in indices if i < 0]
    if negative:
        raise GpuError(f"GPU index {negative[0]} is negative (indices start at 0, as in nvidia-smi)")


def gpu_queue(index: int) -> str:
    """The queue name of GPU `index` (3 -> "gpu3")."""
    _check_indices([index])
    return f"gpu{index}"


def visible_devices(indices: Sequence[int]) -> str:
    """The CUDA_VISIBLE_DEVICES value for `indices` ([0, 3] -> "0,3"; [] -> "", i.e. no GPU)."""
    _check_indices(indices)
    return ",".join(str(i) for i in indices)


def trial_env(indices: Sequence[int] | None, base: Mapping[str, str]) -> dict[str, str]:
    """A copy of `base` for a trial child: CUDA_VISIBLE_DEVICES pinned to `indices` ('' for none).

    None means trialGpuNumber is unset, so the variable is left as it is. When pinning, CUDA_DEVICE_ORDER
    defaults to PCI_BUS_ID so that CUDA numbers GPUs as nvidia-smi and NVML do (CUDA's own default is
    "fastest first", which differs on boxes with mixed GPUs).
    """
    env = dict(base)
    if indices is not None:
        env["CUDA_VISIBLE_DEVICES"] = visible_devices(indices)
        env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    return env


# --- policy ------------------------------------------------------------------------------------------

def trial_experiment(pid: int) -> str | None:
    """The experiment of process `pid` on this box if it is an hpoqueue trial or a child of one (its
    environment has TRIAL_MARKER), else None. A process we may not read, another user's, is not a trial."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            items = fh.read().split(b"\0")
    except OSError:
        return None
    if not any(item.startswith(TRIAL_MARKER) for item in items):
        return None
    return next((i[len(EXPERIMENT_MARKER):].decode(errors="replace") for i in items
                 if i.startswith(EXPERIMENT_MARKER)), "")


def trial_pids(gpus: Sequence[GpuInfo], experiments: Collection[str] | None = None) -> set[int]:
    """The processes on `gpus` that are hpoqueue trials, of `experiments` only when given: the trials whose
    slots the leases count, so that they do not make a GPU "active" for useActiveGpu: false."""
    pids = set()
    for pid in {p.pid for gpu in gpus for p in gpu.processes}:
        experiment = trial_experiment(pid)
        if experiment is not None and (experiments is None or experiment in experiments):
            pids.add(pid)
    return pids


def foreign_processes(gpu: GpuInfo, our_pids: Collection[int]) -> list[GpuProcess]:
    """Processes on `gpu` that are not ours (useActiveGpu: false skips GPUs that have any)."""
    return [p for p in gpu.processes if p.pid not in our_pids]


def usable_gpus(gpus: Sequence[GpuInfo], *, gpu_indices: Sequence[int] | None, use_active_gpu: bool,
                our_pids: Collection[int] = ()) -> tuple[list[GpuInfo], dict[int, str]]:
    """The GPUs trials may use, and why each other GPU is skipped (index -> reason)."""
    usable: list[GpuInfo] = []
    skipped: dict[int, str] = {}
    for gpu in gpus:
        others = foreign_processes(gpu, our_pids)
        if gpu_indices is not None and gpu.index not in gpu_indices:
            skipped[gpu.index] = f"gpu{gpu.index} is not in gpuIndices"
        elif others and not use_active_gpu:
            pids = ("pids " if len(others) > 1 else "pid ") + ", ".join(str(p.pid) for p in others)
            skipped[gpu.index] = f"gpu{gpu.index} busy with {pids} (not ours)"
        else:
            usable.append(gpu)
    return usable, skipped


def _listing(indices: Sequence[int]) -> str:
    return ", ".join(str(i) for i in indices)


def check_request(trial_gpu_number: int | None, gpus: Sequence[GpuInfo],
                  gpu_indices: Sequence[int] | None = None) -> None:
    """Raise GpuError when this box can never satisfy the request (too many GPUs, unknown gpuIndices)."""
    present = sorted(gpu.index for gpu in gpus)
    have = f"this box has GPUs {_listing(present)}" if present else "this box has no GPU"
    missing = [i for i in (gpu_indices or ()) if i not in present]
    if missing:
        raise GpuError(f"gpuIndices lists {_listing(missing)} but {have} (remove {_listing(missing)} from "
                       "gpuIndices)")
    if trial_gpu_number is None:
        return
    if trial_gpu_number < 0:
        raise GpuError(f"trialGpuNumber is {trial_gpu_number}; it must be 0 (CPU) or more")
    allowed = sorted(set(gpu_indices)) if gpu_indices is not None else present
    if trial_gpu_number > len(allowed):
        where = (f"gpuIndices allows {len(allowed)} ({_listing(allowed)})" if gpu_indices is not None
                 else f"this box has {len(present)} GPU{'s' if len(present) != 1 else ''}"
                 + (f" ({_listing(present)})" if present else ""))
        raise GpuError(f"trialGpuNumber is {trial_gpu_number} but {where} (lower trialGpuNumber, or use 0 "
                       "for CPU trials)")
