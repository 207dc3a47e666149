"""2d_mem takes clicks end to end (issue 20): trained with clicks, simulated clicks on its
validation case, replayed by nnsam2_predict --clicks."""
import json
import shutil

import pytest
import SimpleITK as sitk

from tests.helpers.commands import run
from tests.helpers.workspaces import QUICK_TRAINING, copy_workspace

pytestmark = pytest.mark.usefixtures("one_thread")
TRAINER = "SAM2SmokeTrainer_Interactive"


def test_2d_mem_takes_clicks_end_to_end(context_planned, tmp_path):
    """2d_mem trained with clicks: simulated clicks on its validation case, replayed by
    nnsam2_predict --clicks (the whole volume is predicted again: the memory links the slices)."""
    root, env = copy_workspace(context_planned, tmp_path / "ws")
    env = {**env, **QUICK_TRAINING}
    run("nnsam2_train", "992", "2d_mem", "0", "-tr", TRAINER, "-device", "cpu", "--random-init",
        "--train-all", "--from-scratch", env=env)
    out = tmp_path / "interactive"
    run("nnsam2_evaluate_interactive", "-d", "992", "-c", "2d_mem", "-tr", TRAINER, "-f", "0",
        "--clicks", "1", "-device", "cpu", "-o", str(out), "--disable_tta", env=env)
    clicks = json.loads((out / "clicks.json").read_text())
    assert len(clicks) == 1 and all(len(c) == 1 for c in clicks.values())
    case = next(iter(clicks))
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(root / "nnUNet_raw" / "Dataset992_Context3D" / "imagesTr" / f"{case}_0000.nii.gz",
                images)
    run("nnsam2_predict", "-i", str(images), "-o", str(tmp_path / "replayed"), "-d", "992",
        "-c", "2d_mem", "-tr", TRAINER, "-f", "0", "-device", "cpu", "--clicks",
        str(out / "clicks.json"), "--disable_tta", env=env)
    a = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "segmentations" / f"{case}.nii.gz")))
    b = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "replayed" / f"{case}.nii.gz")))
    assert (a == b).mean() > 0.999
