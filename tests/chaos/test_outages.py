"""Issue 17 #10: a database connection dropped mid-run is reconnected (a bounded wait, then a clear
message), never the end of `submit`; after a Redis restart without its data, attempts that were queued
but never claimed are sent again instead of waiting for ever."""

from __future__ import annotations

import subprocess
import time

import pytest
import sqlalchemy

from hpoqueue.broker.embedded import free_port, ping, redis_server_binary
from hpoqueue.states import ExperimentState, TrialState
from hpoqueue.storage import Storage
from tests.chaos.conftest import ChaosProject
from tests.e2e.conftest import wait_for

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.timeout(150)]


@pytest.mark.postgres
def test_database_connections_terminated_mid_run_do_not_end_submit(chaos: ChaosProject, postgres_url: str) -> None:
    config = chaos.chaos_config(maxTrialNumber=40, trialConcurrency=2, storage=postgres_url,
                                searchSpace={"sleep": {"_type": "choice", "_value": [0.4]},
                                             "x": {"_type": "uniform", "_value": [0, 1]}})
    submit = chaos.background("submit", str(config), "--quiet")
    wait_for(lambda: chaos.executions(), 60, "a trial to start")
    database = postgres_url.rsplit("/", 1)[1]
    admin = sqlalchemy.create_engine(postgres_url.rsplit("/", 1)[0] + "/test", isolation_level="AUTOCOMMIT")
    terminated = 0
    try:
        with admin.connect() as conn:
            # until the scheduler has met a dropped connection, or 30 s. A pooled connection is checked
            # before use, so a termination between two uses goes unnoticed (that path is taken too, every
            # 0.15 s); the ones that the scheduler meets are those ended inside a transaction, which lasts
            # milliseconds: look for them every 5 ms.
            deadline = time.monotonic() + 30
            log = chaos.root / "cli-0.log"
            rounds = 0
            while time.monotonic() < deadline and submit.poll() is None and \
                    "lost the database" not in log.read_text():
                idle_too = "" if rounds % 30 else " OR true"
                terminated += len(conn.exec_driver_sql(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                    f"AND pid <> pg_backend_pid() AND (state <> 'idle'{idle_too})", (database,)).all())
                rounds += 1
                time.sleep(0.005)
    finally:
        admin.dispose()
    assert terminated > 0
    assert submit.wait(90) == 0, (chaos.root / "cli-0.log").read_text()
    assert "lost the database" in (chaos.root / "cli-0.log").read_text()
    with Storage(postgres_url) as storage:
        [exp] = storage.list_experiments()
        assert exp.state is ExperimentState.DONE
        trials = storage.trials(exp.id)
        assert len(trials) == 40 and all(t.state is TrialState.SUCCEEDED for t in trials), trials


@pytest.mark.postgres
def test_a_database_away_longer_than_the_wait_is_one_line_and_resume_continues(chaos: ChaosProject,
                                                                              postgres_url: str) -> None:
    config = chaos.chaos_config(maxTrialNumber=3, trialConcurrency=1, storage=postgres_url,
                                searchSpace={"sleep": {"_type": "choice", "_value": [0.5]},
                                             "x": {"_type": "uniform", "_value": [0, 1]}})
    submit = chaos.background("submit", str(config), "--quiet", env={"HPOQUEUE_STORAGE_WAIT": "2"})
    wait_for(lambda: chaos.executions(), 60, "a trial to start")
    database = postgres_url.rsplit("/", 1)[1]
    admin = sqlalchemy.create_engine(postgres_url.rsplit("/", 1)[0] + "/test", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"ALTER DATABASE {database} ALLOW_CONNECTIONS false")
            try:
                conn.exec_driver_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                                     "AND pid <> pg_backend_pid()", (database,))
                code = submit.wait(60)
            finally:
                conn.exec_driver_sql(f"ALTER DATABASE {database} ALLOW_CONNECTIONS true")
    finally:
        admin.dispose()
    output = (chaos.root / "cli-0.log").read_text()
    exp_id = output.split("experiment ", 1)[1].split()[0]
    last = output.strip().splitlines()[-1]
    assert code == 2 and last.startswith("hpoqueue: error: the database has been unreachable for 2 s"), output
    assert f"`hpoqueue resume {exp_id}` continues the experiment once it is back" in last
    chaos.cli("--storage", postgres_url, "resume", exp_id, "--quiet", timeout=120, check=True)
    with Storage(postgres_url) as storage:
        assert storage.get_experiment(exp_id).state is ExperimentState.DONE
        trials = storage.trials(exp_id)
        assert len(trials) == 3 and all(t.state is TrialState.SUCCEEDED for t in trials), trials


def test_a_redis_restarted_without_its_data_gets_unclaimed_attempts_again(chaos: ChaosProject) -> None:
    """The queued message of an attempt no worker had taken is lost with Redis's data; the scheduler
    sends it again once Redis is back, and a worker started after the restart runs it."""
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    command = [redis_server_binary(), "--bind", "127.0.0.1", "--port", str(port), "--save", "",
               "--appendonly", "no"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: ping(url), 10, "Redis")
        config = chaos.chaos_config(maxTrialNumber=2, trialConcurrency=2, heartbeatTimeout="60s",
                                    searchSpace={"sleep": {"_type": "choice", "_value": [0.2]},
                                                 "x": {"_type": "uniform", "_value": [0, 1]}})
        submit = chaos.background("submit", str(config), "--broker", url, "--quiet")  # no worker yet
        exp_id = chaos.wait_experiment(30)
        wait_for(lambda: len(chaos.storage().trials(exp_id)) == 2, 30, "two queued trials")
        server.kill()
        server.wait()
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # empty
        wait_for(lambda: ping(url), 10, "Redis again")
        chaos.worker(url, "late")
        assert submit.wait(60) == 0, (chaos.root / "cli-0.log").read_text()
        trials = chaos.storage().trials(exp_id)
        assert [t.state for t in trials] == [TrialState.SUCCEEDED] * 2, trials
    finally:
        server.kill()
        server.wait()
