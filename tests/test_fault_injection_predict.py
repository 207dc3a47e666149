"""A prediction killed halfway: SIGKILL of nnsam2_predict while its export worker is in the middle
of writing a segmentation. No worker survives it, no truncated file is left under an output name,
and --continue_prediction then yields every case, readable and identical to an uninterrupted run."""
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import SimpleITK as sitk

from tests.processes import alive, descendants, wait_until
from tests.helpers.commands import run

# On PYTHONPATH of the interrupted run only; acts in the spawned workers. The first segmentation
# is written normally; the second is cut in half, then the worker waits to be killed.
FAULT = textwrap.dedent('''
    import os, sys, time
    if "--multiprocessing-fork" in sys.argv:
        from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
        _write_seg = SimpleITKIO.write_seg

        def write_seg(self, seg, output_fname, properties):
            _write_seg(self, seg, output_fname, properties)
            first = os.path.join(os.environ["FAULT_DIR"], "first_written")
            if not os.path.exists(first):
                open(first, "w").close()
                return
            os.truncate(output_fname, os.path.getsize(output_fname) // 2)
            open(os.path.join(os.environ["FAULT_DIR"], "mid_write"), "w").close()
            time.sleep(600)

        SimpleITKIO.write_seg = write_seg
''')

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG")


@pytest.fixture(scope="module")
def model(demo_trained, tmp_path_factory):
    """The session's trained demo model (SAM2SmokeTrainer, fold 0) and a folder of three images
    to predict (the two test images and a training image): (images, env)."""
    root, env = demo_trained
    raw = root / "nnUNet_raw" / "Dataset990_Demo2D"
    images = tmp_path_factory.mktemp("fault_predict_images")
    for image in [*sorted((raw / "imagesTs").iterdir()), sorted((raw / "imagesTr").iterdir())[0]]:
        shutil.copy(image, images)
    return images, env


def predict_args(images, out, *extra):
    return ["nnsam2_predict", "-i", str(images), "-o", str(out), "-d", "990", "-tr",
            "SAM2SmokeTrainer", "-f", "0", "-device", "cpu", "--disable_tta",
            "--save_probabilities", "-npp", "1", "-nps", "1", *extra]


def outputs(folder):
    """{case file: (segmentation, probabilities)}; raises on any unreadable file."""
    return {p.name: (sitk.GetArrayFromImage(sitk.ReadImage(str(p))),
                     np.load(str(p).replace(".nii.gz", ".npz"))["probabilities"])
            for p in sorted(folder.glob("*.nii.gz"))}


def kill_mid_write(images, env, out, fault_dir):
    """Start the prediction with the fault and SIGKILL it once a write hangs halfway; returns the
    processes it had then."""
    fault_dir.mkdir()
    (fault_dir / "sitecustomize.py").write_text(FAULT)
    fault_env = {**env, "FAULT_DIR": str(fault_dir),
                 "PYTHONPATH": os.pathsep.join([str(fault_dir), env.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(predict_args(images, out), env=fault_env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: (fault_dir / "mid_write").exists() or proc.poll() is not None,
                          timeout=300), "the prediction never reached its second write"
        assert proc.poll() is None, proc.stderr.read()
        workers = descendants(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    return workers


def test_killed_prediction_continues_to_identical_complete_outputs(model, tmp_path):
    images, env = model
    reference = tmp_path / "reference"
    uninterrupted = subprocess.Popen(predict_args(images, reference), env=env,  # meanwhile
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    out = tmp_path / "out"
    workers = kill_mid_write(images, env, out, tmp_path / "fault")
    assert workers, "the prediction had no worker processes"
    assert wait_until(lambda: not any(alive(p) for p in workers), timeout=10), \
        "worker processes outlived the killed prediction"
    interrupted = outputs(out)  # every file under an output name is complete
    assert 1 <= len(interrupted) < 3

    run(*predict_args(images, out, "--continue_prediction"), env=env)
    assert uninterrupted.wait(timeout=600) == 0, uninterrupted.stderr.read()
    expected = outputs(reference)
    assert len(expected) == 3
    got = outputs(out)
    assert sorted(got) == sorted(expected)
    for name, (seg, probabilities) in expected.items():
        assert np.array_equal(got[name][0], seg) and np.array_equal(got[name][1], probabilities)
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")], "staging left behind"


class _RaisingWriter:
    def write_seg(self, seg, output_fname, properties):
        with open(output_fname, "wb") as f:
            f.write(b"half")
        raise OSError("disk full")


def test_failed_write_leaves_nothing_and_atomic_writer_reaches_workers(tmp_path):
    import pickle
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
    from nnsam2.inference.atomic_outputs import AtomicSegWriter, prepare_outputs, with_atomic_export
    target = tmp_path / "case.nii.gz"
    with pytest.raises(OSError, match="disk full"):
        AtomicSegWriter(_RaisingWriter).write_seg(None, str(target), {})
    assert list(tmp_path.iterdir()) == []

    plans = with_atomic_export(PlansManager({"image_reader_writer": "SimpleITKIO",
                                             "configurations": {}}))
    writer = pickle.loads(pickle.dumps(plans)).image_reader_writer_class()  # as export workers
    seg = np.arange(12, dtype=np.uint8).reshape(1, 3, 4)
    writer.write_seg(seg, str(target), {"sitk_stuff": {"spacing": (1.0, 1.0),
                                                       "origin": (0.0, 0.0),
                                                       "direction": (1.0, 0.0, 0.0, 1.0)},
                                        "spacing": (999.0, 1.0, 1.0)})
    assert np.array_equal(writer.read_seg(str(target))[0], seg[None])
    assert [p.name for p in tmp_path.iterdir()] == ["case.nii.gz"]

    (tmp_path / ".case.nii.gz.abc123.tmp").write_bytes(b"x")  # left by a killed write
    (tmp_path / ".nnsam2-partial-xyz").mkdir()
    prepare_outputs([str(tmp_path / "case")], ".nii.gz", save_probabilities=True)
    assert list(tmp_path.iterdir()) == []  # and the old segmentation: the case is redone
