"""Clicks through the commands (issue 20): an interactive model trained by nnsam2_train, its
simulated clicks (nnsam2_evaluate_interactive) replayed by nnsam2_predict --clicks, shown by
nnsam2_report; bad clicks are one line; the in-memory session refines the clicked slice only."""
import json
import re
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from nnsam2.interactive.click_coordinates import Click
from tests.helpers.commands import run
from tests.helpers.workspaces import QUICK_TRAINING, copy_workspace

pytestmark = pytest.mark.usefixtures("one_thread")
TRAINER = "SAM2SmokeTrainer_Interactive"


@pytest.fixture(scope="module")
def interactive_model(demo_planned, tmp_path_factory):
    root, env = copy_workspace(demo_planned, tmp_path_factory.mktemp("interactive"))
    env = {**env, **QUICK_TRAINING, "SMOKE_ITERATIONS": "2"}
    run("nnsam2_train", "990", "2d", "0", "-tr", TRAINER, "-device", "cpu", "--random-init",
        "--train-all", env=env)
    return root, env


def test_simulated_clicks_are_replayed_by_predict(interactive_model, tmp_path):
    root, env = interactive_model
    saved = tmp_path / "my_clicks.json"
    model = root / "nnUNet_results" / "Dataset990_Demo2D" / f"{TRAINER}__nnSAM2Plans__2d"
    out = model / "fold_0" / "interactive"  # the default: where nnsam2_report finds it
    result = run("nnsam2_evaluate_interactive", "-d", "990", "-tr", TRAINER, "-f", "0",
                 "--clicks", "2", "-device", "cpu", "--save_clicks", str(saved), "--disable_tta",
                 env=env)
    assert "| clicks | mean Dice | organ | lesion | worst class |" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_cases"] == 2 and len(summary["mean_dice"]) == 3
    assert set(summary["noc"]) == {"NoC@85", "NoC@90"}
    assert (out / "dice_per_click.png").read_bytes()[:4] == b"\x89PNG"
    clicks = json.loads(saved.read_text())
    assert clicks == json.loads((out / "clicks.json").read_text())
    assert sorted(clicks) == sorted(summary["cases"]) and all(len(c) == 2 for c in clicks.values())
    run("nnsam2_report", str(model), "-o", str(tmp_path / "report"), env=env)
    html = (tmp_path / "report" / "index.html").read_text()
    assert "Correction with clicks" in html and "<h3><code>fold_0/interactive</code> (2 cases;" in html
    # nnsam2_predict --clicks replays the clicks: the same segmentations
    images = tmp_path / "images"
    images.mkdir()
    raw = root / "nnUNet_raw" / "Dataset990_Demo2D"
    for case in clicks:
        shutil.copy(raw / "imagesTr" / f"{case}_0000.nii.gz", images)
    run("nnsam2_predict", "-i", str(images), "-o", str(tmp_path / "replayed"), "-d", "990",
        "-tr", TRAINER, "-f", "0", "-device", "cpu", "--clicks", str(saved), "--disable_tta",
        env=env)
    for case in clicks:
        a = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "segmentations" / f"{case}.nii.gz")))
        b = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "replayed" / f"{case}.nii.gz")))
        assert (a == b).mean() > 0.999  # equal up to float rounding at ties


def test_bad_clicks_are_one_line_naming_the_case(interactive_model, tmp_path):
    root, env = interactive_model
    images = root / "nnUNet_raw" / "Dataset990_Demo2D" / "imagesTs"
    case = sorted(images.iterdir())[0].name[:-len("_0000.nii.gz")]
    shape = sitk.GetArrayFromImage(sitk.ReadImage(str(sorted(images.iterdir())[0]))).shape
    bad = {"outside": {case: [{"class": 1, "z": 0, "y": shape[-2], "x": 0}]},
           "class": {case: [{"class": 7, "z": 0, "y": 1, "x": 1}]},
           "case": {"no_such_case": [{"class": 1, "z": 0, "y": 1, "x": 1}]}}
    says = {"outside": f"case '{case}', click 0 .* is outside the image",
            "class": "class 7 is not a label of the dataset \\(0, 1, 2\\)",
            "case": "no_such_case are not in the input folder"}
    for what, content in bad.items():
        path = tmp_path / f"{what}.json"
        path.write_text(json.dumps(content))
        result = run("nnsam2_predict", "-i", str(images), "-o", str(tmp_path / what), "-d", "990",
                     "-tr", TRAINER, "-f", "0", "-device", "cpu", "--clicks", str(path), env=env,
                     ok=False)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1, result.stderr
        assert lines[0].startswith("nnsam2_predict: error: ")
        assert re.search(says[what], lines[0]), lines[0]
        assert not (tmp_path / what).exists()


def test_session_refines_only_the_clicked_slice_and_keeps_the_image_features(
        interactive_model, monkeypatch):
    """A 3D case (the 2D demo image stacked into 5 slices): a click re-predicts its slice only;
    a second click on it runs the decoder alone."""
    from nnsam2.inference.predictor import SAM2Predictor
    from nnsam2.interactive.session import InteractiveSession
    root, env = interactive_model
    monkeypatch.setenv("nnUNet_extTrainer", env["nnUNet_extTrainer"])
    model = root / "nnUNet_results" / "Dataset990_Demo2D" / f"{TRAINER}__nnSAM2Plans__2d"
    predictor = SAM2Predictor(device=torch.device("cpu"), allow_tqdm=False, use_mirroring=False)
    predictor.initialize_from_trained_model_folder(str(model), [0])
    image_file = next((root / "nnUNet_raw" / "Dataset990_Demo2D" / "imagesTs").iterdir())
    slice_ = sitk.GetArrayFromImage(sitk.ReadImage(str(image_file))).astype(np.float32)
    slice_ = slice_.reshape(slice_.shape[-2:])  # (Y, X)
    volume = np.stack([slice_ * (1 + 0.1 * k) for k in range(5)])[None]  # (1, 5, Y, X)
    session = InteractiveSession(predictor, volume, {"spacing": [3.0, 1.25, 1.0]}, "stack")
    net = predictor.network
    calls = []
    net.image_encoder.register_forward_hook(lambda *a: calls.append(1))
    previous = np.full(volume.shape[1:], 2, np.uint8)  # e.g. a segmentation the user edited
    click = Click(1, 2, volume.shape[2] // 2, volume.shape[3] // 2)
    first = session.refine([click], previous)
    assert (first[[0, 1, 3, 4]] == 2).all() and (first[2] != 2).any()
    encoded = len(calls)
    assert encoded > 0
    session.refine([Click(0, 2, 3, 3)])
    assert len(calls) == encoded  # the same slice again: image features from the cache
    assert len(session.clicks) == 2
    session.close()
