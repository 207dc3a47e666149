"""``2d_mem`` through the real commands on a generated 3D dataset whose classes only neighbouring
slices tell apart: planned for 3D data only, trained with --c, predicted as NIfTI, compared with
and ensembled with ``2d`` by find_best_configuration; a 2D dataset asked for it is refused."""
import json

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from dataset_conversion.context_dataset import LABELS, make_context_case
from nnsam2.experiment_planning.mem_configuration import MAX_SLICES, MIN_SLICES, slices_for_spacing
from tests.helpers.commands import run, run_together
from tests.helpers.workspaces import QUICK_TRAINING, copy_workspace

DATASET = "Dataset992_Context3D"


def test_context_cases_need_neighbouring_slices():
    """Both classes have the same intensity, and single-slice disk sizes overlap."""
    image, labels, _ = make_context_case(0, 0)
    tube, ball = image[labels == 1].mean(), image[labels == 2].mean()
    assert abs(tube - ball) < 10, (tube, ball)  # noise std is 12: not separable by intensity
    areas = {1: [], 2: []}  # disk areas (px) per slice and object
    for z in range(labels.shape[0]):
        disks, n = ndimage.label(labels[z] > 0)
        for i in range(1, n + 1):
            areas[int(labels[z][disks == i][0])].append(int((disks == i).sum()))
    assert min(areas[2]) < min(areas[1]) and max(areas[1]) < max(areas[2])


def test_slices_rule():
    assert slices_for_spacing(10.0, 9) == 5  # 50 mm of context
    assert slices_for_spacing(1.0, 155) == MAX_SLICES
    assert slices_for_spacing(25.0, 12) == MIN_SLICES
    assert slices_for_spacing(1.0, 4) == 4  # never more slices than a case has


@pytest.fixture(scope="module")
def mem_workspace(context_planned, tmp_path_factory):
    return copy_workspace(context_planned, tmp_path_factory.mktemp("mem"))


def test_2d_mem_plans(mem_workspace):
    root, _ = mem_workspace
    plans = json.loads((root / "nnUNet_preprocessed" / DATASET / "nnSAM2Plans.json").read_text())
    mem = plans["configurations"]["2d_mem"]
    assert mem["inherits_from"] == "2d"  # same preprocessed data, nothing done twice
    assert mem["patch_size"][1:] == plans["configurations"]["2d"]["patch_size"]
    median_slices = plans["original_median_shape_after_transp"][0]
    assert mem["patch_size"][0] == mem["sam2"]["memory"]["slices"] == \
        slices_for_spacing(2.0, median_slices)
    assert mem["batch_size"] >= 2
    folders = {p.name for p in (root / "nnUNet_preprocessed" / DATASET).iterdir() if p.is_dir()}
    assert folders == {"nnSAM2Plans_2d", "gt_segmentations"}


def test_2d_mem_starts_from_2d_continues_predicts_find_best(mem_workspace, tmp_path):
    root, env = mem_workspace
    common = ("-tr", "SAM2SmokeTrainer", "-device", "cpu", "--random-init", "--npz")
    quick = {**env, "nnUNet_n_proc_DA": "0", "SMOKE_ITERATIONS": "1"}
    results = root / "nnUNet_results" / DATASET
    fold = results / "SAM2SmokeTrainer__nnSAM2Plans__2d_mem" / "fold_0"
    # without the trained 2d model: one line saying what to do, nothing created
    refused, wrong_flag = run_together(
        (("nnsam2_train", "992", "2d_mem", "0", *common), quick),
        (("nnsam2_train", "992", "2d", "0", *common, "--sam2-gate-open"), quick), ok=False)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "train it first" in refused.stderr and "--from-scratch" in refused.stderr
    assert not fold.exists()
    assert wrong_flag.returncode != 0 and "only applies to the 2d_mem" in wrong_flag.stderr
    run("nnsam2_train", "992", "2d", "0", *common, env=quick)
    started = run("nnsam2_train", "992", "2d_mem", "0", *common, env={**quick, "SMOKE_EPOCHS": "8"})
    assert "starts from the trained 2d model" in started.stdout
    settings = json.loads((fold / "sam2_init.json").read_text())
    assert settings["start_from_2d"].endswith("__2d/fold_0/checkpoint_final.pth")
    # --c continues the 2d_mem run: a quarter of the 8 epochs after 2d
    run("nnsam2_train", "992", "2d_mem", "0", *common, "--c",
        env={**quick, **QUICK_TRAINING, "SMOKE_EPOCHS": "8"})
    log = "".join(p.read_text() for p in sorted(fold.glob("training_log_*.txt")))
    assert "Epoch 1" in log and "Epoch 2" not in log and "2 epochs (0.25 of 8)" in log
    assert "do_dummy_2d_data_aug: True" in log and "memory gate closed" in log
    assert "2d_mem starts from the trained 2d model" in log and "0 skipped" in log
    pred = tmp_path / "pred"
    _, best = run_together(
        (("nnsam2_predict", "-i", str(root / "nnUNet_raw" / DATASET / "imagesTs"), "-o",
          str(pred), "-d", "992", "-c", "2d_mem", "-tr", "SAM2SmokeTrainer", "-f", "0",
          "-device", "cpu", "-npp", "1", "-nps", "1"), env),
        (("nnsam2_find_best_configuration", "992", "-tr", "SAM2SmokeTrainer", "-f", "0",
          "-np", "1"), env))
    out = sitk.ReadImage(str(pred / "ctx_005.nii.gz"))
    ref = sitk.ReadImage(str(root / "nnUNet_raw" / DATASET / "labelsTs" / "ctx_005.nii.gz"))
    assert out.GetSize() == ref.GetSize() and np.allclose(out.GetSpacing(), ref.GetSpacing())
    assert set(np.unique(sitk.GetArrayFromImage(out))) <= set(LABELS.values())
    assert "comparing 2d, 2d_mem" in best.stdout
    assert "2d_mem fold 0 started from the trained 2d model" in best.stdout
    summary = json.loads((results / "inference_information.json").read_text())
    compared = set(summary["all_results"])
    assert any("2d_mem" in k for k in compared) and any("__2d" in k and "2d_mem" not in k
                                                         for k in compared)
    assert any(k.startswith("ensemble") for k in compared), compared


def test_2d_dataset_gets_no_2d_mem(demo_planned, tmp_path):
    plans = json.loads((demo_planned[0] / "nnUNet_preprocessed" / "Dataset990_Demo2D" /
                        "nnSAM2Plans.json").read_text())
    assert list(plans["configurations"]) == ["2d"]
    _, env = copy_workspace(demo_planned, tmp_path)
    plan, train = run_together(
        (("nnsam2_plan_and_preprocess", "-d", "990", "--sam2-size", "toy", "-c", "2d_mem",
          "-np", "1", "-npfp", "1"), env),
        (("nnsam2_train", "990", "2d_mem", "0", "-device", "cpu", "--random-init"), env),
        ok=False)
    for r in (plan, train):
        assert r.returncode != 0 and "2d_mem" in r.stderr and "3D datasets only" in r.stderr
        assert "Traceback" not in r.stderr


def test_cpu_budget_trainer_schedule_and_end(monkeypatch, tmp_path):
    """The comparison trainers: learning rate by budget spent, training ends when it is spent,
    and a missing budget is a usage error."""
    from nnsam2.training.trainers.variants import benchmarking as cpu_budget
    from nnsam2.utils.nnunet_env import UsageError

    class Loop:  # the parts of nnU-Net's trainer the mixin uses
        initial_lr, current_epoch, ended, output_folder = 1.0, 0, False, str(tmp_path)

        def configure_optimizers(self):
            return type("O", (), {"param_groups": [{"lr": 0.0}]})(), None

        def on_train_start(self):
            self.optimizer, self.lr_scheduler = self.configure_optimizers()

        def on_train_epoch_start(self):
            self.lr_scheduler.step(self.current_epoch)

        def print_to_log_file(self, *args, **kwargs):
            pass

        def run_training(self):
            self.on_train_start()
            while True:
                self.on_train_epoch_start()
                self.current_epoch += 1

        def on_train_end(self):
            self.ended = True

    class Trainer(cpu_budget._CPUBudget, Loop):
        pass

    # process_time: start; then per epoch the budget check and the scheduler step
    clock = iter([0.0, 0.0, 0.0, 50.0, 50.0, 100.0])
    monkeypatch.setattr(cpu_budget.time, "process_time", lambda: next(clock))
    cpu_budget.write_cpu_budget(str(tmp_path), 100)
    trainer = Trainer()
    trainer.run_training()
    assert trainer.ended and trainer.current_epoch == 2
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.5 ** 0.9)
    (tmp_path / cpu_budget.BUDGET_FILE).unlink()
    with pytest.raises(UsageError, match="cpu_budget.json"):
        Trainer().on_train_start()
