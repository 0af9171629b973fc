"""Running an experiment around the scheduler: launch checks, the run, the Python API, warm starts, manual trials."""
