"""hpoqueue's Python API: an experiment started from a script, no YAML. Run it as it is:

    python configs/python-api/run.py
"""

from pathlib import Path

from hpoqueue import Experiment

experiment = Experiment(
    experiment_name="python-api",
    search_space={"x": {"_type": "uniform", "_value": [-5, 5]}, "lr": {"_type": "loguniform", "_value": [1e-4, 1]}},
    trial_function="train:train",                 # module:function, imported from trial_code_directory
    trial_code_directory=Path(__file__).parent,
    trial_concurrency=2,
    max_trial_number=12,
    tuner="TPE",
    optimize_mode="minimize",
)
state = experiment.run()                          # blocks, with the progress bar; start()/wait() do not block
best = experiment.best()
print(f"{experiment.id}: {state}, {len(experiment.trials())} trials; best {best.value:.4g} with {best.parameters}")
