"""Whole-case prediction time: nnsam2 models against nnU-Net's 2D U-Net on the same raw volumes.

``whole_case_benchmark(...)``: a raw 3D dataset in a temporary nnU-Net workspace, every model
trained a few iterations, then the same volumes predicted by nnU-Net's ``nnUNetPredictor``
(``nnunet_2d``), nnsam2's ``SAM2Predictor`` (``lw``, ``hp``, ``lora``; with ``folds`` > 1 fold 0
against the ``<variant>_<N>folds`` ensemble) and nnU-Net's predictor on the nnsam2 networks
(``<variant>_patchwise``), with the same test-time augmentation, interleaved.
See documentation/benchmarks.md.
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

from nnsam2.benchmark.machine import machine_info
from nnsam2.benchmark.tables import write_files
from nnsam2.benchmark.whole_case import data as whole_case_data, models
from nnsam2.benchmark.whole_case.stats import compare_folds, summarise
from nnsam2.benchmark.whole_case.tables import format_markdown

logger = logging.getLogger(__name__)

DATASET_ID = 997
REFERENCE = "nnunet_2d"
SAM2_VARIANTS = tuple(models.SAM2_TRAINERS)


def ensemble_name(variant: str, folds: int) -> str:
    return f"{variant}_{folds}folds"


def load_predictors(specs: dict, patchwise: Sequence[str], device: str, step_size: float,
                    mirroring: bool) -> dict:
    """{model name: predictor} for the trained models ({model name: (folder, folds)})."""
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    from nnsam2.inference.predictor import SAM2Predictor

    def make(cls):
        return cls(tile_step_size=step_size, use_gaussian=True, use_mirroring=mirroring,
                   perform_everything_on_device=device.startswith("cuda"),
                   device=torch.device(device), verbose=False, verbose_preprocessing=False,
                   allow_tqdm=False)

    out = {}
    for name, (folder, folds) in specs.items():
        out[name] = make(nnUNetPredictor if name == REFERENCE else SAM2Predictor)
        out[name].initialize_from_trained_model_folder(str(folder), folds)
    for name in patchwise:  # nnU-Net's own predictor on the same prepared network and weights
        ours, plain = out[name], make(nnUNetPredictor)
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
                         folds: int = 1, device: str = "cpu", step_size: float = 0.5,
                         mirroring: bool = True, warmup: int = 1, repeats: int = 3,
                         threads: Optional[int] = None,
                         workdir: Optional[str] = None, progress: bool = True,
                         command: Optional[str] = None, json_path: Optional[str] = None,
                         markdown_path: Optional[str] = None) -> dict:
    """Plan, train and time; returns (and writes the files it is given) ``{"machine",
    "settings", "models", "rows", "ratios", "records"}`` (seconds per case: median over every
    timed prediction), with ``folds`` > 1 also ``"folds"`` (N folds against fold 0)."""
    import torch
    unknown = [v for v in (*variants, *patchwise) if v not in SAM2_VARIANTS]
    if unknown or not set(patchwise) <= set(variants):
        raise ValueError(f"whole-case variants are {', '.join(SAM2_VARIANTS)} (patchwise ones "
                         f"must also be in --variants); got {list(variants)} / {list(patchwise)}")
    if folds < 1:
        raise ValueError(f"--folds must be 1 or more, got {folds}")
    if threads:
        torch.set_num_threads(threads)
    settings = dict(variants=list(variants), patchwise=list(patchwise), sam2_size=sam2_size,
                    cases=cases, train_cases=train_cases, slices=slices, shape=list(shape),
                    spacing=list(spacing), raw_dataset=raw_dataset, iterations=iterations,
                    folds=folds, device=device, step_size=step_size, mirroring=mirroring,
                    warmup=warmup, repeats=repeats, threads=torch.get_num_threads(),
                    command=command)
    root = Path(workdir or tempfile.mkdtemp(prefix="nnsam2_whole_case_"))
    try:
        with models.workspace(root) as paths:
            folder = _raw_dataset(paths["nnUNet_raw"], raw_dataset, cases, train_cases, slices,
                                  shape, spacing)
            images = folder / ("imagesTs" if (folder / "imagesTs").is_dir() else "imagesTr")
            case_files = sorted(str(p) for p in images.glob("*_0000.nii.gz"))[:cases]
            logger.info("planning and preprocessing %s (nnSAM2Plans and nnUNetPlans, 2d)", folder.name)
            models.plan_and_preprocess(DATASET_ID, sam2_size, progress=progress)
            if folds > 1:
                models.write_split(paths["nnUNet_preprocessed"] / folder.name, folds)
            specs = _train_models(variants, folds, device, iterations)
            torch.set_num_threads(settings["threads"])
            predictors = load_predictors(specs, patchwise, device, step_size, mirroring)
            load_before = os.getloadavg()[0]
            records = run_interleaved(predictors, case_files, root / "predictions", device,
                                      warmup, repeats, progress)
            settings["loadavg_1min"] = [load_before, os.getloadavg()[0]]
            described = {n: _describe(n, p, specs) for n, p in predictors.items()}
    finally:
        if workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    result = dict(machine=machine_info(device, settings["threads"]), settings=settings,
                  models=described, records=records)
    result.update(summarise(records, REFERENCE))
    if folds > 1:
        result["folds"] = compare_folds(
            records, {ensemble_name(v, folds): v for v in variants}, folds)
    write_files(result, json_path, markdown_path, format_markdown)
    return result


def _train_models(variants: Sequence[str], folds: int, device: str, iterations: int) -> dict:
    """{model name: (folder, folds to predict with)}: the reference on fold 'all', each nnsam2
    variant on fold 'all' (``folds`` 1) or on folds 0..N-1, predicted with fold 0 and with all."""
    reference = models.train(DATASET_ID, models.NNUNET_TRAINER, models.NNUNET_PLANS, device,
                             iterations)
    specs = {REFERENCE: (reference, ("all",))}
    trained = ("all",) if folds == 1 else tuple(range(folds))
    for variant in variants:
        logger.info("training %s for %d iteration(s), fold(s) %s", variant, iterations, trained)
        folder = models.train(DATASET_ID, models.SAM2_TRAINERS[variant], "nnSAM2Plans", device,
                              iterations, trained)
        specs[variant] = (folder, trained[:1])
        if folds > 1:
            specs[ensemble_name(variant, folds)] = (folder, trained)
    return specs


def _describe(name: str, predictor, specs: dict) -> dict:
    folder, folds = specs[name.removesuffix("_patchwise")]
    return dict(predictor=type(predictor).__name__, trainer=predictor.trainer_name,
                patch=list(predictor.configuration_manager.patch_size),
                mirroring_axes=list(predictor.allowed_mirroring_axes or ()),
                step_size=predictor.tile_step_size, folder=str(folder.name), folds=list(folds))
