"""One training per fold folder at a time, and no leftovers of a killed one.

``nnsam2_train`` takes a lock file in the fold folder before it writes anything there
(:func:`held`): ``.nnsam2_train.lock``, created exclusively (``O_CREAT | O_EXCL``) and holding the
process id, host name and start time of its holder. A second training of the same fold stops with
one line naming that process. A lock whose process is no longer alive on this host (a run killed
with SIGKILL, or by the out-of-memory killer) is stale and taken over; one from another host
(a shared file system) cannot be checked and counts as held until its owner removes it.

Once the lock is held, :func:`remove_leftovers` deletes the hidden temporary files that a killed
atomic write (:mod:`nnsam2.utils.atomic`) left in the fold folder, and in the model folder when
no other fold of it is being trained.
"""
import contextlib
import datetime
import errno
import glob
import json
import os
import socket
import time
from typing import Iterator, List, Optional

from nnsam2.utils.nnunet_env import UsageError

LOCK_NAME = ".nnsam2_train.lock"
UNWRITTEN_GRACE_S = 30.0  # a lock file still empty after this long was left by a killed start


def _record() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}


def _read(path: str) -> Optional[dict]:
    """The lock's holder, or None when the file is empty or unreadable (half-written)."""
    try:
        with open(path, encoding="utf-8") as f:
            holder = json.load(f)
        return holder if isinstance(holder, dict) and isinstance(holder.get("pid"), int) else None
    except (OSError, ValueError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _is_stale(path: str, holder: Optional[dict]) -> bool:
    if holder is None:
        with contextlib.suppress(OSError):
            return time.time() - os.path.getmtime(path) > UNWRITTEN_GRACE_S
        return False
    return holder.get("host") == socket.gethostname() and not _pid_alive(holder["pid"])


def _held_error(fold_folder: str, path: str, holder: Optional[dict]) -> UsageError:
    who = ("a training that is just starting" if holder is None else
           f"process {holder['pid']} on host {holder.get('host', '?')} "
           f"(started {holder.get('started', '?')})")
    return UsageError(f"{fold_folder} is being trained by {who}: wait for it to finish or stop it; "
                      f"if no such training runs, remove {path}")


def check_free(fold_folder: str) -> None:
    """Raise UsageError if a live run holds the fold's lock (reads only; :func:`held` locks)."""
    path = os.path.join(fold_folder, LOCK_NAME)
    if os.path.exists(path):
        holder = _read(path)
        if not _is_stale(path, holder):
            raise _held_error(fold_folder, path, holder)


def acquire(fold_folder: str) -> str:
    """Take the fold's lock (creating the folder) and return its path; UsageError if held."""
    os.makedirs(fold_folder, exist_ok=True)
    path = os.path.join(fold_folder, LOCK_NAME)
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            holder = _read(path)
            if not _is_stale(path, holder):
                raise _held_error(fold_folder, path, holder) from None
            print(f"taking over the lock of a training that no longer runs: {path} "
                  f"({json.dumps(holder)})")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(_record(), f)
            f.flush()
            os.fsync(f.fileno())
        return path
    raise UsageError(f"cannot take the lock {path}: other trainings keep taking it")


def release(path: str) -> None:
    """Remove the lock if it is still ours (a takeover by another run is left alone)."""
    holder = _read(path)
    if holder and holder["pid"] == os.getpid() and holder.get("host") == socket.gethostname():
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


@contextlib.contextmanager
def held(fold_folder: str) -> Iterator[str]:
    """Hold the fold's lock for the block; released at its end, also on errors and Ctrl-C."""
    path = acquire(fold_folder)
    try:
        yield path
    finally:
        release(path)


def _other_fold_trains(model_folder: str, fold_folder: str) -> bool:
    for path in glob.glob(os.path.join(glob.escape(model_folder), "fold_*", LOCK_NAME)):
        if os.path.dirname(os.path.abspath(path)) != os.path.abspath(fold_folder) \
                and not _is_stale(path, _read(path)):
            return True
    return False


def remove_leftovers(fold_folder: str) -> List[str]:
    """Delete ``.NAME.<random>.tmp`` files of killed atomic writes; call with the lock held.

    The fold folder is ours; the model folder (frozen SAM2 store, shared by the folds) is
    cleaned only when no other fold of it is being trained. Returns the removed paths.
    """
    model_folder = os.path.dirname(os.path.abspath(fold_folder))
    folders = [fold_folder] + ([] if _other_fold_trains(model_folder, fold_folder) else [model_folder])
    removed = []
    for folder in folders:
        for path in glob.glob(os.path.join(glob.escape(folder), ".*.tmp")):
            try:
                os.unlink(path)
            except OSError as e:
                if e.errno != errno.ENOENT:
                    print(f"cannot remove the leftover {path}: {e.strerror}")
                continue
            removed.append(path)
    if removed:
        print(f"removed {len(removed)} temporary file(s) left by a killed run: "
              f"{', '.join(os.path.basename(p) for p in removed)}")
    return removed
