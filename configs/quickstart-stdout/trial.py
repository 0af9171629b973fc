"""Reads its parameters from the environment and prints `loss=...`; no hpoqueue import needed."""

import json
import math
import os

params = json.loads(os.environ.get("HPOQUEUE_PARAMETERS", "{}"))
lr, layers = params.get("lr", 0.01), params.get("layers", 2)
for epoch in range(1, 4):
    loss = (math.log10(lr) + 2) ** 2 + 0.1 * abs(layers - 3) + 1.0 / epoch
    print(f"epoch {epoch} loss={loss:.6f}", flush=True)
