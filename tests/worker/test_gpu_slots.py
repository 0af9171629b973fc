"""GPU slots of attempts on one box, against a real Redis and fake GPUs: the per-GPU cap, exactly."""

from __future__ import annotations

import pytest

from hpoqueue.broker.client import connect
from hpoqueue.broker.protocol import TrialSpec
from hpoqueue.worker.gpu_slots import GpuSlots


def _slots(redis_url: str, seq: int, cap: int) -> GpuSlots:
    spec = TrialSpec(exp_id="cap", trial_id=f"cap-{seq}", seq=seq, attempt=1, params={}, command="true",
                     code_dir=".", work_dir=".", gpu_number=1, gpu_cap=cap)
    return GpuSlots(connect(redis_url), spec, "gpu0", "w@box")


@pytest.mark.parametrize("cap", [1, 2, 3])
def test_a_gpu_takes_exactly_max_trial_number_per_gpu_attempts(redis_url: str, cap: int,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """As many attempts as the cap get gpu0, the next one waits saying why, and gets it once one ends:
    no thread pool in between, so a cap one too high shows here."""
    monkeypatch.setenv("HPOQUEUE_FAKE_GPUS", "1")
    attempts = [_slots(redis_url, seq, cap) for seq in range(1, cap + 2)]
    for slots in attempts[:cap]:
        assert slots.try_acquire() == (True, "") and slots.gpus == [0]
    extra = attempts[cap]
    assert extra.try_acquire() == (False, f"gpu0: all {cap} slot(s) taken") and extra.gpus == []
    attempts[0].release()
    assert extra.try_acquire() == (True, "") and extra.gpus == [0]
