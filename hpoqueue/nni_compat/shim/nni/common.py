"""NNI's shared exception, for custom tuners that raise it when their space is exhausted."""


class NoMoreTrialError(Exception):
    """Raised by a tuner's generate_parameters when it has no configuration left to give."""
