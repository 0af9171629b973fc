"""A stand-in for training: the loss of a noisy quadratic, reported once per epoch."""

import random
import time

import hpoqueue.trial as nni  # NNI scripts keep working with this one-line change

params = nni.get_next_parameter()
x, y = params.get("x", 0.0), params.get("y", 0.0)
penalty = 0.0 if params.get("optimizer", "adam") == "adam" else 0.5
rng = random.Random(nni.get_sequence_id())
loss = float("inf")
for epoch in range(1, 6):
    loss = (x - 1) ** 2 + (y + 2) ** 2 + penalty + 2.0 / epoch + rng.uniform(0, 0.01)
    nni.report_intermediate_result(loss)
    time.sleep(0.05)
nni.report_final_result(loss)
