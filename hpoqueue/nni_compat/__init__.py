"""Running NNI's code unchanged: the `nni` stand-in put on a trial's path, and NNI custom tuners."""
