"""One training per fold folder (``nnsam2/training/fold_lock.py``), leftovers of killed writes
removed on start, and atomically written files that follow the umask (``nnsam2/utils/atomic.py``)."""
import json
import os
import socket
import stat
import subprocess
import sys

import pytest
import torch
from torch import nn

from nnsam2.network import frozen_store
from nnsam2.training import checkpoint_files, fold_lock
from nnsam2.utils.atomic import atomic_write, current_umask
from nnsam2.utils.nnunet_env import UsageError


@pytest.fixture
def other_process():
    """A live process that is not this one."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write_lock(fold, pid, host=None):
    fold.mkdir(parents=True, exist_ok=True)
    path = fold / fold_lock.LOCK_NAME
    path.write_text(json.dumps({"pid": pid, "host": host or socket.gethostname(),
                                "started": "2026-01-01T00:00:00+00:00"}))
    return path


def test_lock_held_by_a_live_process_is_refused_untouched(tmp_path, other_process):
    fold = tmp_path / "model" / "fold_0"
    path = _write_lock(fold, other_process.pid)
    before = path.read_bytes()
    for attempt in (fold_lock.check_free, fold_lock.acquire):
        with pytest.raises(UsageError, match=f"process {other_process.pid} on host"):
            attempt(str(fold))
    assert path.read_bytes() == before and os.listdir(fold) == [fold_lock.LOCK_NAME]


def test_lock_of_another_host_or_being_written_counts_as_held(tmp_path):
    fold = tmp_path / "fold_0"
    _write_lock(fold, _dead_pid(), host="some-other-node")
    with pytest.raises(UsageError, match="some-other-node"):
        fold_lock.acquire(str(fold))
    (fold / fold_lock.LOCK_NAME).write_text("")  # a start that has not written its record yet
    with pytest.raises(UsageError, match="just starting"):
        fold_lock.acquire(str(fold))
    old = os.path.getmtime(fold / fold_lock.LOCK_NAME) - 2 * fold_lock.UNWRITTEN_GRACE_S
    os.utime(fold / fold_lock.LOCK_NAME, (old, old))  # ... or one killed before it could
    fold_lock.release(fold_lock.acquire(str(fold)))


def test_stale_lock_is_taken_over_and_released(tmp_path):
    fold = tmp_path / "fold_0"
    path = _write_lock(fold, _dead_pid())
    fold_lock.check_free(str(fold))
    with fold_lock.held(str(fold)) as held:
        assert held == str(path)
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert not path.exists()


def test_lock_is_released_after_an_exception(tmp_path):
    fold = tmp_path / "fold_0"
    with pytest.raises(ValueError):
        with fold_lock.held(str(fold)):
            with pytest.raises(UsageError, match=f"process {os.getpid()}"):
                fold_lock.acquire(str(fold))  # a second start while the first runs
            raise ValueError("training failed")
    assert not (fold / fold_lock.LOCK_NAME).exists()


def test_leftovers_removed_at_start_model_folder_only_when_no_other_fold_trains(
        tmp_path, other_process):
    model = tmp_path / "Trainer__nnSAM2Plans__2d"
    fold = model / "fold_0"
    fold.mkdir(parents=True)
    checkpoint_tmp = fold / ".checkpoint_latest.pth.k2j4h1x8.tmp"  # 0 bytes, after a SIGKILL
    store_tmp = model / ".sam2_frozen_0123456789abcdef.pt.a8s7d6f5.tmp"
    keep = [fold / "checkpoint_latest.pth", fold / "sam2_init.json", model / "plans.json"]
    for path in [checkpoint_tmp, store_tmp] + keep:
        path.touch()
    other = _write_lock(model / "fold_1", other_process.pid)  # fold 1 trains: may write the store
    with fold_lock.held(str(fold)):
        assert fold_lock.remove_leftovers(str(fold)) == [str(checkpoint_tmp)]
    assert store_tmp.exists()
    other.unlink()
    with fold_lock.held(str(fold)):
        assert fold_lock.remove_leftovers(str(fold)) == [str(store_tmp)]
    assert all(path.exists() for path in keep)


@pytest.fixture(params=[0o022, 0o027, 0o002])
def umask(request):
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_writes_follow_the_umask(tmp_path, umask):
    assert current_umask() == umask
    expected = 0o666 & ~umask
    atomic_write(str(tmp_path / "plain.bin"), lambda f: f.write(b"x"))
    checkpoint_files.write({"current_epoch": 1}, str(tmp_path / "fold_0" / "checkpoint_latest.pth"))
    net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    net[0].requires_grad_(False)
    lean = frozen_store.split_state_dict(net, str(tmp_path))
    store = tmp_path / lean[frozen_store.REFERENCE_KEY]["file"]
    for path in (tmp_path / "plain.bin", tmp_path / "fold_0" / "checkpoint_latest.pth", store):
        assert _mode(path) == expected, (path, oct(_mode(path)))
    assert torch.load(store, weights_only=True)["sha256"] == lean[frozen_store.REFERENCE_KEY]["sha256"]
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_nnsam2_train_refuses_a_held_fold_and_cleans_up_after_a_killed_one(
        demo_planned, tmp_path, other_process):
    from tests.helpers.commands import run
    from tests.helpers.workspaces import copy_workspace, model_folder
    root, env = copy_workspace(demo_planned, tmp_path / "ws")
    fold = model_folder(root, "SAM2SmokeTrainer") / "fold_0"
    lock = _write_lock(fold, other_process.pid)
    cmd = ("nnsam2_train", "990", "2d", "0", "-tr", "SAM2SmokeTrainer", "-device", "cpu",
           "--random-init", "--train-all")
    proc = run(*cmd, env=env, ok=False)
    assert proc.returncode == 1 and f"process {other_process.pid} on host" in proc.stderr
    assert os.listdir(fold) == [fold_lock.LOCK_NAME]

    _write_lock(fold, _dead_pid())  # that run was killed, mid-write of a checkpoint
    leftover = fold / ".checkpoint_final.pth.k2j4h1x8.tmp"
    leftover.touch()
    proc = run(*cmd, "--val", env=env, ok=False)  # takes over, cleans up, then fails: no model
    assert proc.returncode != 0
    assert not leftover.exists() and not lock.exists()
