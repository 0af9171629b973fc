"""``nni.trial``: the same functions as ``nni`` itself (``from nni.trial import get_next_parameter``)."""

from hpoqueue.trial import (  # noqa: F401  (the re-exported trial API)
    get_current_parameter,
    get_experiment_id,
    get_next_parameter,
    get_next_parameters,
    get_sequence_id,
    get_trial_id,
    report_final_result,
    report_intermediate_result,
)
