"""Proof on a real GPU: trials see exactly their pinned GPU, the per-GPU cap holds, and the GPU stays busy.

    python benchmarks/gpu_check.py [--gpu 0] [--cap 2] [--trials 8] [--seconds 6]
    python benchmarks/gpu_check.py --fake      # no GPU: fake GPU, CPU trials, checks everything but nvidia-smi

Runs `hpoqueue submit` (embedded Redis, local workers) with trialGpuNumber 1, gpuIndices [gpu],
maxTrialNumberPerGpu = cap and trialConcurrency = 2 x cap, so trials always wait for a slot. Each trial
runs a torch matmul loop for `--seconds` and records CUDA_VISIBLE_DEVICES, torch.cuda.device_count(), the
device name and UUID. Meanwhile `nvidia-smi --query-compute-apps` and utilization.gpu are sampled every
0.2 s. The busy fraction counts the samples with utilization.gpu > 0 between the first and the last busy
sample. Prints the trials and a table of checks; exits 1 if a check fails, 0 (with a message) when torch or
a GPU is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from hpoqueue.cli.tables import table
from hpoqueue.storage import Storage

SAMPLE_EVERY = 0.2
BUSY_TARGET = 0.95
GAP_TARGET = 1.0

TRIAL = '''
import time
start = time.time()  # before importing torch: the gap to the previous trial counts the whole start-up
import json, os
import hpoqueue.trial as nni

nni.get_next_parameter()
seconds = float(os.environ["GPU_CHECK_SECONDS"])
record = {"cvd": os.environ.get("CUDA_VISIBLE_DEVICES"), "pid": os.getpid(), "start": start}
if os.environ.get("GPU_CHECK_FAKE"):
    record.update(count=None, name="(fake: CPU loop)", uuid=None)
    while time.time() < start + seconds:
        sum(i * i for i in range(10000))
else:
    import torch

    props = torch.cuda.get_device_properties(0)
    record.update(count=torch.cuda.device_count(), name=torch.cuda.get_device_name(0),
                  uuid=str(getattr(props, "uuid", "")) or None)
    x = torch.randn(4096, 4096, device="cuda")
    while time.time() < start + seconds:
        for _ in range(20):
            x = torch.tanh(x @ x)
        torch.cuda.synchronize()
record["end"] = time.time()
nni.report_final_result(record["end"] - start)
with open(os.path.join(os.environ["GPU_CHECK_DIR"], nni.get_trial_id() + ".json"), "w") as fh:
    json.dump(record, fh)
'''


@dataclass
class Samples:
    """What nvidia-smi said every SAMPLE_EVERY seconds: (time, utilization %, pids on the GPU)."""

    rows: list[tuple[float, int | None, tuple[int, ...]]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def nvidia_smi(*args: str) -> str:
    return subprocess.run(["nvidia-smi", *args, "--format=csv,noheader,nounits"], capture_output=True,
                          text=True, timeout=10, check=True).stdout


def gpu_uuid(index: int) -> str:
    for line in nvidia_smi("--query-gpu=index,uuid").splitlines():
        cells = [c.strip() for c in line.split(",")]
        if cells and cells[0] == str(index):
            return cells[1]
    raise SystemExit(f"gpu_check: nvidia-smi lists no GPU {index}")


def sample(index: int, uuid: str, stop: threading.Event, out: Samples) -> None:
    """Poll utilization.gpu and the compute processes of GPU `index` until `stop` is set."""
    while not stop.is_set():
        began = time.time()
        try:
            util_text = nvidia_smi("--query-gpu=utilization.gpu", f"--id={index}").strip()
            util = int(util_text) if util_text.isdigit() else None
            pids = tuple(int(cells[1]) for cells in
                         ([c.strip() for c in line.split(",")] for line in
                          nvidia_smi("--query-compute-apps=gpu_uuid,pid").splitlines() if line.strip())
                         if cells[0] == uuid)
            out.rows.append((began, util, pids))
        except (subprocess.SubprocessError, OSError, ValueError) as exc:
            out.errors.append(str(exc))
        stop.wait(max(0.0, SAMPLE_EVERY - (time.time() - began)))


def skip_reason(fake: bool) -> str | None:
    """Why this box cannot run the real check, or None."""
    if fake:
        return None
    if shutil.which("nvidia-smi") is None:
        return "no nvidia-smi on PATH (no NVIDIA driver here); use --fake to check the rest"
    try:
        import torch
    except ImportError:
        return "torch is not installed (pip install torch); use --fake to check the rest"
    if not torch.cuda.is_available():
        return "torch sees no CUDA GPU; use --fake to check the rest"
    return None


def run_experiment(args: argparse.Namespace, root: Path) -> tuple[str, Storage, float, float]:
    """Submit the experiment and wait for it; returns its id, storage and wall-clock start and end."""
    echo = root / "echo"
    echo.mkdir()
    (root / "trial.py").write_text(TRIAL)
    config = {"experimentName": "gpu-check", "trialCommand": "python trial.py", "trialCodeDirectory": str(root),
              "trialGpuNumber": 1, "trialConcurrency": 2 * args.cap, "maxTrialNumber": args.trials,
              "searchSpace": {"x": {"_type": "uniform", "_value": [0, 1]}},
              "tuner": {"name": "Random", "classArgs": {"seed": 0}},
              "trainingService": {"platform": "local", "gpuIndices": [args.gpu],
                                  "maxTrialNumberPerGpu": args.cap, "useActiveGpu": False}}
    (root / "config.yml").write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPOQUEUE_")}
    env.update(HPOQUEUE_HOME=str(root / "home"), GPU_CHECK_DIR=str(echo), GPU_CHECK_SECONDS=str(args.seconds))
    if args.fake:
        env.update(HPOQUEUE_FAKE_GPUS=str(args.gpu + 1), GPU_CHECK_FAKE="1")
    began = time.time()
    proc = subprocess.run([sys.executable, "-m", "hpoqueue", "submit", str(root / "config.yml"), "--quiet"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=args.timeout)
    ended = time.time()
    if proc.returncode != 0:
        raise SystemExit(f"gpu_check: hpoqueue submit exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    storage = Storage(f"sqlite:///{root / 'home' / 'hpoqueue.db'}")
    [exp] = storage.list_experiments()
    return exp.id, storage, began, ended


def coverage(intervals: list[tuple[float, float]], start: float, end: float) -> float:
    """The fraction of [start, end] during which at least one interval is open."""
    covered, reach = 0.0, start
    for s, e in sorted(intervals):
        s, e = max(s, reach), min(e, end)
        if e > s:
            covered += e - s
            reach = e
    return covered / (end - start) if end > start else 0.0


def max_open(intervals: list[tuple[float, float]]) -> int:
    points = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    best = now = 0
    for _, delta in points:
        now += delta
        best = max(best, now)
    return best


def max_refill_gap(intervals: list[tuple[float, float]]) -> float:
    """The longest wait between a trial's end and the next trial's start while trials were still queued."""
    starts = sorted(s for s, _ in intervals)
    gaps = [min(s for s in starts if s >= e) - e for _, e in intervals if any(s >= e for s in starts)]
    return max(gaps, default=0.0)


def report(args: argparse.Namespace, storage: Storage, exp_id: str, echo: Path, samples: Samples | None,
           uuid: str | None) -> bool:
    trials = storage.trials(exp_id)
    records = {p.stem: json.loads(p.read_text()) for p in echo.glob("*.json")}
    rows, pinned = [], 0
    for trial in trials:
        rec = records.get(trial.id, {})
        ok = (trial.gpus == [args.gpu] and rec.get("cvd") == str(args.gpu)
              and (args.fake or (rec.get("count") == 1 and (rec.get("uuid") is None or uuid is None
                                                            or rec["uuid"] in uuid))))
        pinned += ok
        rows.append([trial.id, trial.state.value, trial.gpus, rec.get("cvd"), rec.get("count"), rec.get("name"),
                     rec.get("pid"), "yes" if ok else "NO"])
    print(table(["trial", "state", "gpus (stored)", "CUDA_VISIBLE_DEVICES", "torch devices", "device",
                 "pid", "pinned"], rows))
    intervals = [(r["start"], r["end"]) for r in records.values()]
    first, last = min(s for s, _ in intervals), max(e for _, e in intervals)
    succeeded = sum(t.state.value == "SUCCEEDED" for t in trials)
    trial_pids = {r["pid"] for r in records.values()}
    if samples is not None and samples.rows:
        # from the first to the last sample with the GPU busy: the first trial's start-up (CUDA context)
        # and the last one's tail cannot overlap with other work, whatever the scheduler does
        busy_times = [t for t, u, _ in samples.rows if u]
        window = [row for row in samples.rows if busy_times and busy_times[0] <= row[0] <= busy_times[-1]]
        on_gpu = max((len(pids) for _, _, pids in samples.rows), default=0)
        ours = max((len(set(pids) & trial_pids) for _, _, pids in samples.rows), default=0)
        measured = [u for _, u, _ in window if u is not None]
        busy = sum(u > 0 for u in measured) / len(measured) if measured else 0.0
        procs_text = f"{on_gpu} ({ours} matched to trial pids)"
        busy_text = f"{busy:.1%} of {len(measured)} samples"
    else:  # --fake: no nvidia-smi; the trials' own intervals stand in
        on_gpu = max_open(intervals)
        busy = coverage(intervals, first, last)
        procs_text = f"{on_gpu} (from trial intervals)"
        busy_text = f"{busy:.1%} (time with a trial running)"
    gap = max_refill_gap(intervals)
    checks = [
        ["trials run", f"{succeeded}/{args.trials} succeeded", "all", succeeded == args.trials],
        ["visible device is the pinned one", f"{pinned}/{len(trials)}", "all", pinned == len(trials)],
        ["max trial processes on the GPU", procs_text, f"<= {args.cap}", on_gpu <= args.cap],
        ["max concurrent trials (own clocks)", max_open(intervals), f"<= {args.cap}",
         max_open(intervals) <= args.cap],
        ["GPU busy fraction", busy_text, f">= {BUSY_TARGET:.0%}", busy >= BUSY_TARGET],
        ["max gap end -> next start", f"{gap:.2f} s", f"<= {GAP_TARGET:g} s", gap <= GAP_TARGET],
    ]
    print()
    print(table(["check", "measured", "target", "ok"], [[*c[:3], "yes" if c[3] else "NO"] for c in checks]))
    if samples is not None and samples.errors:
        print(f"\n{len(samples.errors)} nvidia-smi samples failed; first: {samples.errors[0]}")
    return all(c[3] for c in checks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpu", type=int, default=0, help="GPU index to use (default 0)")
    parser.add_argument("--cap", type=int, default=2, help="maxTrialNumberPerGpu (default 2)")
    parser.add_argument("--trials", type=int, default=8, help="trials to run (default 8)")
    parser.add_argument("--seconds", type=float, default=6.0, help="GPU work per trial (default 6)")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up after this many seconds")
    parser.add_argument("--fake", action="store_true", help="no GPU: a fake GPU and CPU-loop trials")
    args = parser.parse_args()
    reason = skip_reason(args.fake)
    if reason is not None:
        print(f"gpu_check skipped: {reason}")
        return 0
    with tempfile.TemporaryDirectory(prefix="hpoqueue-gpu-check-") as tmp:
        root = Path(tmp)
        samples, uuid, stop = None, None, threading.Event()
        if not args.fake:
            uuid = gpu_uuid(args.gpu)
            samples = Samples()
            sampler = threading.Thread(target=sample, args=(args.gpu, uuid, stop, samples), daemon=True)
            sampler.start()
        try:
            exp_id, storage, began, ended = run_experiment(args, root)
        finally:
            stop.set()
        print(f"experiment {exp_id}: {args.trials} trials of {args.seconds:g} s, cap {args.cap} on GPU "
              f"{args.gpu}, {ended - began:.1f} s in all\n")
        return 0 if report(args, storage, exp_id, root / "echo", samples, uuid) else 1


if __name__ == "__main__":
    sys.exit(main())
