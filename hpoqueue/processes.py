"""What /proc says of a process: its start time, which tells a live pid from a reused one (the worker's
process groups, the scheduler's lock across machines)."""

from __future__ import annotations


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (tells a live pid from a reused one)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            stat = handle.read()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    return None if fields[0] == "Z" else int(fields[19])
