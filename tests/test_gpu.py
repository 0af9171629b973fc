"""GPU discovery from recorded H100 nvidia-smi output, queue names, trial environments and GPU policy."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from hpoqueue.errors import GpuError
from hpoqueue.gpu import (
    ENV_FAKE_GPUS,
    GpuInfo,
    GpuProcess,
    _gpus_from_nvml,
    attach_processes,
    check_request,
    discover_gpus,
    fake_gpus,
    foreign_processes,
    gpu_queue,
    parse_query_gpu,
    queue_gpu,
    trial_env,
    usable_gpus,
    visible_devices,
)

DATA = Path(__file__).parent / "data" / "nvidia-smi"
H100_UUID = "GPU-660e2bd7-6248-3831-abc0-721fe837c8bf"


def recorded(kind: str) -> list[GpuInfo]:
    """The GPUs of the recorded H100 box, `kind` being "idle" or "busy"."""
    gpus = parse_query_gpu((DATA / f"query_gpu_{kind}.csv").read_text())
    return attach_processes(gpus, (DATA / f"compute_apps_{kind}.csv").read_text())


@pytest.fixture
def two_gpus() -> list[GpuInfo]:
    """GPU 0 busy with someone else's pid 408 (recorded), GPU 1 idle."""
    return [recorded("busy")[0], fake_gpus(2)[1]]


# --- parsing and discovery ---------------------------------------------------------------------------

def test_recorded_idle_h100_has_no_processes() -> None:
    (gpu,) = recorded("idle")
    assert gpu == GpuInfo(index=0, uuid=H100_UUID, name="NVIDIA H100 80GB HBM3", memory_total_mib=81559,
                          memory_used_mib=0, utilization=0, processes=())


def test_recorded_busy_h100_shows_pid_408() -> None:
    (gpu,) = recorded("busy")
    assert (gpu.memory_used_mib, gpu.utilization) == (5047, 100)
    assert gpu.processes == (GpuProcess(pid=408, used_memory_mib=5038),)


def test_not_available_cells_become_none() -> None:
    text = "0, GPU-x, Tesla T4, 15360, 0, 15360, [N/A], [Not Supported]\n"
    (gpu,) = attach_processes(parse_query_gpu(text), "GPU-x, 77, [N/A]\nGPU-other, 78, 10\n")
    assert gpu.utilization is None
    assert gpu.processes == (GpuProcess(pid=77, used_memory_mib=None),)


@pytest.mark.parametrize("text", ["0, GPU-x, T4, 15360\n", "zero, GPU-x, T4, 1, 0, 1, 0, 30\n"])
def test_malformed_nvidia_smi_output_is_a_gpu_error(text: str) -> None:
    with pytest.raises(GpuError, match="nvidia-smi --query-gpu"):
        parse_query_gpu(text)


def test_fake_gpu_count_gives_idle_h100_like_gpus() -> None:
    gpus = discover_gpus({ENV_FAKE_GPUS: "4"})
    assert [g.index for g in gpus] == [0, 1, 2, 3]
    assert len({g.uuid for g in gpus}) == 4
    assert all(g.memory_total_mib == 81559 and not g.processes for g in gpus)
    assert discover_gpus({ENV_FAKE_GPUS: "0"}) == []


def test_fake_gpus_from_recorded_files() -> None:
    value = f"{DATA / 'query_gpu_busy.csv'}:{DATA / 'compute_apps_busy.csv'}"
    assert discover_gpus({ENV_FAKE_GPUS: value}) == recorded("busy")


def test_fake_gpus_from_a_directory(tmp_path: Path) -> None:
    (tmp_path / "query_gpu.csv").write_text((DATA / "query_gpu_busy.csv").read_text())
    (tmp_path / "compute_apps.csv").write_text((DATA / "compute_apps_busy.csv").read_text())
    assert discover_gpus({ENV_FAKE_GPUS: str(tmp_path)}) == recorded("busy")


@pytest.mark.parametrize("value", ["-1", "/nonexistent/gpus", "/nonexistent/q.csv:/nonexistent/a.csv"])
def test_bad_fake_gpus_value_is_a_gpu_error(value: str) -> None:
    with pytest.raises(GpuError, match=ENV_FAKE_GPUS):
        discover_gpus({ENV_FAKE_GPUS: value})


def fake_nvidia_smi(bin_dir: Path, body: str) -> dict[str, str]:
    """An environment whose PATH finds only a `nvidia-smi` script with `body`."""
    script = bin_dir / "nvidia-smi"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin"}


@pytest.fixture
def without_nvml() -> None:
    if _gpus_from_nvml() is not None:
        pytest.skip("NVML works here, so discover_gpus never falls back to nvidia-smi")


@pytest.mark.usefixtures("without_nvml")
def test_falls_back_to_nvidia_smi_on_path(tmp_path: Path) -> None:
    env = fake_nvidia_smi(tmp_path, f"""case "$1" in
  --query-gpu=*) cat {DATA / 'query_gpu_busy.csv'} ;;
  --query-compute-apps=*) cat {DATA / 'compute_apps_busy.csv'} ;;
  *) exit 2 ;;
esac""")
    assert discover_gpus(env) == recorded("busy")


@pytest.mark.usefixtures("without_nvml")
def test_failing_nvidia_smi_means_no_gpu(tmp_path: Path) -> None:
    env = fake_nvidia_smi(tmp_path, "echo 'NVIDIA-SMI has failed because it could not communicate with the "
                                    "NVIDIA driver.'; exit 9")
    assert discover_gpus(env) == []


@pytest.mark.gpu
def test_real_gpus_are_discovered() -> None:
    env = {k: v for k, v in os.environ.items() if k != ENV_FAKE_GPUS}
    gpus = discover_gpus(env)
    if not gpus:
        pytest.skip("no NVIDIA GPU on this machine")
    assert [g.index for g in gpus] == list(range(len(gpus)))
    assert all(g.uuid.startswith(("GPU-", "MIG-")) and g.memory_total_mib > 0 for g in gpus)


# --- queues and environments -------------------------------------------------------------------------

@pytest.mark.parametrize(("queue", "index"), [("gpu0", 0), ("gpu3", 3), ("gpu12", 12), ("cpu", None)])
def test_queue_names_round_trip(queue: str, index: int | None) -> None:
    assert queue_gpu(queue) == index
    if index is not None:
        assert gpu_queue(index) == queue


@pytest.mark.parametrize("queue", ["gpu", "gpu-1", "gpu03", "GPU1", "celery", "gpu1 ", ""])
def test_queue_that_names_no_gpu_is_a_gpu_error_with_hint(queue: str) -> None:
    with pytest.raises(GpuError, match=r"gpu<N>.*e\.g\. gpu0"):
        queue_gpu(queue)


def test_gpu_map_overrides_which_gpu_a_queue_pins() -> None:
    env = {"HPOQUEUE_GPU_MAP": "gpu0=2, gpu1=3"}
    assert queue_gpu("gpu0", env) == 2 and queue_gpu("gpu1", env) == 3
    assert queue_gpu("gpu2", env) == 2  # queues the map does not name keep their own index
    assert queue_gpu("cpu", env) is None


@pytest.mark.parametrize("text", ["gpu0", "gpu0=x", "cpu=1", "gpu0=-1"])
def test_a_malformed_gpu_map_names_the_variable(text: str) -> None:
    with pytest.raises(GpuError, match="HPOQUEUE_GPU_MAP"):
        queue_gpu("gpu0", {"HPOQUEUE_GPU_MAP": text})


def test_visible_devices() -> None:
    assert visible_devices([0, 3]) == "0,3"
    assert visible_devices([]) == ""
    with pytest.raises(GpuError, match="-1"):
        visible_devices([-1])


def test_trial_env_pins_gpus_in_a_copy_only() -> None:
    before = dict(os.environ)
    env = trial_env([2, 3], os.environ)
    assert env["CUDA_VISIBLE_DEVICES"] == "2,3"
    assert env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert dict(os.environ) == before


def test_trial_env_for_cpu_trial_hides_every_gpu() -> None:
    base = {"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "0,1"}
    env = trial_env([], base)
    assert env == {"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    assert base == {"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "0,1"}


def test_trial_env_without_trial_gpu_number_leaves_the_variable_alone() -> None:
    base = {"CUDA_VISIBLE_DEVICES": "1", "CUDA_DEVICE_ORDER": "FASTEST_FIRST"}
    assert trial_env(None, base) == base
    assert "CUDA_VISIBLE_DEVICES" not in trial_env(None, {"PATH": "/bin"})
    assert trial_env([0], base)["CUDA_DEVICE_ORDER"] == "FASTEST_FIRST"  # the user's choice wins


# --- policy ------------------------------------------------------------------------------------------

def test_our_own_pid_is_not_foreign() -> None:
    (gpu,) = recorded("busy")
    assert foreign_processes(gpu, our_pids={408}) == []
    assert foreign_processes(gpu, our_pids={1}) == [GpuProcess(408, 5038)]


def test_inactive_only_skips_the_busy_gpu_naming_its_pid(two_gpus: list[GpuInfo]) -> None:
    usable, skipped = usable_gpus(two_gpus, gpu_indices=None, use_active_gpu=False)
    assert [g.index for g in usable] == [1]
    assert skipped == {0: "gpu0 busy with pid 408 (not ours)"}


def test_use_active_gpu_keeps_the_busy_gpu(two_gpus: list[GpuInfo]) -> None:
    usable, skipped = usable_gpus(two_gpus, gpu_indices=None, use_active_gpu=True)
    assert [g.index for g in usable] == [0, 1]
    assert skipped == {}


def test_gpu_busy_only_with_our_trials_stays_usable(two_gpus: list[GpuInfo]) -> None:
    usable, _ = usable_gpus(two_gpus, gpu_indices=None, use_active_gpu=False, our_pids={408})
    assert [g.index for g in usable] == [0, 1]


def test_gpu_indices_filter() -> None:
    usable, skipped = usable_gpus(fake_gpus(6), gpu_indices=[0, 2], use_active_gpu=False)
    assert [g.index for g in usable] == [0, 2]
    assert skipped[5] == "gpu5 is not in gpuIndices"
    assert sorted(skipped) == [1, 3, 4, 5]


def test_check_request_allows_every_gpu_of_the_box() -> None:
    gpus = fake_gpus(2)
    check_request(2, gpus)  # NNI 3.0 refuses this (gpuNumber >= len(gpus)); we must not
    check_request(0, [])
    check_request(None, [])


def test_check_request_refuses_more_gpus_than_the_box_has() -> None:
    with pytest.raises(GpuError, match=r"trialGpuNumber is 3 but this box has 2 GPUs \(0, 1\)"):
        check_request(3, fake_gpus(2))
    with pytest.raises(GpuError, match="trialGpuNumber is 1 but this box has 0 GPUs"):
        check_request(1, [])


def test_check_request_counts_only_gpu_indices() -> None:
    check_request(2, fake_gpus(4), gpu_indices=[1, 3])
    with pytest.raises(GpuError, match=r"gpuIndices allows 2 \(1, 3\)"):
        check_request(3, fake_gpus(4), gpu_indices=[1, 3])


def test_check_request_refuses_gpu_indices_the_box_lacks() -> None:
    with pytest.raises(GpuError, match=r"gpuIndices lists 5 but this box has GPUs 0, 1"):
        check_request(1, fake_gpus(2), gpu_indices=[0, 5])


def test_check_request_refuses_negative_gpu_number() -> None:
    with pytest.raises(GpuError, match="trialGpuNumber is -1"):
        check_request(-1, fake_gpus(1))
