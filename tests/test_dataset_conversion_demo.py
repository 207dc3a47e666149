"""Synthetic demo dataset: names, dimensions, spacing, labels, determinism, and nnU-Net planning it as 2D."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk

from dataset_conversion.demo_dataset import _make_case, generate_demo_dataset


@pytest.fixture(scope="module")
def demo2d(tmp_path_factory):
    raw = tmp_path_factory.mktemp("raw")
    return generate_demo_dataset(raw, num_train=5, num_test=2, seed=3)


def _case_files(folder, split):
    return sorted(p.name for p in (folder / split).iterdir())


def test_demo2d_layout_and_json(demo2d):
    assert demo2d.name == "Dataset990_Demo2D"
    assert _case_files(demo2d, "imagesTr") == [f"demo_{i:03d}_0000.nii.gz" for i in range(5)]
    assert _case_files(demo2d, "labelsTr") == [f"demo_{i:03d}.nii.gz" for i in range(5)]
    assert _case_files(demo2d, "imagesTs") == ["demo_005_0000.nii.gz", "demo_006_0000.nii.gz"]
    assert _case_files(demo2d, "labelsTs") == ["demo_005.nii.gz", "demo_006.nii.gz"]
    ds = json.loads((demo2d / "dataset.json").read_text())
    assert ds["labels"] == {"background": 0, "organ": 1, "lesion": 2}
    assert ds["numTraining"] == 5 and ds["file_ending"] == ".nii.gz" and ds["channel_names"] == {"0": "synthetic"}


def test_demo2d_cases_are_2d_anisotropic_and_labelled(demo2d):
    sizes = set()
    for i in range(7):
        split = "Tr" if i < 5 else "Ts"
        image = sitk.ReadImage(str(demo2d / f"images{split}" / f"demo_{i:03d}_0000.nii.gz"))
        label = sitk.ReadImage(str(demo2d / f"labels{split}" / f"demo_{i:03d}.nii.gz"))
        assert image.GetDimension() == 2 and label.GetDimension() == 2
        assert image.GetSpacing() == (1.0, 1.25) and label.GetSpacing() == (1.0, 1.25)
        w, h = image.GetSize()
        assert 96 <= h <= 160 and 96 <= w <= 192 and label.GetSize() == (w, h)
        sizes.add((w, h))
        arr, lab = sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(label)
        assert arr.dtype == np.float32 and lab.dtype == np.uint8
        assert set(np.unique(lab)) == {0, 1, 2}
        assert (lab == 2).sum() >= 150  # lesion >= ~15 px across
        organ, lesion, bg = arr[lab == 1].mean(), arr[lab == 2].mean(), arr[lab == 0].mean()
        assert lesion - organ > 40 and organ - bg > 40  # clear contrast (noise std 10)
    assert len(sizes) > 1  # varying image sizes


def test_nnunet_reads_demo2d_as_2d(demo2d):
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    img, props = SimpleITKIO().read_images([str(demo2d / "imagesTr" / "demo_000_0000.nii.gz")])
    assert img.shape[:2] == (1, 1)  # (C, 1, H, W): nnU-Net's 2D convention
    assert props["spacing"][1:] == [1.25, 1.0] and props["spacing"][0] > 100


def test_demo_is_deterministic():
    a_img, a_lab, _ = _make_case(0, 4, 2)
    b_img, b_lab, _ = _make_case(0, 4, 2)
    c_img, _, _ = _make_case(1, 4, 2)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_lab, b_lab)
    assert a_img.shape != c_img.shape or not np.array_equal(a_img, c_img)


def test_demo3d(tmp_path):
    out = generate_demo_dataset(tmp_path, dim=3, num_train=2, num_test=1)
    assert out.name == "Dataset991_Demo3D"
    image = sitk.ReadImage(str(out / "imagesTr" / "demo_000_0000.nii.gz"))
    label = sitk.ReadImage(str(out / "labelsTr" / "demo_000.nii.gz"))
    assert image.GetDimension() == 3 and image.GetSpacing() == (1.0, 1.0, 3.0)
    x, y, z = image.GetSize()
    assert 24 <= z <= 40 and 64 <= y <= 96 and 64 <= x <= 96
    assert set(np.unique(sitk.GetArrayFromImage(label))) == {0, 1, 2}
    assert (out / "imagesTs" / "demo_002_0000.nii.gz").is_file()


def test_nnunet_fingerprint_and_2d_plan(demo2d, tmp_path):
    """nnU-Net's own fingerprinting and planning run on the demo and plan only a "2d" configuration."""
    env = dict(os.environ, nnUNet_raw=str(demo2d.parent), nnUNet_preprocessed=str(tmp_path / "pre"),
               nnUNet_results=str(tmp_path / "res"))
    code = ("from nnunetv2.experiment_planning.plan_and_preprocess_api import extract_fingerprints, "
            "plan_experiments\nif __name__ == '__main__':\n"
            "    extract_fingerprints([990], num_processes=1)\n    plan_experiments([990])\n")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    plans = json.loads((tmp_path / "pre" / "Dataset990_Demo2D" / "nnUNetPlans.json").read_text())
    assert list(plans["configurations"]) == ["2d"]
    assert plans["configurations"]["2d"]["spacing"] == [1.25, 1.0]
