"""settings.py reads every HPOQUEUE_* variable, when asked rather than at import, and docs/config.md lists
every variable the code names, with nothing listed that the code does not know."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hpoqueue import settings
from hpoqueue.broker.protocol import TrialSpec
from hpoqueue.errors import ConfigError, GpuError, StorageError
from hpoqueue.worker.attempt import trial_dir

ROOT = Path(__file__).resolve().parents[1]
NAME = re.compile(r"HPOQUEUE_[A-Z_]+")


def documented() -> set[str]:
    """The variables in the first column of docs/config.md's tables under *Environment variables*."""
    section = (ROOT / "docs" / "config.md").read_text().split("## Environment variables", 1)[1]
    return {name for line in section.splitlines() if line.startswith("| `")
            for name in NAME.findall(line.split("|")[1])}


def named_in_code() -> set[str]:
    """Every HPOQUEUE_* name in the package and in the scripts of workers/."""
    files = [*(ROOT / "hpoqueue").rglob("*.py"), *(p for p in (ROOT / "workers").iterdir() if p.is_file())]
    return {name for path in files for name in NAME.findall(path.read_text())}


def test_docs_list_every_variable_the_code_names_and_no_other() -> None:
    code, docs = named_in_code(), documented()
    assert code - docs == set(), "named in the code but missing from docs/config.md"
    assert docs - code == set(), "listed in docs/config.md but named nowhere in the code"


def test_only_settings_and_the_trial_api_define_a_variable_name() -> None:
    """A quoted "HPOQUEUE_..." is a variable being defined: once, in settings.py (or trial.py, which every
    trial imports and which must not load more than it needs)."""
    literal = re.compile(r"[\"']HPOQUEUE_[A-Z_]+[\"']")
    defining = {str(p.relative_to(ROOT)) for p in (ROOT / "hpoqueue").rglob("*.py") if literal.search(p.read_text())}
    assert defining == {"hpoqueue/settings.py", "hpoqueue/trial.py"}


def test_variables_are_read_when_asked_not_at_import(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    for name in (settings.ENV_HOME, settings.ENV_STORAGE, settings.ENV_CODE_CACHE, settings.ENV_RUN_DIR,
                 settings.ENV_KNOWN_HOSTS, settings.ENV_BROKER):
        monkeypatch.delenv(name, raising=False)
    assert settings.home_dir() == tmp_path / "user" / "hpoqueue-experiments"
    assert settings.storage_url() == f"sqlite:///{tmp_path / 'user' / 'hpoqueue-experiments' / 'hpoqueue.db'}"
    assert settings.code_cache_dir() == tmp_path / "user" / ".hpoqueue" / "code"
    assert settings.running_dir() == tmp_path / "user" / ".hpoqueue" / "running"
    assert settings.known_hosts_file() == tmp_path / "user" / ".ssh" / "known_hosts"
    assert settings.broker_url() is None

    monkeypatch.setenv(settings.ENV_HOME, str(tmp_path / "home"))
    monkeypatch.setenv(settings.ENV_CODE_CACHE, str(tmp_path / "code"))
    monkeypatch.setenv(settings.ENV_BROKER, "redis://box:6379/0")
    assert settings.home_dir() == tmp_path / "home"
    assert settings.workers_dir() == tmp_path / "home" / "workers"
    assert settings.storage_url() == f"sqlite:///{tmp_path / 'home' / 'hpoqueue.db'}"
    assert settings.storage_url("sqlite:///cli.db", "sqlite:///config.db") == "sqlite:///cli.db"
    assert settings.code_cache_dir() == tmp_path / "code"
    assert settings.broker_url() == "redis://box:6379/0"
    assert settings.known_hosts_file("~/kh") == tmp_path / "user" / "kh"


@pytest.mark.parametrize(("name", "value", "read", "error"), [
    (settings.ENV_STORAGE_WAIT, "soon", settings.storage_wait, StorageError),
    (settings.ENV_UMASK, "099", settings.umask, ConfigError),
    (settings.ENV_GPU_LEASE_TTL, "30s", settings.gpu_lease_ttl, GpuError),
])
def test_a_value_that_cannot_be_read_is_one_error_naming_the_variable(
        monkeypatch: pytest.MonkeyPatch, name: str, value: str, read: object, error: type[Exception]) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(error, match=name):
        read()  # type: ignore[operator]


def test_numbers_and_switches_have_their_documented_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (settings.ENV_STORAGE_WAIT, settings.ENV_UMASK, settings.ENV_GPU_LEASE_TTL, settings.ENV_CGROUP):
        monkeypatch.delenv(name, raising=False)
    assert (settings.storage_wait(), settings.umask(), settings.gpu_lease_ttl()) == (120.0, 0o077, 30.0)
    assert settings.cgroups_enabled()
    monkeypatch.setenv(settings.ENV_CGROUP, "off")
    monkeypatch.setenv(settings.ENV_UMASK, "027")
    assert not settings.cgroups_enabled() and settings.umask() == 0o027


def test_a_box_that_cannot_write_the_scheduler_directory_keeps_logs_under_its_home(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(settings.ENV_HOME, str(tmp_path / "box-home"))
    (tmp_path / "file").write_text("")  # the scheduler's directory, seen from this box: not a directory
    spec = TrialSpec(exp_id="abc", trial_id="abc-3", seq=3, attempt=2, params={}, command="true",
                     code_dir=str(tmp_path), work_dir=str(tmp_path / "file" / "abc"))
    assert trial_dir(spec) == tmp_path / "box-home" / "abc" / "trials" / "3" / "attempt-2"
    assert trial_dir(spec).is_dir()
