"""The trial of run.py: a plain function. It gets the parameters, may report intermediate results through
hpoqueue.trial, and returns its result; each call runs in a process of its own on a worker."""

import math

import hpoqueue.trial as nni


def train(params):
    loss = 10.0
    for epoch in range(5):
        loss = (params["x"] - 1.5) ** 2 + math.exp(-epoch) * params["lr"]
        nni.report_intermediate_result(loss)
    return {"default": loss, "epochs": 5}
