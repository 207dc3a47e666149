"""The pretrained path through the real commands, with an official-format SAM2.1 tiny checkpoint:
frozen stays frozen for every trainer, checkpoints are lean and loaded safely, fine-tuning across
datasets with another label set."""
import os
import pickle

import pytest
import torch

from nnsam2.network import build_network, frozen_store
from nnsam2.network.sam2_weights import canonical_name
from nnsam2.training.pretrained_weights import is_class_part, load_nnsam2_pretrained
from nnsam2.training.trainers.method_trainers import SAM2DualAdapterTrainer
from nnsam2.utils.safe_torch_load import UnsafeCheckpointError, load_nnunet_checkpoint
from tests.helpers.checkpoints import WritesAFile
from tests.helpers.commands import run, run_together
from tests.helpers.workspaces import QUICK_TRAINING, copy_workspace, model_folder

TRAINERS = ("SAM2SmokeTrainer", "SAM2SmokeTrainer_LW", "SAM2SmokeTrainer_LoRA",
            "SAM2SmokeTrainer_Vanilla", "SAM2SmokeTrainer_FullDecoder")
FULL_DECODER = ("SAM2SmokeTrainer_FullDecoder",)


@pytest.fixture(scope="module")
def tiny_workspace(demo_planned, tmp_path_factory, official_tiny):
    """The demo dataset planned again for SAM2 tiny (its fingerprint is reused), with the
    official-format checkpoint in nnSAM2_checkpoint_dir."""
    root, env = copy_workspace(demo_planned, tmp_path_factory.mktemp("pretrained"))
    run("nnsam2_plan_and_preprocess", "-d", "990", "--sam2-size", "tiny", "--patch-size", "64",
        "64", "-np", "1", "-npfp", "1", env=env)
    env["nnSAM2_checkpoint_dir"] = str(official_tiny[0].parent)  # holds sam2.1_hiera_tiny.pt
    env.update(QUICK_TRAINING)
    return root, env


def train(env, trainer, fold="0", *extra, dataset="990"):
    return run("nnsam2_train", dataset, "2d", fold, "-tr", trainer, "-device", "cpu", *extra,
               env=env)


@pytest.fixture(scope="module")
def trained(tiny_workspace):
    """Fold 0 of every trainer and fold 1 of SAM2SmokeTrainer, through nnsam2_train: the first
    alone (it writes the dataset's splits_final.json), then two at a time, one thread each."""
    root, env = tiny_workspace
    train(env, TRAINERS[0])
    one_thread = {**env, "OMP_NUM_THREADS": "1"}
    runs = [(trainer, "0") for trainer in TRAINERS[1:]] + [(TRAINERS[0], "1")]
    run_together(*[(["nnsam2_train", "990", "2d", fold, "-tr", trainer, "-device", "cpu"],
                    one_thread) for trainer, fold in runs], at_once=2)
    return root, env


def full_weights(fold_folder, name="checkpoint_final.pth"):
    ckpt = load_nnunet_checkpoint(fold_folder / name)
    assert frozen_store.REFERENCE_KEY in ckpt["network_weights"], "checkpoint is not lean"
    return frozen_store.expand(ckpt["network_weights"], [str(fold_folder.parent)])


@pytest.mark.parametrize("trainer", TRAINERS)
def test_pretrained_tensors_stay_bit_identical(trained, official_tiny, trainer):
    root, _ = trained
    weights = full_weights(model_folder(root, trainer) / "fold_0")
    official = official_tiny[1]
    kept = {k: v for k, v in weights.items() if canonical_name(k) in official}
    assert len(kept) > 100
    decoder_trains = trainer in FULL_DECODER
    for key, value in kept.items():
        frozen = not is_class_part(key) and not (
            decoder_trains and key.startswith("sam_mask_decoder."))
        if frozen:
            assert torch.equal(value, official[canonical_name(key)]), f"{trainer} changed {key}"
    # the class parts did train (so the test would see a change)
    token = weights["sam_mask_decoder.mask_tokens.weight"][1]
    assert not torch.equal(token, official["sam_mask_decoder.mask_tokens.weight"][1])
    if decoder_trains:
        key = "sam_mask_decoder.transformer.layers.0.self_attn.q_proj.weight"
        assert not torch.equal(weights[key], official[key])


def test_checkpoints_are_lean_and_share_one_store(trained):
    root, _ = trained
    folder = model_folder(root, "SAM2SmokeTrainer")  # folds 0 and 1
    stores = list(folder.glob("sam2_frozen_*.pt"))
    assert len(stores) == 1  # both folds froze the same SAM2
    frozen = set(torch.load(stores[0], weights_only=True)["tensors"])
    assert any(k.startswith("image_encoder.trunk.") for k in frozen)
    for fold in ("fold_0", "fold_1"):
        lean = load_nnunet_checkpoint(folder / fold / "checkpoint_final.pth")["network_weights"]
        assert not frozen & set(lean)  # trainable tensors (and the reference) only
        assert any(".adapter." in k for k in lean)


def test_tampered_store_is_refused(trained, tmp_path):
    root, env = trained
    folder = model_folder(root, "SAM2SmokeTrainer_LW")
    name = next(folder.glob("sam2_frozen_*.pt")).name
    # the same frozen SAM2 is stored in every model folder trained from it: damage every copy
    copies = list((root / "nnUNet_results").glob(f"*/*/{name}"))
    backups = {p: p.read_bytes() for p in copies}
    payload = torch.load(copies[0], weights_only=True)
    key = next(iter(payload["tensors"]))
    payload["tensors"][key] = payload["tensors"][key] + 1
    try:
        for path in copies:
            torch.save(payload, path)
        raw = root / "nnUNet_raw" / "Dataset990_Demo2D" / "imagesTs"
        r = run("nnsam2_predict", "-i", str(raw), "-o", str(tmp_path / "out"), "-d", "990",
                "-tr", "SAM2SmokeTrainer_LW", "-f", "0", "-device", "cpu", env=env, ok=False)
    finally:
        for path, content in backups.items():
            path.write_bytes(content)
    assert r.returncode == 1 and "SHA-256" in r.stderr and "Traceback" not in r.stderr


def test_malicious_model_folder_runs_nothing(trained, tmp_path):
    root, env = trained
    folder = model_folder(root, "SAM2SmokeTrainer_LoRA")
    evil_folder = tmp_path / "evil"
    os.makedirs(evil_folder / "fold_0")
    for name in ("plans.json", "dataset.json"):
        (evil_folder / name).write_bytes((folder / name).read_bytes())
    marker = tmp_path / "pwned"
    ckpt = load_nnunet_checkpoint(folder / "fold_0" / "checkpoint_final.pth")
    ckpt["logging"] = WritesAFile(str(marker))
    evil = evil_folder / "fold_0" / "checkpoint_final.pth"
    torch.save(ckpt, evil, pickle_module=pickle)
    raw = root / "nnUNet_raw" / "Dataset990_Demo2D" / "imagesTs"
    with pytest.raises(UnsafeCheckpointError, match=r"checkpoint_final\.pth.*open"):
        load_nnunet_checkpoint(evil)
    r = run("nnsam2_train", "990", "2d", "all", "-tr", "SAM2SmokeTrainer", "-device", "cpu",
            "-pretrained_weights", str(evil), env=env, ok=False)
    assert r.returncode == 1 and "refused" in r.stderr and "Traceback" not in r.stderr
    assert not marker.exists()
    # a model folder from someone else in nnU-Net's results tree, used through nnsam2_predict
    target = model_folder(root, "SAM2SmokeTrainer_LoRA").parent / "SAM2SmokeTrainer__evil__2d"
    os.rename(evil_folder, target)
    r = run("nnsam2_predict", "-i", str(raw), "-o", str(tmp_path / "out"), "-d", "990", "-tr",
            "SAM2SmokeTrainer", "-p", "evil", "-f", "0", "-device", "cpu", env=env, ok=False)
    assert r.returncode == 1 and "refused" in r.stderr and "checkpoint_final.pth" in r.stderr
    assert not marker.exists() and not (tmp_path / "out").exists()
    # one line: no torch warning about pickle protocols, no torch advice on weights_only
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "open, which nnU-Net and SAM2 checkpoints never hold" in r.stderr


def trained_source(root):
    return model_folder(root, "SAM2SmokeTrainer") / "fold_0" / "checkpoint_final.pth"


def test_finetune_through_the_command(trained):
    root, env = trained
    source = trained_source(root)
    train(env, "SAM2SmokeTrainer", "all", "-pretrained_weights", str(source))
    fold = model_folder(root, "SAM2SmokeTrainer") / "fold_all"
    log = "".join(p.read_text() for p in fold.glob("training_log_*.txt"))
    assert f"pretrained nnsam2 model {source}: {len(full_weights(source.parent))} tensors loaded" \
        in log
    assert "hypernetwork MLPs: loaded" in log


def test_finetune_on_another_label_set(trained, official_tiny):
    """Class parts of another label set start as from SAM2; everything else is the source's."""
    source = trained_source(trained[0])
    theirs = full_weights(source.parent)
    net = build_network(1, 2, size="tiny", adapter=SAM2DualAdapterTrainer.adapter_cfg())
    report = load_nnsam2_pretrained(net, source, str(official_tiny[0]))
    assert len(report.loaded) == len([k for k in theirs if not is_class_part(k)])
    assert "class part of another label set" in report.summary()
    ours = net.state_dict()
    up = "image_encoder.trunk.inner.blocks.0.adapter.up.weight"  # trained in the source
    assert theirs[up].abs().sum() > 0 and torch.equal(ours[up], theirs[up])
    official_tokens = official_tiny[1]["sam_mask_decoder.mask_tokens.weight"]
    assert torch.equal(ours["sam_mask_decoder.mask_tokens.weight"], official_tokens[:2])
