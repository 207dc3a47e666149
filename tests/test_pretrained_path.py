"""The pretrained path, unit by unit: what each trainer trains, what step 0 computes, bf16 under
any autocast, safe checkpoint loading, the frozen-weight store, checkpoint fallback, plans."""
import inspect
import json
import os
import pickle

import numpy as np
import pytest
import torch

from nnsam2.network import AdapterCfg, build_network, frozen_store, load_sam2_checkpoint
from nnsam2.network.sam2_weights import CheckpointError, canonical_name
from nnsam2.network.summary import component_of
from nnsam2.training import checkpoint_files
from nnsam2.training.pretrained_weights import is_class_part
from nnsam2.utils.safe_torch_load import (ENV_ALLOW_PICKLE, UnsafeCheckpointError,
                                     load_nnunet_checkpoint)
from nnsam2.training.trainers.method_trainers import BASE_TRAINERS

NEW_MODULES = ("stem", "peg", "adapters")  # components that SAM2 does not have


def trainable_groups(trainer, size="toy", classes=4, channels=2):
    net = build_network(channels, classes, size=size, adapter=trainer.adapter_cfg())
    groups = {}
    for name, p in net.named_parameters():
        if p.requires_grad:
            group = "class parts" if is_class_part(name) else component_of(name)
            groups.setdefault(group, []).append(name)
    return net, groups


@pytest.mark.parametrize("trainer", BASE_TRAINERS, ids=lambda t: t.__name__)
def test_what_each_trainer_trains(trainer):
    net, groups = trainable_groups(trainer)
    full_decoder = trainer.sam2_train_decoder == "full"
    allowed = {*NEW_MODULES, "class parts"} | ({"decoder"} if full_decoder else set())
    assert set(groups) <= allowed, f"{trainer.__name__} trains SAM2 parts: {set(groups) - allowed}"
    assert "class parts" in groups and "stem" in groups
    has_peg = any("peg" in n or n.startswith("image_pe.") for n, _ in net.named_parameters())
    assert has_peg == (trainer.adapter_kind in ("hp", "lw"))  # SAM2LoRA and vanilla: SAM2's PE
    if trainer.adapter_kind in ("hp", "lw", "lora"):
        assert "adapters" in groups
    if full_decoder:
        assert any(".transformer." in n for n in groups["decoder"])


def with_official_weights(kind, official, **kw):
    torch.manual_seed(0)
    net = build_network(1, 3, size="tiny", adapter=AdapterCfg(kind=kind, **kw))
    load_sam2_checkpoint(net, official)
    return net.eval()


class ZeroPE(torch.nn.Module):
    def forward(self, x):
        return torch.zeros_like(x[:1])


def test_step0_is_sam2_without_absolute_position_encodings(official_tiny):
    """Untrained PEG + adapter models compute SAM2 with its absolute trunk embedding and the
    decoder's position encoding removed; untrained LoRA computes SAM2 itself."""
    path, _ = official_tiny
    reference = with_official_weights("none", path)
    with torch.no_grad():
        x = torch.randn(1, 1, 96, 64)
        sam2 = reference(x)
        reference.image_encoder.trunk.inner.pos_embed.zero_()
        reference.image_encoder.trunk.inner.pos_embed_window.zero_()
        reference.image_pe = ZeroPE()
        no_position = reference(x)
        assert (sam2 - no_position).abs().max() > 1e-3  # the property is not trivial here
        for kind in ("hp", "lw"):
            torch.testing.assert_close(with_official_weights(kind, path)(x), no_position,
                                       rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(with_official_weights("lora", path)(x), sam2,
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["hp", "lw", "lora", "none"])
def test_forward_runs_bf16_under_any_autocast(kind):
    net = build_network(1, 3, size="toy", adapter=AdapterCfg(kind=kind)).eval()
    seen = []
    for module in net.modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
            module.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.float16):  # nnU-Net-style fp16
        out = net(x)
    assert set(seen) == {torch.bfloat16} and out.dtype == torch.bfloat16
    seen.clear()
    with torch.no_grad():
        assert net(x).dtype == torch.float32 and set(seen) == {torch.float32}


def nnunet_like_checkpoint(net):
    """The non-tensor types nnU-Net checkpoints hold: numpy scalars in the log, a torch.device."""
    return {"network_weights": net.state_dict(), "optimizer_state": {"state": {}},
            "grad_scaler_state": None, "current_epoch": 3, "_best_ema": np.float64(0.5),
            "logging": {"mean_fg_dice": [np.float32(0.1), np.float64(0.2)], "lrs": [1e-4]},
            "init_args": {"plans": {}, "configuration": "2d", "fold": 0, "dataset_json": {},
                          "device": torch.device("cpu")},
            "trainer_name": "SAM2DualAdapterTrainer", "inference_allowed_mirroring_axes": (0, 1)}


class WritesAFile:
    """Unpickling this runs ``open(path, 'w')``: what a malicious checkpoint would do."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_safe_loading(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_ALLOW_PICKLE, raising=False)
    net = build_network(1, 3, size="toy", adapter=AdapterCfg(kind="lw"))
    good = tmp_path / "good.pth"
    torch.save(nnunet_like_checkpoint(net), good)
    assert load_nnunet_checkpoint(good)["logging"]["mean_fg_dice"][1] == 0.2

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    checkpoint = nnunet_like_checkpoint(net)
    checkpoint["_best_ema"] = WritesAFile(str(marker))
    torch.save(checkpoint, evil, pickle_module=pickle)
    with pytest.raises(UnsafeCheckpointError, match=r"evil\.pth.*open.*--allow-pickle"):
        load_nnunet_checkpoint(evil)
    assert not marker.exists()
    monkeypatch.setenv(ENV_ALLOW_PICKLE, "1")  # the explicit opt-in for trusted files
    load_nnunet_checkpoint(evil)
    assert marker.exists()

    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[:5000])
    monkeypatch.delenv(ENV_ALLOW_PICKLE)
    with pytest.raises(CheckpointError, match=r"truncated\.pth cannot be read"):
        load_nnunet_checkpoint(truncated)


def test_frozen_store_round_trip_and_damage(tmp_path):
    net = build_network(1, 3, size="toy", adapter=AdapterCfg(kind="lw"))
    lean = frozen_store.split_state_dict(net, str(tmp_path))
    reference = lean[frozen_store.REFERENCE_KEY]
    store = tmp_path / reference["file"]
    assert store.is_file() and not any(k.startswith("image_encoder.trunk.inner.blocks.0.inner.")
                                       for k in lean)
    assert any(".adapter." in k for k in lean)  # trainable and BN running statistics stay
    frozen_store._cache.clear()
    full = frozen_store.expand(lean, [str(tmp_path)])
    assert set(full) == set(net.state_dict())
    assert all(torch.equal(full[k], v) for k, v in net.state_dict().items())

    payload = torch.load(store, weights_only=True)
    key = next(iter(payload["tensors"]))
    payload["tensors"][key] = payload["tensors"][key] + 1
    torch.save(payload, store)
    frozen_store._cache.clear()
    with pytest.raises(frozen_store.FrozenStoreError, match="SHA-256"):
        frozen_store.expand(lean, [str(tmp_path)])
    store.unlink()
    with pytest.raises(frozen_store.FrozenStoreError, match="copy the whole model folder"):
        frozen_store.expand(lean, [str(tmp_path / "elsewhere")])


def test_unreadable_checkpoint_falls_back_to_the_newest_readable(tmp_path, caplog):
    net = build_network(1, 3, size="toy", adapter=AdapterCfg(kind="hp"))
    fold = tmp_path / "model" / "fold_0"
    fold.mkdir(parents=True)
    for name, epoch in (("checkpoint_best.pth", 4), ("checkpoint_latest.pth", 6)):
        checkpoint = nnunet_like_checkpoint(net)
        checkpoint["current_epoch"] = epoch
        checkpoint_files.write(checkpoint, str(fold / name))
    (fold / "checkpoint_latest.pth").write_bytes(b"")  # e.g. killed by a non-atomic writer
    with pytest.raises(CheckpointError, match="checkpoint_latest.pth cannot be read"):
        checkpoint_files.read(str(fold / "checkpoint_latest.pth"))
    checkpoint, used = checkpoint_files.read(str(fold / "checkpoint_latest.pth"), fallback=True)
    assert used.endswith("checkpoint_best.pth") and checkpoint["current_epoch"] == 4
    assert "continuing from" in caplog.text


def test_atomic_write_keeps_the_old_file_when_interrupted(tmp_path):
    target = tmp_path / "checkpoint_latest.pth"
    checkpoint_files.write({"current_epoch": 1}, str(target))

    def dies_halfway(obj, path):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        checkpoint_files.write({"current_epoch": 2}, str(target), save=dies_halfway)
    assert torch.load(target, weights_only=True)["current_epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint_latest.pth"]


def test_plans_describe_sam2_and_clean_means_clean(tmp_path):
    from dataset_conversion.demo_dataset import generate_demo_dataset
    from tests.helpers.commands import run
    from tests.helpers.workspaces import workspace_env
    root, env = workspace_env(tmp_path)
    folder = generate_demo_dataset(root / "nnUNet_raw", dataset_id=993, dim=3, num_train=2,
                                   num_test=0)
    plans_file = root / "nnUNet_preprocessed" / folder.name / "nnSAM2Plans.json"
    plans_file.parent.mkdir()
    plans_file.write_text(json.dumps({"configurations": {"stale": {"data_identifier": "old"}}}))
    out = run("nnsam2_plan_and_preprocess", "-d", "993", "--sam2-size", "toy", "-npfp", "1",
              "--no_pp", "--clean", env=env)
    assert "3D fullres U-Net configuration" not in out.stdout + out.stderr
    plans = json.loads(plans_file.read_text())
    # a 3D dataset: no 3D U-Net planned (2d, and 2d_mem on 2d's data); --clean dropped the
    # earlier file's configuration (without it nnU-Net merges earlier configurations in)
    assert list(plans["configurations"]) == ["2d", "2d_mem"]
    assert plans["configurations"]["2d_mem"]["inherits_from"] == "2d"
    arch = plans["configurations"]["2d"]["architecture"]
    assert arch["network_class_name"] == "nnsam2.network.sam2_net.SAM2SegNet"
    assert arch["arch_kwargs"]["sam2_size"] == "toy"


def test_trainer_names_are_explicit_and_findable():
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
    from nnsam2.training.trainers.variants import training_length
    from nnsam2.utils.nnunet_env import use_nnsam2_trainers
    use_nnsam2_trainers()
    source = open(training_length.__file__).read()
    for base in BASE_TRAINERS:
        for epochs in training_length.SCHEDULES:
            name = f"{base.__name__}_{epochs}epochs"
            assert f"class {name}({base.__name__})" in source  # greppable
            cls = getattr(training_length, name)
            assert issubclass(cls, base) and cls.sam2_num_epochs == epochs
    assert recursive_find_trainer_class_by_name("SAM2LoRATrainer_50epochs").sam2_num_epochs == 50
    demo = recursive_find_trainer_class_by_name("SAM2DualAdapterTrainer_CPUDemo")
    assert demo.__module__ == "nnsam2.training.trainers.variants.benchmarking"
    assert "CPUDemo" not in inspect.getsource(inspect.getmodule(BASE_TRAINERS[0]))


def test_methods_table_is_generated_from_the_code():
    from experiments.trainable_table import BEGIN, END, table
    methods = open(os.path.join(os.path.dirname(__file__), "..", "documentation",
                                "methods.md")).read()
    documented = methods[methods.index(BEGIN):methods.index(END)].splitlines()
    for row in table(BASE_TRAINERS, sizes=("tiny",)).splitlines()[2:]:  # the tiny column
        assert any(line.startswith(row[:-1]) for line in documented), row
