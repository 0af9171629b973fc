"""The commands the CLI sends the scheduler (broker/control.py): each kind survives the real broker as it was
built, the simulation delivers exactly what Channel.send_control does, a command that cannot be read is
logged and dropped by the scheduler (never its end), and every kind has a handler."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from hpoqueue.broker import control
from hpoqueue.broker.client import connect
from hpoqueue.broker.protocol import Channel
from hpoqueue.broker.wire import Unreadable
from hpoqueue.config.experiment_config import config_from_dict
from hpoqueue.scheduler import Scheduler
from hpoqueue.states import TrialState
from hpoqueue.testing.simulation import SimTrial, Simulation

CONFIG = config_from_dict({"trialCommand": "x", "trialConcurrency": 1, "maxTrialNumber": 2,
                           "searchSpace": {"x": {"_type": "uniform", "_value": [0, 1]}}}, source="test")
ONE_OF_EACH: list[control.Command] = [
    control.Stop(), control.Kill(trial="e-3"), control.Update(concurrency=4, max_duration=3600.0),
    control.SearchSpace(space={"lr": {"_type": "loguniform", "_value": [1e-4, 1e-1]}}),
]


def test_every_kind_is_in_the_table_and_has_a_handler() -> None:
    assert set(control.KINDS.values()) == {type(c) for c in ONE_OF_EACH} == set(Scheduler.CONTROL)


def test_each_kind_crosses_the_broker_and_the_simulation_as_it_was_sent(redis_url: str) -> None:
    channel = Channel(connect(redis_url), "ctl")
    for command in ONE_OF_EACH:
        channel.send_control(command)
    channel.ensure_group()
    assert channel.read_step(1).commands == ONE_OF_EACH
    assert channel.read_step(1).commands == []  # taken once
    sim = Simulation(CONFIG, lambda params: SimTrial(values=[1.0]))
    for command in ONE_OF_EACH:
        sim.cluster.control_at(0.0, command)
    assert sim.cluster.read_step(1).commands == ONE_OF_EACH
    text = control.encode(control.Kill(trial="e-3"))
    assert json.loads(text) == {"cmd": "kill", "v": control.VERSION, "trial": "e-3"}


def test_a_command_cannot_be_built_wrong() -> None:
    with pytest.raises(control.ControlError, match="'trial'"):
        control.Kill(trial=3)  # type: ignore[arg-type]
    with pytest.raises(control.ControlError, match="'concurrency'"):
        control.Update(concurrency="4")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        control.Kill()  # type: ignore[call-arg]


@pytest.mark.parametrize(("raw", "why"), [
    ("{", "not JSON"), ('["stop"]', "not a JSON object"), ('{"cmd": "reboot"}', "unknown cmd 'reboot'"),
    ('{"cmd": "kill"}', "kill command lacks trial"), ('{"cmd": "kill", "trial": 7}', "'trial'"),
    ('{"cmd": "stop", "v": 99}', "version 99 is newer"),
])
def test_what_is_no_command_comes_back_unreadable_saying_why(raw: str, why: str) -> None:
    result = control.decode(raw)
    assert isinstance(result, Unreadable) and why in result.why, result


def test_the_previous_wire_format_still_reads() -> None:
    """What the CLI sent before versions were written: no "v", and update without the fields not changed."""
    assert control.decode('{"cmd": "update", "concurrency": 2}') == control.Update(concurrency=2)
    assert control.decode(b'{"cmd": "kill", "trial": "e-1"}') == control.Kill(trial="e-1")


def test_the_scheduler_logs_and_drops_a_command_it_cannot_read(caplog: pytest.LogCaptureFixture) -> None:
    sim = Simulation(CONFIG, lambda params: SimTrial(values=[1.0, 2.0]))
    sim.cluster.control_at(0.5, '{"cmd": "reboot"}')
    sim.cluster.control_at(0.5, '{"cmd": "kill", "trial": 7}')
    sim.cluster.control_at(0.5, "not json")
    sim.cluster.control_at(0.5, control.SearchSpace(space={"x": {"_type": "bogus"}}))  # no `hpoqueue update` check
    with caplog.at_level(logging.WARNING, logger="hpoqueue.scheduler"):
        result = sim.run()
    assert [t.state for t in result.trials] == [TrialState.SUCCEEDED] * 2
    dropped = [r.getMessage() for r in caplog.records if "control message that cannot be read" in r.getMessage()]
    assert len(dropped) == 3 and "reboot" in dropped[0] and "'trial'" in dropped[1], dropped
    assert any(r.getMessage().startswith("dropped a search_space command: ") for r in caplog.records)


def test_every_command_kind_is_in_the_architecture_doc() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "architecture.md").read_text()
    for kind, cls in control.KINDS.items():
        assert f"| `{kind}` | `{cls.__name__}` |" in doc, kind
