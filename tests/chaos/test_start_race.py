"""Issue 17 #11: a SIGTERM that lands the instant `submit` has started its Redis or a worker, before it
has recorded how to stop it, still leaves nothing running. The signal is sent from inside the process
right after the real start, where the race put it."""

from __future__ import annotations

import os
import signal
import subprocess
import types
from pathlib import Path
from typing import Any

import pytest

from hpoqueue.broker import embedded as broker
from hpoqueue.cli.commands import main
from hpoqueue.worker import local as local_workers
from tests.e2e.conftest import Project, alive, processes_under, wait_for


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)

pytestmark = [pytest.mark.chaos]


@pytest.mark.parametrize("where", ["redis", "worker"])
def test_a_sigterm_right_after_a_start_leaves_nothing_running(project: Project, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str],
                                                              where: str) -> None:
    for key in [k for k in os.environ if k.startswith("HPOQUEUE_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("HPOQUEUE_HOME", str(project.home))
    monkeypatch.chdir(project.root)
    started: list[int] = []
    if where == "redis":
        spawn = broker.EmbeddedRedis.spawn

        def spawn_then_sigterm(self: broker.EmbeddedRedis) -> str:
            url = spawn(self)
            assert self.process is not None
            started.append(self.process.pid)
            self.wait_ready()  # up and running, as when the race left it behind
            os.kill(os.getpid(), signal.SIGTERM)
            return url

        monkeypatch.setattr(broker.EmbeddedRedis, "spawn", spawn_then_sigterm)
    else:
        def popen_then_sigterm(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
            proc = subprocess.Popen(*args, **kwargs)
            started.append(proc.pid)
            log = Path(args[0][args[0].index("--logfile") + 1])
            wait_for(lambda: log.exists() and "ready." in log.read_text(), 30, "the worker to be up")
            os.kill(os.getpid(), signal.SIGTERM)
            return proc

        monkeypatch.setattr(local_workers, "subprocess",
                            types.SimpleNamespace(Popen=popen_then_sigterm, DEVNULL=subprocess.DEVNULL))
    code = main(["submit", str(project.config()), "--quiet"])
    assert code == 130, capsys.readouterr().err
    assert started
    wait_for(lambda: not any(alive(pid) for pid in started), 2, "what submit started to be stopped")
    assert processes_under(project.home) == []
