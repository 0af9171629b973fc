"""A learning curve that decays towards `floor` at speed `rate`, one epoch every 0.1 s."""

import math
import time

import hpoqueue.trial as nni

p = nni.get_next_parameter()
loss = 1.0
for epoch in range(1, 16):
    loss = p.get("floor", 0.5) + math.exp(-p.get("rate", 0.5) * epoch)
    nni.report_intermediate_result(loss)
    time.sleep(0.1)
nni.report_final_result(loss)
