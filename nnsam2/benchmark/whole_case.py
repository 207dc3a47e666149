"""Whole-case prediction time: nnsam2 models against nnU-Net's 2D U-Net on the same raw volumes.

``whole_case_benchmark(...)`` makes (or copies) a raw 3D dataset into a temporary nnU-Net
workspace, plans and preprocesses it for nnsam2 (nnSAM2Plans, 2d) and nnU-Net (nnUNetPlans, 2d),
trains every model for a few iterations (only time is measured), then predicts the same raw
volumes with

* ``nnunet_2d``: nnU-Net's ``nnUNetPredictor`` on the nnU-Net 2D model (the reference);
* ``lw`` / ``hp`` / ``lora``: nnsam2's ``SAM2Predictor`` on each nnsam2 model (LW adapters fused,
  LoRA merged by the predictor; its own way of running the windows);
* ``<variant>_patchwise``: nnU-Net's plain ``nnUNetPredictor`` (one window, one mirror per
  forward) on the same prepared nnsam2 network and weights: batched vs patch-at-a-time.

Every predictor gets the same test-time augmentation (mirroring, step size, Gaussian weighting)
and device. One case = read the raw file, preprocess, sliding-window prediction, resample and
write the segmentation, all in this process (``predict_single_npy_array``). Predictions are
interleaved (every repetition runs every case with every model, in a rotating model order).
"""
import copy
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import List, Optional, Sequence

from tqdm import tqdm

from nnsam2.benchmark import whole_case_data, whole_case_models as models
from nnsam2.benchmark.machine import machine_info
from nnsam2.benchmark.whole_case_stats import summarise

logger = logging.getLogger(__name__)

DATASET_ID = 997
REFERENCE = "nnunet_2d"
SAM2_VARIANTS = tuple(models.SAM2_TRAINERS)


def _predictor(cls, device: str, step_size: float, mirroring: bool):
    import torch
    return cls(tile_step_size=step_size, use_gaussian=True, use_mirroring=mirroring,
               perform_everything_on_device=device.startswith("cuda"),
               device=torch.device(device), verbose=False, verbose_preprocessing=False,
               allow_tqdm=False)


def load_predictors(folders: dict, patchwise: Sequence[str], device: str, step_size: float,
                    mirroring: bool) -> dict:
    """{model name: predictor} for the trained folders ({variant or REFERENCE: folder})."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    from nnsam2.nnunet.predictor import SAM2Predictor

    out = {}
    for name, folder in folders.items():
        cls = nnUNetPredictor if name == REFERENCE else SAM2Predictor
        out[name] = _predictor(cls, device, step_size, mirroring)
        out[name].initialize_from_trained_model_folder(str(folder), ("all",))
    for name in patchwise:  # nnU-Net's own predictor on the same prepared network and weights
        ours, plain = out[name], _predictor(nnUNetPredictor, device, step_size, mirroring)
        plain.manual_initialization(copy.deepcopy(ours.network), ours.plans_manager,
                                    ours.configuration_manager, ours.list_of_parameters,
                                    ours.dataset_json, ours.trainer_name,
                                    ours.allowed_mirroring_axes)
        out[f"{name}_patchwise"] = plain
    return out


def predict_case(predictor, image_file: str, output_truncated: str, device: str) -> dict:
    """Seconds to read one raw case, predict it and write its segmentation (``seconds``), and
    of them the network's share (``network_seconds``: the sliding window, every window, mirror
    and fold; the rest is reading, preprocessing, resampling and writing)."""
    import torch
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    network = []
    original = predictor.predict_logits_from_preprocessed_data

    def timed(data):
        start = time.perf_counter()
        logits = original(data)
        sync()
        network.append(time.perf_counter() - start)
        return logits

    predictor.predict_logits_from_preprocessed_data = timed
    try:
        start = time.perf_counter()
        image, properties = predictor.plans_manager.image_reader_writer_class().read_images(
            [image_file])
        predictor.predict_single_npy_array(image, properties, None, output_truncated, False)
        sync()
        return dict(seconds=time.perf_counter() - start, network_seconds=sum(network))
    finally:
        del predictor.predict_logits_from_preprocessed_data


def run_interleaved(predictors: dict, cases: List[str], out_dir: Path, device: str, warmup: int,
                    repeats: int, progress: bool) -> List[dict]:
    """Every repetition predicts every case with every model (model order rotated each
    repetition); returns one record per timed prediction."""
    names = list(predictors)
    total = len(names) * (warmup + repeats * len(cases))
    for name in names:
        (out_dir / name).mkdir(parents=True, exist_ok=True)
    records = []
    with tqdm(total=total, desc="nnsam2_benchmark --whole_case", unit="case",
              disable=not progress) as bar:
        for name in names:  # untimed: first-call allocations, kernel selection
            for _ in range(warmup):
                predict_case(predictors[name], cases[0], str(out_dir / name / "warmup"), device)
                bar.update()
        for rep in range(repeats):
            order = names[rep % len(names):] + names[:rep % len(names)]
            for case in cases:
                case_id = os.path.basename(case)[:-len("_0000.nii.gz")]
                for name in order:
                    bar.set_postfix_str(f"{name} {case_id}")
                    timed = predict_case(predictors[name], case, str(out_dir / name / case_id),
                                         device)
                    records.append(dict(model=name, case=case_id, repeat=rep, **timed))
                    bar.update()
    return records


def _raw_dataset(raw: Path, source: Optional[str], cases: int, train_cases: int, slices: int,
                 shape: Sequence[int], spacing: Sequence[float]) -> Path:
    """The generated ACDC-like dataset, or a copy of ``source`` (a raw dataset folder, or a
    dataset name in the user's ``nnUNet_raw``) under the workspace's own id."""
    if source is None:
        return whole_case_data.generate(raw, DATASET_ID, train_cases, cases, slices=slices,
                                        shape=shape, spacing=spacing)
    folder = Path(source) if os.path.isdir(source) else Path(os.environ.get("nnUNet_raw", ".")) / source
    if not (folder / "dataset.json").is_file():
        raise ValueError(f"--raw_dataset {source}: no nnU-Net raw dataset (dataset.json) there")
    target = raw / f"Dataset{DATASET_ID}_{folder.name.split('_', 1)[-1]}"
    shutil.copytree(folder, target)
    return target


def whole_case_benchmark(*, variants: Sequence[str] = ("lw", "hp"),
                         patchwise: Sequence[str] = ("lw",), sam2_size: str = "tiny",
                         cases: int = 2, train_cases: int = 2, slices: int = whole_case_data.SLICES,
                         shape: Sequence[int] = whole_case_data.SHAPE,
                         spacing: Sequence[float] = whole_case_data.SPACING,
                         raw_dataset: Optional[str] = None, iterations: int = 2,
                         device: str = "cpu", step_size: float = 0.5, mirroring: bool = True,
                         warmup: int = 1, repeats: int = 3, threads: Optional[int] = None,
                         workdir: Optional[str] = None, progress: bool = True,
                         command: Optional[str] = None) -> dict:
    """Plan, train and time; returns ``{"machine", "settings", "models", "rows", "ratios",
    "targets", "records"}`` (seconds per case: median over every timed prediction)."""
    import torch
    unknown = [v for v in (*variants, *patchwise) if v not in SAM2_VARIANTS]
    if unknown or not set(patchwise) <= set(variants):
        raise ValueError(f"whole-case variants are {', '.join(SAM2_VARIANTS)} (patchwise ones "
                         f"must also be in --variants); got {list(variants)} / {list(patchwise)}")
    if threads:
        torch.set_num_threads(threads)
    settings = dict(variants=list(variants), patchwise=list(patchwise), sam2_size=sam2_size,
                    cases=cases, train_cases=train_cases, slices=slices, shape=list(shape),
                    spacing=list(spacing), raw_dataset=raw_dataset, iterations=iterations,
                    device=device, step_size=step_size, mirroring=mirroring, warmup=warmup,
                    repeats=repeats, threads=torch.get_num_threads(), command=command)
    root = Path(workdir or tempfile.mkdtemp(prefix="nnsam2_whole_case_"))
    try:
        with models.workspace(root, iterations) as paths:
            folder = _raw_dataset(paths["nnUNet_raw"], raw_dataset, cases, train_cases, slices,
                                  shape, spacing)
            images = folder / ("imagesTs" if (folder / "imagesTs").is_dir() else "imagesTr")
            case_files = sorted(str(p) for p in images.glob("*_0000.nii.gz"))[:cases]
            logger.info("planning and preprocessing %s (nnSAM2Plans and nnUNetPlans, 2d)", folder.name)
            models.plan_and_preprocess(DATASET_ID, sam2_size, progress=progress)
            folders = {REFERENCE: models.train(DATASET_ID, models.NNUNET_TRAINER,
                                               models.NNUNET_PLANS, device)}
            for variant in variants:
                logger.info("training %s for %d iteration(s)", variant, iterations)
                folders[variant] = models.train(DATASET_ID, models.SAM2_TRAINERS[variant][0],
                                                "nnSAM2Plans", device)
            torch.set_num_threads(settings["threads"])
            predictors = load_predictors(folders, patchwise, device, step_size, mirroring)
            load_before = os.getloadavg()[0]
            records = run_interleaved(predictors, case_files, root / "predictions", device,
                                      warmup, repeats, progress)
            settings["loadavg_1min"] = [load_before, os.getloadavg()[0]]
            described = {n: _describe(n, p, folders) for n, p in predictors.items()}
    finally:
        if workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    result = dict(machine=machine_info(device, settings["threads"]), settings=settings,
                  models=described, records=records)
    result.update(summarise(records, REFERENCE, device))
    return result


def _describe(name: str, predictor, folders: dict) -> dict:
    variant = name.removesuffix("_patchwise")
    return dict(predictor=type(predictor).__name__, trainer=predictor.trainer_name,
                patch=list(predictor.configuration_manager.patch_size),
                mirroring_axes=list(predictor.allowed_mirroring_axes or ()),
                step_size=predictor.tile_step_size, folder=str(folders[variant].name))
