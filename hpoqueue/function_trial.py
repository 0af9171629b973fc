"""``python -m hpoqueue.function_trial module:function``: a Python function as a trial.

The worker runs this as the trial's command, so the function gets its own process with the same GPU
pinning, caps, stopping and retries as any command. The function receives the parameters (a dict), may
report intermediate results through ``hpoqueue.trial``, and what it returns (a number, or a dict with a
numeric 'default') is the trial's final result. Its module is imported from the trial code directory
first, then the usual path.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Callable
from typing import Any

#: `package.module:function` (the function may be an attribute path, `module:Class.method`)
TARGET = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")


def command(target: str) -> str:
    """The trialCommand that runs `target` (checked first: it reaches a shell, so only names pass)."""
    if not TARGET.fullmatch(target):
        raise ValueError(f"{target!r} is not module:function (for example train:main or my_pkg.train:run)")
    return f"python -m hpoqueue.function_trial {target}"


def load(target: str) -> Callable[[dict[str, Any]], Any]:
    """The function `target` names, imported with the working directory first on the path."""
    module_name, _, attr = target.partition(":")
    sys.path.insert(0, os.getcwd())
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{target} is not a function")
    return obj


def main(argv: list[str]) -> int:
    from hpoqueue import trial

    if len(argv) != 1 or not TARGET.fullmatch(argv[0]):
        print("usage: python -m hpoqueue.function_trial module:function", file=sys.stderr)
        return 2
    try:
        function = load(argv[0])
    except (ImportError, AttributeError, TypeError) as exc:
        print(f"hpoqueue: cannot load {argv[0]}: {exc} (the module must be importable from the trial code "
              "directory or the worker's Python)", file=sys.stderr)
        return 2
    result = function(trial.get_next_parameter())
    if result is not None:
        trial.report_final_result(result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
