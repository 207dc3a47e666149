"""DDP (``-num_gpus 2``) on the CPU: two processes in a gloo group (tests/helpers/ddp.py)."""
import json

import pytest
import torch

from nnsam2.losses import CompositeLoss
from nnsam2.network.frozen_store import FILE_PREFIX, REFERENCE_KEY
from nnsam2.utils.safe_torch_load import load_nnunet_checkpoint
from tests.helpers.ddp import (WORLD_SIZE, TrainingRun, composite_loss_on_rank,
                               run_in_gloo_group, train_on_rank)
from tests.helpers.workspaces import QUICK_TRAINING, copy_workspace

DATASET = "Dataset992_Context3D"


def test_composite_loss_on_two_ranks_equals_one_process_on_the_whole_batch(tmp_path):
    """Batch Dice and Focal Tversky count over all ranks' samples (as nnU-Net's Dice under DDP):
    each rank's terms, the rank-averaged loss and the gradients DDP averages equal one process's
    on the concatenated batch."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 3, 8, 8, generator=gen)
    target = torch.randint(0, 3, (4, 1, 8, 8), generator=gen)
    target[2:] = 0  # the second rank's samples are background only: its own Dice would differ
    whole = logits.clone().requires_grad_()
    terms = CompositeLoss().terms(whole, target)
    loss = terms["bce"] + terms["dice"] + terms["tversky"]
    loss.backward()

    out_file = str(tmp_path / "rank%d.pt")
    run_in_gloo_group(composite_loss_on_rank, (logits, target, out_file), str(tmp_path), timeout=60)
    for rank in range(WORLD_SIZE):
        got = torch.load(out_file % rank)
        for name in ("dice", "tversky"):
            torch.testing.assert_close(got["terms"][name], terms[name], msg=f"{name}, rank {rank}")
        torch.testing.assert_close(got["mean_loss"], loss.detach())
        # AllGatherGrad sums every rank's Dice gradient, DDP then divides by the world size
        torch.testing.assert_close(got["grad"] / WORLD_SIZE, whole.grad[got["rows"]])


# (method, trainer, configuration); 2d_mem last: it starts from the hp 2d run of its fold
FAMILIES = [("hp", "SAM2SmokeTrainer", "2d"), ("lw", "SAM2SmokeTrainer_LW", "2d"),
            ("lora", "SAM2SmokeTrainer_LoRA", "2d"), ("none", "SAM2SmokeTrainer_Vanilla", "2d"),
            ("hp", "SAM2SmokeTrainer", "2d_mem")]
RUNS = [TrainingRun(f"{name}-{config}" + ("-train_all" if train_all else ""), trainer, config,
                    train_all)
        for name, trainer, config in FAMILIES for train_all in (False, True)]


@pytest.fixture(scope="module")
def ddp_trained(context_planned, tmp_path_factory):
    """Every run of RUNS trained for two iterations on two gloo ranks (one pair of processes
    for all of them) on a copy of the 3D workspace planned for 2d and 2d_mem; (root, the
    outcomes per rank)."""
    root, env = copy_workspace(context_planned, tmp_path_factory.mktemp("ddp"))
    _set_2d_batch(root / "nnUNet_preprocessed" / DATASET / "nnSAM2Plans.json", 3)
    env = {**env, **QUICK_TRAINING, "SMOKE_ITERATIONS": "2"}  # the 2nd finds unused parameters
    out_file = str(root / "outcome_rank%d.pt")
    run_in_gloo_group(train_on_rank, (env, "992", RUNS, out_file), str(root), timeout=480)
    return root, [torch.load(out_file % rank) for rank in range(WORLD_SIZE)]


@pytest.mark.parametrize("training", RUNS, ids=[r.name for r in RUNS])
def test_ddp_training_step(ddp_trained, training):
    """nnsam2_train -num_gpus 2 on two CPU ranks: no unused-parameter error (nnU-Net's DDP has
    find_unused_parameters=False), every trainable tensor stepped twice and equal on both
    ranks, the loss's batch Dice gathered over the ranks, checkpoints written by rank 0 only,
    one frozen store per SAM2 weights."""
    root, outcomes = ddp_trained
    first, second = (outcome[training.name] for outcome in outcomes)
    for rank, outcome in enumerate((first, second)):
        assert "error" not in outcome, f"rank {rank}:\n{outcome['error']}"
        assert outcome["num_trainable"] > 0 and outcome["steps"] == [2], outcome
        assert outcome["loss_ddp"] and all(outcome["loss_ddp"]), outcome  # batch Dice over ranks
    assert first["trainable_sha256"] == second["trainable_sha256"]
    # one file per save (nnU-Net's best after the epoch, then final), none from rank 1
    assert sorted(first["writes"]) == ["checkpoint_best.pth", "checkpoint_final.pth"]
    assert second["writes"] == []
    model = (root / "nnUNet_results" / DATASET
             / f"{training.trainer}__nnSAM2Plans__{training.configuration}")
    fold = model / f"fold_{training.fold}"
    settings = json.loads((fold / "sam2_init.json").read_text())
    assert settings["mode"] == "random" and settings["train_all"] == training.train_all
    assert _store_of(fold).is_file()
    # no store of another rank or hash, nothing half-written
    stores = {p.name for p in model.glob(f"{FILE_PREFIX}*")}
    assert stores == {_store_of(f).name for f in model.glob("fold_*")
                      if (f / "checkpoint_final.pth").is_file()}
    assert not list(model.rglob("*.tmp"))
    if training.configuration == "2d":  # 3 would split 2:1: the batch Dice's gather fails
        log = "".join(p.read_text() for p in fold.glob("training_log_*.txt"))
        assert "batch size 3 -> 2: the same batch on each of the 2 GPUs" in log


def _set_2d_batch(plans_file, batch_size: int) -> None:
    plans = json.loads(plans_file.read_text())
    plans["configurations"]["2d"]["batch_size"] = batch_size
    plans_file.write_text(json.dumps(plans, indent=2))


def _store_of(fold):
    """The frozen store file that a fold's final checkpoint refers to."""
    weights = load_nnunet_checkpoint(fold / "checkpoint_final.pth", False)["network_weights"]
    return fold.parent / weights[REFERENCE_KEY]["file"]
