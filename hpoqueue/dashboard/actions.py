"""The dashboard's actions (kill a trial, stop an experiment, change its limits) run the `hpoqueue` CLI
itself, so a click takes exactly the path `hpoqueue kill / stop / update` takes, scheduler or not."""

from __future__ import annotations

import hmac
import os
import subprocess
import sys
from dataclasses import dataclass

from hpoqueue import settings

ACTION_TIMEOUT_S = 120  #: `stop` of an experiment whose scheduler was killed records and stops what is left


class ActionError(Exception):
    """An action that was refused or failed; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Actions:
    """Runs actions for requests that carry `token`; refuses every one when `read_only`."""

    storage_url: str
    token: str
    read_only: bool = False

    def check(self, given: str | None) -> None:
        """Raise ActionError (403) unless actions are on and `given` is the token."""
        if self.read_only:
            raise ActionError("this dashboard is read-only (started with --read-only)", 403)
        if not given or not hmac.compare_digest(given.encode(), self.token.encode()):
            raise ActionError("missing or wrong token: open the URL `hpoqueue dashboard` printed", 403)

    def kill(self, trial_id: str) -> str:
        return self._cli("kill", trial_id)

    def stop(self, exp_id: str) -> str:
        return self._cli("stop", exp_id)

    def update(self, exp_id: str, *, concurrency: int | None, max_trials: int | None,
               duration: str | None) -> str:
        options = []
        for flag, value in (("--concurrency", concurrency), ("--max-trials", max_trials),
                            ("--duration", duration)):
            if value is not None and value != "":
                options += [flag, str(value)]
        return self._cli("update", exp_id, *options)

    def _cli(self, *args: str) -> str:
        """Run `hpoqueue ARGS` (no shell; the storage URL by environment, so no password shows in `ps`)."""
        env = {**os.environ, settings.ENV_STORAGE: self.storage_url}
        try:
            proc = subprocess.run([sys.executable, "-m", "hpoqueue", *args], env=env, capture_output=True,
                                  text=True, timeout=ACTION_TIMEOUT_S, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise ActionError(f"`hpoqueue {args[0]}` did not finish in {ACTION_TIMEOUT_S} s", 504) from None
        text = (proc.stdout.strip() or proc.stderr.strip()).removeprefix("hpoqueue: error: ")
        if proc.returncode != 0:
            raise ActionError(text or f"`hpoqueue {args[0]}` exited {proc.returncode}",
                              400 if proc.returncode == 2 else 500)
        return text
