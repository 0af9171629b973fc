"""The cgroup probe answers the same for every thread of a worker: two trials starting at once both get a
cgroup (a second probe once found the first one's directory and turned cgroups off for the process)."""

from __future__ import annotations

import threading

import pytest

from hpoqueue.worker import cgroup


@pytest.mark.skipif(cgroup.cgroup_base() is None, reason="no writable cgroup v2 with cgroup.kill on this box")
def test_threads_that_ask_at_once_all_get_the_cgroup_base() -> None:
    cgroup._probe_base.cache_clear()
    start, answers = threading.Barrier(8), []

    def ask() -> None:
        start.wait()
        answers.append(cgroup.cgroup_base())

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 8 and None not in answers, answers
