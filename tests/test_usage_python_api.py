"""The example of documentation/usage.md "Predicting from Python" runs as printed, in a fresh
process without any nnU-Net variable, on a model of nnsam2_demo's trainer: nnsam2's predictor
finds its trainer by itself (issue: "Could not find requested nnunet trainer ...")."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch

DEMO_TRAINER = "SAM2DualAdapterTrainer_CPUDemo"  # the demo schedule without clicks
from nnsam2.utils.safe_torch_load import load_nnunet_checkpoint
from tests.helpers.workspaces import model_folder

USAGE = Path(__file__).resolve().parents[1] / "documentation" / "usage.md"
HEADING = "### Predicting from Python"


def python_blocks(markdown: str, heading: str) -> list:
    """The ```python blocks of the section under ``heading`` (up to the next heading)."""
    lines = markdown.splitlines()
    blocks, block = [], None
    for line in lines[lines.index(heading) + 1:]:
        if block is None and line.startswith("#"):
            break
        if block is None and line.strip() == "```python":
            block = []
        elif block is not None and line.strip() == "```":
            blocks.append("\n".join(block) + "\n")
            block = None
        elif block is not None:
            block.append(line)
    return blocks


def as_demo_model(source: Path, root: Path) -> Path:
    """A copy of a smoke-trained model folder as nnsam2_demo names its model: trainer
    SAM2DualAdapterTrainer_CPUDemo (the smoke trainer's network, another schedule), which only
    nnsam2's own trainer lookup finds."""
    folder = root / f"{DEMO_TRAINER}__nnSAM2Plans__2d"
    shutil.copytree(source, folder)
    for path in folder.glob("fold_*/checkpoint_*.pth"):
        checkpoint = load_nnunet_checkpoint(str(path), allow_pickle=False)
        checkpoint["trainer_name"] = DEMO_TRAINER
        torch.save(checkpoint, path)
    return folder


def test_python_example_of_usage_runs_as_printed(demo_trained, tmp_path):
    blocks = python_blocks(USAGE.read_text(encoding="utf-8"), HEADING)
    assert len(blocks) == 1 and "SAM2Predictor" in blocks[0]
    script = tmp_path / "predict_with_nnsam2.py"
    script.write_text(blocks[0], encoding="utf-8")
    root, _ = demo_trained
    model = as_demo_model(model_folder(root, "SAM2SmokeTrainer"), tmp_path)
    images = root / "nnUNet_raw" / "Dataset990_Demo2D" / "imagesTs"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("nnUNet_", "nnSAM2_"))}
    result = subprocess.run([sys.executable, str(script), str(model), str(images),
                             str(tmp_path / "predictions")], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    predicted = {f for f in os.listdir(tmp_path / "predictions") if f.endswith(".nii.gz")}
    assert predicted == {"demo_006.nii.gz", "demo_007.nii.gz"}  # the two test cases
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("demo_006_0000.nii.gz:"))
    # the demo's 2D spacing (y, x) = (1.25, 1.0) mm, with nnU-Net's dummy z; 3 classes
    assert "spacing (1248.75, 1.25, 1.0), segmentation (1, " in line, line
    assert "probabilities (3, 1, " in line, line
    assert "Could not find requested nnunet trainer" not in output
