"""Shipped trial code: what is packed (.nniignore), the size limit's one-line error, the same code packing to
the same hash, and workers of one box unpacking a version once, side by side, from a real Redis."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest
import redis

from hpoqueue.broker import keys
from hpoqueue.broker.client import connect
from hpoqueue.errors import ConfigError
from hpoqueue.settings import ENV_CODE_CACHE
from hpoqueue.worker import code_bundle
from hpoqueue.worker.code_bundle import CodeError, checkout, pack, scan, ship, worker_code_dir


def tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_nniignore_patterns_leave_out_what_they_name(tmp_path: Path) -> None:
    root = tree(tmp_path / "code", {
        "train.py": "", "lib/util.py": "", "data/x.csv": "", "lib/data/keep.txt": "", "run.log": "",
        "logs/keep.log": "", "ckpt/a.pt": "", "sub/ckpt/b.pt": "", ".git/HEAD": "", "lib/__pycache__/u.pyc": "",
        ".nniignore": "# comment\n/data/\n*.log\n!logs/keep.log\nckpt\n",
    })
    assert scan(root) == [".nniignore", "lib", "lib/data", "lib/data/keep.txt", "lib/util.py", "logs",
                          "logs/keep.log", "sub", "train.py"]


PACK_NEXT_TO_A_LIVE_DATABASE = """
import io, subprocess, sys, tarfile
from pathlib import Path
from hpoqueue.worker.code_bundle import pack
from hpoqueue.experiment.launch import own_files
from hpoqueue.storage import Storage

code = Path(sys.argv[1])
storage = Storage(f"sqlite:///{code / 'home' / 'hpoqueue.db'}")
storage.create_experiment("e1", name=None, config={}, work_dir=str(code / "home" / "e1"), optimize_mode="minimize",
                          concurrency=1, max_trial_number=1, max_duration=None)
bundle = pack(code, leave_out=own_files(storage.url, code / "home" / "e1"))
print(tarfile.open(fileobj=io.BytesIO(bundle.data), mode="r:gz").getnames())
reader = subprocess.Popen([sys.executable, "-c", "import sys\\nfrom hpoqueue.storage import Storage\\n"
                           "for _ in range(40): Storage(sys.argv[1]).close()", storage.url])
n = 0
while reader.poll() is None:  # the scheduler goes on writing while the CLI opens the database
    storage.update_experiment("e1", concurrency=n % 5 + 1)
    n += 1
"""


@pytest.mark.slow
def test_a_live_database_in_the_code_directory_is_not_packed_and_its_writer_survives_readers(
        tmp_path: Path) -> None:
    # opening the database's files to pack them dropped the scheduler's SQLite locks: the next process to open
    # the database reset its shared memory, and the scheduler died of SIGBUS (a remote experiment whose
    # HPOQUEUE_HOME lay in its code directory)
    code = tree(tmp_path / "code", {"train.py": ""})
    run = subprocess.run([sys.executable, "-c", PACK_NEXT_TO_A_LIVE_DATABASE, str(code)], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split("\n")[0] == str(["home", "train.py"])  # neither the database nor the experiment


def test_the_same_code_packs_to_the_same_hash_and_modes_survive(tmp_path: Path) -> None:
    root = tree(tmp_path / "code", {"train.py": "print(1)", "run.sh": "#!/bin/sh\n"})
    (root / "run.sh").chmod(0o755)
    first = pack(root)
    (root / "train.py").touch()  # a new mtime, the same content
    assert pack(root).digest == first.digest
    (root / "train.py").write_text("print(2)")
    assert pack(root).digest != first.digest
    with tarfile.open(fileobj=io.BytesIO(first.data)) as tar:
        assert tar.getmember("run.sh").mode == 0o755 and tar.getmember("train.py").mode == 0o644


def test_code_over_the_limit_is_refused_in_one_line_naming_the_limit_and_the_way_out(tmp_path: Path) -> None:
    root = tree(tmp_path / "code", {"train.py": ""})
    (root / "weights.bin").write_bytes(b"\0" * 3 * 2**20)
    with pytest.raises(ConfigError) as info:
        scan(root, max_bytes=2 * 2**20, source="exp.yml")
    message = str(info.value)
    assert "\n" not in message and message.startswith("exp.yml: trialCodeDirectory: ")
    assert "more than 2 MiB" in message and "weights.bin" in message
    assert ".nniignore" in message and "shipCode: false" in message
    (root / ".nniignore").write_text("*.bin\n")
    assert scan(root, max_bytes=2 * 2**20) == [".nniignore", "train.py"]
    with pytest.raises(ConfigError, match="more than 1 files"):
        scan(root, max_files=1)


def test_workers_of_one_box_unpack_a_version_once_and_run_in_it(tmp_path: Path, redis_url: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_CODE_CACHE, str(tmp_path / "cache"))
    bundle = pack(tree(tmp_path / "code", {"train.py": "print(1)", "pkg/mod.py": "X = 1"}))
    client = connect(redis_url)
    ship(bundle, client)
    assert 0 < redis.Redis.from_url(redis_url).ttl(keys.code(bundle.digest)) <= keys.CODE_TTL
    gets = []
    real_get = client.get

    def counting_get(key: str) -> bytes | None:
        gets.append(key)
        return real_get(key)

    monkeypatch.setattr(client, "get", counting_get)
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(checkout(client, bundle.digest))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and len(gets) == 1
    assert (results[0] / "pkg" / "mod.py").read_text() == "X = 1"
    assert results[0].stat().st_mode & 0o777 == 0o700
    assert sorted(p.name for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")) == [bundle.digest]


def test_a_version_gone_from_the_broker_says_how_to_ship_it_again(tmp_path: Path, redis_url: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_CODE_CACHE, str(tmp_path / "cache"))
    with pytest.raises(CodeError, match="hpoqueue resume"):
        checkout(connect(redis_url), "ab" * 32)


def test_shared_storage_maps_the_code_directory_to_the_boxes_mount_point() -> None:
    shared = {"storageType": "NFS", "localMountPoint": "/mnt/local", "remoteMountPoint": "/mnt/remote"}
    assert worker_code_dir(Path("/mnt/local/exp/code"), shared) == "/mnt/remote/exp/code"
    assert worker_code_dir(Path("/home/me/code"), shared) == "/home/me/code"
    assert worker_code_dir(Path("/home/me/code"), None) == "/home/me/code"


def test_versions_unused_for_a_week_leave_the_cache(tmp_path: Path) -> None:
    import os
    import time

    root = tmp_path / "cache"
    for name, age_days in (("old", 8), ("recent", 6), (".dead-unpacking", 9)):
        (root / name / "sub").mkdir(parents=True)
        os.utime(root / name, (time.time() - age_days * 86400,) * 2)
    (root / ".old.lock").touch()
    os.utime(root / ".old.lock", (time.time() - 8 * 86400,) * 2)
    assert sorted(code_bundle.prune(root)) == [".dead-unpacking", ".old.lock", "old"]
    assert sorted(p.name for p in root.iterdir()) == ["recent"]
