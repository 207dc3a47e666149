"""Atomic file writes: a reader (or a resumed run) sees the old file or the new one, never half.

Write to a temporary file in the target's folder, flush and fsync it, rename it over the target
(``os.replace`` is atomic on POSIX within one file system), then fsync the folder so the rename
itself survives a power cut. The file gets the mode a plain ``open()`` would give it
(``0o666`` minus the umask), not ``mkstemp``'s private ``0o600``: colleagues sharing a model
folder can read its checkpoints, frozen store and exports.
"""
import contextlib
import os
import tempfile
import threading
from typing import Callable, Iterator, IO


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = "") -> Iterator[str]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically.

    On any exception (or KeyboardInterrupt) the temporary file is removed and ``path`` is untouched.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=suffix + ".tmp")
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~current_umask())
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(folder)


def atomic_write(path: str, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(f)`` on a binary file object whose content atomically becomes ``path``."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            write(f)


_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process's umask, read without changing it where Linux allows (/proc), else set and
    restored at once under a lock (``os.umask`` can only be read by setting it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _umask_lock:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: str) -> None:
    with contextlib.suppress(OSError):  # some file systems refuse fsync on folders
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
