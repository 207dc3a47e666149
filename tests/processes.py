"""Process-tree helpers for the tests that kill commands (Linux /proc)."""
import os
import time
from typing import Set


def _parent_and_state(pid: int):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()  # the name may hold spaces and parentheses
    return int(fields[1]), fields[0]


def descendants(pid: int) -> Set[int]:
    """Every live process below ``pid``."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent, state = _parent_and_state(int(entry))
            except (FileNotFoundError, ProcessLookupError):
                continue
            if state != "Z":
                children.setdefault(parent, set()).add(int(entry))
    found, todo = set(), [pid]
    while todo:
        new = children.get(todo.pop(), set()) - found
        found |= new
        todo.extend(new)
    return found


def alive(pid: int) -> bool:
    try:
        return _parent_and_state(pid)[1] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def wait_until(condition, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()
