"""NNI's ``Tuner`` base class, so that a custom tuner written for NNI runs on hpoqueue unchanged.

hpoqueue drives such a class through ``hpoqueue.nni_compat.tuner.NniTunerAdapter``: it calls
``update_search_space`` once, ``generate_parameters`` for each new trial, ``receive_trial_result`` for each
final result and ``trial_end`` for each finished trial, as NNI's dispatcher does.
"""

from __future__ import annotations

from typing import Any

from nni.common import NoMoreTrialError


class Tuner:
    """Base class of a custom tuner (NNI's interface; override the first three)."""

    def generate_parameters(self, parameter_id: int, **kwargs: Any) -> dict[str, Any]:
        """The parameters of trial `parameter_id`; raise nni.NoMoreTrialError when there are none left."""
        raise NotImplementedError("Tuner: generate_parameters not implemented")

    def generate_multiple_parameters(self, parameter_id_list: list[int], **kwargs: Any) -> list[dict[str, Any]]:
        """generate_parameters for each id, stopping at the first NoMoreTrialError."""
        result = []
        for parameter_id in parameter_id_list:
            try:
                result.append(self.generate_parameters(parameter_id, **kwargs))
            except NoMoreTrialError:
                break
        return result

    def receive_trial_result(self, parameter_id: int, parameters: dict[str, Any], value: Any,
                             **kwargs: Any) -> None:
        """The final result of trial `parameter_id` (a number, or a dict with 'default')."""
        raise NotImplementedError("Tuner: receive_trial_result not implemented")

    def update_search_space(self, search_space: dict[str, Any]) -> None:
        """The search space, before the first trial and whenever it changes."""
        raise NotImplementedError("Tuner: update_search_space not implemented")

    def trial_end(self, parameter_id: int, success: bool, **kwargs: Any) -> None:
        """Trial `parameter_id` ended, successfully or not."""

    def import_data(self, data: list[dict[str, Any]]) -> None:
        """Earlier results as [{'parameter': ..., 'value': ...}] (warm start)."""

    def load_checkpoint(self) -> None:
        """Not used by hpoqueue (it rebuilds a tuner from the record on resume)."""

    def save_checkpoint(self) -> None:
        """Not used by hpoqueue."""

    def _accept_customized_trials(self, accept: bool = True) -> None:
        self._accept_customized = accept
