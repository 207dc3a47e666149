"""Worker processes that never outlive their nnsam2 command.

nnU-Net 2.8.1 starts its data-augmentation workers with ``fork`` (batchgenerators'
``NonDetMultiThreadedAugmenter``, the default context on Linux) and its preprocessing and export
workers with ``spawn`` (``predict_from_raw_data``, ``data_iterators``, the trainer's validation
export). Killed, a command leaves them running with parent 1. :func:`guarded` makes

* SIGTERM / SIGINT stop the command: :class:`Stopped` unwinds the main thread, the workers are
  terminated, one line is printed and the exit status is 128 + the signal number;
* SIGKILL (or any death) of a process kill its workers through Linux's ``PR_SET_PDEATHSIG``: fork
  children set it in an ``os.register_at_fork`` hook, spawn children in a small launcher that
  multiprocessing runs instead of the interpreter (``multiprocessing.set_executable``), which sets
  it and then execs the real interpreter (the setting survives ``exec``).

PDEATHSIG fires when the *thread* that created the child exits. Children forked from another thread
(a pool refilling itself) therefore watch their parent's pid instead. Spawn children get SIGTERM,
not SIGKILL, so that multiprocessing's resource tracker (started the same way, it ignores SIGTERM)
still exits on its own and cleans up; workers ignore SIGINT, so a Ctrl-C reaches only the command.
"""
import contextlib
import ctypes
import multiprocessing
import os
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
from multiprocessing import spawn
from typing import Iterator, List

PR_SET_PDEATHSIG = 1
ENV_PARENT = "nnSAM2_guard_parent"  # pid a launched child must still have as parent
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

# Runs as ``python -S -c LAUNCHER REAL_PYTHON ARGS...`` in the new child before its real start.
LAUNCHER = """\
import ctypes, os, signal, sys
ctypes.CDLL(None, use_errno=True).prctl({option}, signal.SIGTERM)
if str(os.getppid()) != os.environ.get("{env}"):
    os._exit(1)  # the parent died before prctl: nobody would signal us
signal.signal(signal.SIGINT, signal.SIG_IGN)  # stays ignored through exec
os.execv(sys.argv[1], sys.argv[1:])
""".format(option=PR_SET_PDEATHSIG, env=ENV_PARENT)

_guard = {"active": False, "hooked": False, "fork_from_main": True}


class Stopped(KeyboardInterrupt):
    """Raised in the main thread by SIGTERM or SIGINT while :func:`guarded` is active.

    A ``KeyboardInterrupt`` so that nnU-Net's and batchgenerators' own Ctrl-C clean-up runs.
    """

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def guarded(prog: str) -> Iterator[None]:
    """Run the body with workers tied to this process; a stop signal ends it with one line."""
    if not sys.platform.startswith("linux"):
        yield
        return
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    executable, parent_env = spawn.get_executable(), os.environ.get(ENV_PARENT)
    launcher_dir = _install()
    try:
        yield
    except Stopped as e:
        for s in STOP_SIGNALS:  # a second Ctrl-C must not interrupt the clean-up
            signal.signal(s, signal.SIG_IGN)
        stop_workers()
        print(f"{prog}: stopped by {e}; its worker processes were stopped", file=sys.stderr)
        raise SystemExit(128 + e.signum) from None
    finally:
        _guard["active"] = False
        spawn.set_executable(executable)
        shutil.rmtree(launcher_dir, ignore_errors=True)
        _restore_env(ENV_PARENT, parent_env)
        for s, handler in previous.items():
            signal.signal(s, handler)


def stop_workers(timeout: float = 5.0) -> None:
    """Terminate this process's multiprocessing children (SIGKILL after ``timeout``).

    For a process about to exit: threads that notice a worker gone stay silent from now on.
    """
    threading.excepthook = lambda args: None
    children: List[multiprocessing.process.BaseProcess] = multiprocessing.active_children()
    for child in children:
        child.terminate()
    deadline = time.monotonic() + timeout
    for child in children:
        child.join(max(0.0, deadline - time.monotonic()))
        if child.is_alive():
            child.kill()
            child.join(1.0)


def _install() -> str:
    """Stop signals, the fork hook and the spawn launcher; returns the launcher's folder."""
    for s in STOP_SIGNALS:
        signal.signal(s, _raise_stopped)
    if not _guard["hooked"]:  # at-fork hooks cannot be removed: install once, switch with "active"
        os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
        _guard["hooked"] = True
    _guard["active"] = True
    os.environ[ENV_PARENT] = str(os.getpid())
    folder = tempfile.mkdtemp(prefix="nnsam2-guard-")
    spawn.set_executable(_write_launcher(folder, os.fsdecode(spawn.get_executable())))
    return folder


def _restore_env(name: str, value) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def _raise_stopped(signum, frame) -> None:
    raise Stopped(signum)


def _write_launcher(folder: str, python: str) -> str:
    """An executable that multiprocessing starts as ``launcher ARGS...`` instead of ``python ARGS...``.

    A shell script, not a ``#!python`` one: shebang lines are length-limited.
    """
    path = os.path.join(folder, "python")
    with open(path, "w") as f:
        f.write(f'#!/bin/sh\nexec {shlex.quote(python)} -S -c {shlex.quote(LAUNCHER)} '
                f'{shlex.quote(python)} "$@"\n')
    os.chmod(path, 0o700)
    return path


def _before_fork() -> None:
    _guard["fork_from_main"] = threading.current_thread() is threading.main_thread()
    _guard["parent"] = os.getpid()


def _after_fork_in_child() -> None:
    """In every fork child of a guarded process: die with the parent, leave stopping to it."""
    if not _guard["active"]:
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's _raise_stopped
    os.environ[ENV_PARENT] = str(os.getpid())  # for the launcher of this child's own children
    parent = _guard["parent"]
    if not _guard["fork_from_main"]:
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
        return
    _prctl_pdeathsig(signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl
        os._exit(1)


def _watch_parent(parent: int, interval: float = 0.5) -> None:
    while os.getppid() == parent:
        time.sleep(interval)
    os.kill(os.getpid(), signal.SIGKILL)


def _prctl_pdeathsig(signum: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signum)) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
