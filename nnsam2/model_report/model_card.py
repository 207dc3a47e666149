"""The model card: what was trained, on what, from which SAM2 weights, and what it costs.

The network is rebuilt from the plans by the trainer class's ``build_network_architecture`` (as
the predictor does); no weights are loaded, parameter counts and FLOPs need none.
"""
import hashlib
import os
from dataclasses import asdict, replace
from typing import Dict, List

from nnsam2.network import frozen_store
from nnsam2.network.configs import resolve
from nnsam2.network.summary import components as network_components, flops_by_component, \
    parameter_report
from nnsam2.training import run_settings
from nnsam2.training.trainer_lookup import use_nnsam2_trainers
from nnsam2.model_report.layout import ModelFolder
from nnsam2.model_report.missing import Missing, collect

_HASH_CHUNK = 1 << 20


def plans_facts(plans: dict, dataset_json: dict, configuration: str) -> List[tuple]:
    """(name, value) rows of the plans and dataset that decide what the network sees."""
    config = plans["configurations"][configuration]
    sam2 = config.get("sam2", {})
    return [("SAM2 size", sam2.get("size", "not in the plans")),
            ("input channels", ", ".join(f"{k}: {v}"
                                         for k, v in dataset_json["channel_names"].items())),
            ("labels", ", ".join(f"{v}: {k}" for k, v in dataset_json["labels"].items())),
            ("training cases", dataset_json.get("numTraining")),
            ("patch size", " x ".join(map(str, config["patch_size"]))),
            ("batch size", config["batch_size"]),
            ("target spacing", " x ".join(f"{s:g}" for s in config["spacing"])),
            ("normalisation", ", ".join(config["normalization_schemes"])),
            ("image reader", plans.get("image_reader_writer")),
            ("file ending", dataset_json.get("file_ending"))]


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def init_records(model: ModelFolder, folds: List[str]) -> List[dict]:
    """Per fold: how SAM2 was initialised (``sam2_init.json``) and the SHA-256 of the checkpoint
    file used, when it is still where training read it."""
    hashes: Dict[str, str] = {}
    rows = []
    for fold in (f for f in folds if os.path.isdir(model.fold_folder(f))):
        record = run_settings.load(model.fold_folder(fold))
        if record is None:
            missing = Missing(f"no fold_{fold}/{run_settings.RECORD_FILE}")
            rows.append({"fold": fold, "missing": missing})
            continue
        row = {"fold": fold, **asdict(record), "description": run_settings.describe(record)}
        if record.checkpoint:
            row["sha256"] = (_cached_hash(hashes, record.checkpoint)
                             if os.path.isfile(record.checkpoint)
                             else Missing("the checkpoint file is no longer at this path"))
        rows.append(row)
    return rows


def _cached_hash(hashes: Dict[str, str], path: str) -> str:
    if path not in hashes:  # five folds trained from one file hash it once
        hashes[path] = file_sha256(path)
    return hashes[path]


def rebuild_network(model: ModelFolder, plans: dict, dataset_json: dict, train_all: bool):
    """(network, trainer class) as the predictor builds it; every parameter set trainable when the
    run trained all of them (``--train-all``, recorded in sam2_init.json)."""
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
    from nnsam2.network.build import set_trainable
    use_nnsam2_trainers()
    try:
        trainer_class = recursive_find_trainer_class_by_name(model.trainer)
    except RuntimeError:
        raise LookupError(f"trainer class {model.trainer} not found (set nnUNet_extTrainer to the "
                          f"folder that defines it)") from None
    plans_manager = PlansManager(plans)
    config = plans_manager.get_configuration(model.configuration)
    network = trainer_class.build_network_architecture(
        plans_manager, config, determine_num_input_channels(plans_manager, config, dataset_json),
        plans_manager.get_label_manager(dataset_json).num_segmentation_heads,
        enable_deep_supervision=False)
    if train_all and hasattr(trainer_class, "adapter_cfg"):
        set_trainable(network, replace(resolve(trainer_class.adapter_cfg()), train_all=True))
    return network, trainer_class


def components(network, input_shape) -> List[dict]:
    """Rows of parameters (total, trainable, %) and forward GFLOPs per component, then ``all``."""
    params = parameter_report(network)
    flops = flops_by_component(network, input_shape)
    return [{"component": c, **params[c], "gflops": flops.get(c, 0.0)}
            for c in network_components(network) + ("all",)]


def adapter_facts(trainer_class) -> List[tuple]:
    if not hasattr(trainer_class, "adapter_cfg"):
        return [("adapter", f"{trainer_class.__name__} is not an nnsam2 trainer")]
    cfg = resolve(trainer_class.adapter_cfg())
    return [("adapter", cfg.kind), ("position encoding", cfg.pos_embed),
            ("mask decoder trains", cfg.train_decoder)]


def model_card(model: ModelFolder, plans: dict, dataset_json: dict, folds: List[str]) -> dict:
    inits = init_records(model, folds)
    train_all = any(r.get("train_all") for r in inits)
    config = plans["configurations"][model.configuration]
    num_channels = len(dataset_json["channel_names"])
    input_shape = (1, num_channels, *config["patch_size"])

    def network_section():
        network, trainer_class = rebuild_network(model, plans, dataset_json, train_all)
        return {"rows": components(network, input_shape), "input_shape": input_shape,
                "adapter": adapter_facts(trainer_class), "train_all": train_all}

    return {"identity": [("dataset", model.dataset), ("trainer", model.trainer),
                         ("plans", model.plans_name), ("configuration", model.configuration),
                         ("model folder", model.path)],
            "plans": collect("plans",
                             lambda: plans_facts(plans, dataset_json, model.configuration)),
            "init": inits,
            "frozen_store": sorted(f for f in os.listdir(model.path)
                                   if f.startswith(frozen_store.FILE_PREFIX)),
            "network": collect("network", network_section)}
