"""How long a CLI command takes to act: from `Channel.send_control` to the scheduler having handled it.

    python benchmarks/control_latency.py [--rounds 40]

A real Scheduler (in a thread) on its own embedded Redis and SQLite, with a dispatcher whose trials never
start, so the scheduler is idle in its loop, as one is between the events of long trials. Each round sends
a command at a random moment (0-1.2 s after the last was handled, so it falls anywhere in the scheduler's
wait) and times it to its effect: `kill` of the trial in flight (the next trial's dispatch into the freed
slot), `update` of the concurrency by one more (the new slot's dispatch), and at the end one `stop` (the
scheduler's loop returns). Prints p50 / p90 / max in milliseconds. Run it against another checkout with
PYTHONPATH (the API it uses is the same before and after the bell).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from hpoqueue.broker import control
from hpoqueue.broker.client import connect
from hpoqueue.broker.embedded import EmbeddedRedis
from hpoqueue.broker.protocol import Channel, TrialSpec
from hpoqueue.config.experiment_config import config_from_dict
from hpoqueue.scheduler import Scheduler
from hpoqueue.storage import Storage
from hpoqueue.tuners import create_tuner


class Held:
    """A dispatcher whose trials never start; it notes when each dispatch came."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, str]] = []
        self.more = threading.Event()

    def dispatch(self, spec: TrialSpec, queue: str) -> None:
        self.sent.append((time.perf_counter(), spec.trial_id))
        self.more.set()

    def dispatch_many(self, items: Sequence[tuple[TrialSpec, str]]) -> None:
        for spec, queue in items:
            self.dispatch(spec, queue)


def summary(name: str, values: list[float]) -> str:
    ms = sorted(1000 * v for v in values)
    return (f"| {name} | {len(ms)} | {statistics.median(ms):.1f} | {ms[int(0.9 * (len(ms) - 1))]:.1f} | "
            f"{ms[-1]:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40, help="kills, then as many updates")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="hpoq-control-"))
    server = EmbeddedRedis(root / "redis")
    url = server.start()
    rng = random.Random(0)
    try:
        config = config_from_dict({"trialCommand": "x", "trialConcurrency": 1, "maxTrialNumber": 100000,
                                   "experimentWorkingDirectory": str(root),
                                   "searchSpace": {"x": {"_type": "uniform", "_value": [0, 1]}}}, source="bench")
        storage = Storage(f"sqlite:///{root / 'db.sqlite'}")
        storage.create_experiment("lat", name=None, config=config.to_dict(), work_dir=str(root / "lat"),
                                  optimize_mode="minimize", concurrency=1, max_trial_number=100000,
                                  max_duration=None)
        channel = Channel(connect(url), "lat")
        held = Held()
        scheduler = Scheduler(exp_id="lat", config=config, storage=storage, channel=channel, dispatcher=held,
                              tuner=create_tuner(config.tuner, config.search_space, optimize_mode="minimize",
                                                 seed=1, source="bench"), queues=["cpu"])
        thread = threading.Thread(target=scheduler.run, daemon=True)
        thread.start()
        held.more.wait(30)
        kills, updates = [], []
        for i in range(2 * args.rounds):
            time.sleep(rng.uniform(0.0, 1.2))
            held.more.clear()
            count = len(held.sent)
            if i < args.rounds:
                command: control.Command = control.Kill(trial=held.sent[-1][1])
            else:
                storage.update_experiment("lat", concurrency=2 + i - args.rounds)  # as `hpoqueue update` does
                command = control.Update(concurrency=2 + i - args.rounds)
            sent = time.perf_counter()
            channel.send_control(command)
            while len(held.sent) == count:
                if not held.more.wait(30):
                    raise SystemExit(f"round {i}: the command was not handled within 30 s")
            (kills if i < args.rounds else updates).append(held.sent[count][0] - sent)
        time.sleep(rng.uniform(0.0, 1.2))
        sent = time.perf_counter()
        channel.send_control(control.Stop())
        thread.join(60)
        stop = time.perf_counter() - sent
        print("| command | rounds | p50 ms | p90 ms | max ms |\n|---|---|---|---|---|")
        print(summary("kill", kills))
        print(summary("update", updates))
        print(summary("stop (to the loop's end)", [stop]))
        storage.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
