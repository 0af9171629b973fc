"""Experiment configs: NNI v2/v1 YAML, NNI's field spellings, durations, and safe YAML loading."""
