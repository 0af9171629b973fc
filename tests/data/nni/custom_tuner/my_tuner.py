"""A custom tuner written against NNI's interface, as NNI's docs teach; it imports only `nni`."""

import json
import os

import nni
from nni.tuner import Tuner
from nni.utils import OptimizeMode, extract_scalar_reward


class ListTuner(Tuner):
    """Proposes the options of choice parameter `x` in order, then says there are no more; logs each call."""

    def __init__(self, optimize_mode="maximize", log=None):
        self.mode = OptimizeMode(optimize_mode)
        self.log = log
        self.todo = []

    def update_search_space(self, search_space):
        self.todo = list(search_space["x"]["_value"])
        self._write("space", sorted(search_space), os.getpid())  # pid: which process's tuner has it

    def generate_parameters(self, parameter_id, **kwargs):
        if not self.todo:
            raise nni.NoMoreTrialError("every option was proposed")
        return {"x": self.todo.pop(0)}

    def receive_trial_result(self, parameter_id, parameters, value, **kwargs):
        self._write("result", parameter_id, parameters, extract_scalar_reward(value), kwargs.get("customized"))

    def trial_end(self, parameter_id, success, **kwargs):
        self._write("end", parameter_id, success)

    def _write(self, *record):
        if self.log:
            with open(self.log, "a") as fh:
                fh.write(json.dumps(record) + "\n")
