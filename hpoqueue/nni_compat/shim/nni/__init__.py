"""hpoqueue's stand-in for NNI's trial API: ``import nni`` in a trial, with NNI not installed.

The worker appends this package's folder to the trial's PYTHONPATH. A real NNI installed in the trial's
Python wins: when one is found further down ``sys.path`` it is loaded in this module's place.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys


def _real_nni() -> object | None:
    """NNI itself, if it is installed somewhere on sys.path other than this shim's folder."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    others = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec(__name__, others)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    sys.modules[__name__] = module  # `import nni` returns what sys.modules holds once this file has run
    spec.loader.exec_module(module)
    return module


if _real_nni() is None:
    from hpoqueue.trial import (  # noqa: F401  (the re-exported trial API)
        get_current_parameter,
        get_experiment_id,
        get_next_parameter,
        get_next_parameters,
        get_output_dir,
        get_sequence_id,
        get_trial_id,
        report_final_result,
        report_intermediate_result,
    )
    from nni.common import NoMoreTrialError  # noqa: F401  (nni.NoMoreTrialError)

    __version__ = "hpoqueue-shim"
