"""Shared machinery of the dataset converters.

Every converter builds its dataset in a hidden temporary folder inside ``nnUNet_raw``, runs nnU-Net's
integrity check on it and only then renames it into place, so a failed conversion never leaves a
half-written ``DatasetXXX_Name`` behind and an existing dataset is only replaced with ``overwrite=True``.
"""
import argparse
import contextlib
import io
import json
import logging
import os
import shutil
import sys
import uuid
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence

logger = logging.getLogger(__name__)


class ConversionError(RuntimeError):
    """Bad input or output location; the message names the offending file or folder."""


def get_raw_root(raw_root: Optional[os.PathLike] = None) -> Path:
    """Return the nnUNet_raw folder: ``raw_root`` if given, else the ``nnUNet_raw`` environment variable.

    Args:
        raw_root: explicit output root (the CLIs' ``-o``); overrides the environment variable.
    """
    value = raw_root if raw_root is not None else os.environ.get("nnUNet_raw")
    if not value:
        raise ConversionError("nnUNet_raw is not set: export nnUNet_raw=/path/to/nnUNet_raw "
                              "or pass an output folder (-o)")
    root = Path(value).expanduser()
    if root.exists() and not root.is_dir():
        raise ConversionError(f"nnUNet_raw {root} exists but is not a folder")
    return root


def dataset_folder_name(dataset_id: int, name: str) -> str:
    """``DatasetXXX_Name`` as nnU-Net expects it (id 1..999, zero-padded to three digits)."""
    if not 0 < int(dataset_id) < 1000:
        raise ConversionError(f"dataset id must be between 1 and 999, got {dataset_id}")
    return f"Dataset{int(dataset_id):03d}_{name}"


def _check_target(raw_root: Path, target: Path, overwrite: bool) -> None:
    """Refuse to clobber an existing dataset, and refuse a second dataset with the same id."""
    prefix = target.name.split("_")[0] + "_"
    for other in sorted(raw_root.glob(prefix + "*")) if raw_root.is_dir() else []:
        if other.name != target.name:
            raise ConversionError(f"dataset id {prefix[7:-1]} is already used by {other}; "
                                  f"choose another id (-d) or remove that folder")
    if target.exists() and not overwrite:
        raise ConversionError(f"{target} already exists; pass --overwrite (overwrite=True) to replace it")


@contextlib.contextmanager
def atomic_dataset(raw_root: Path, folder_name: str, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder; on success run nnU-Net's integrity check on it and move it to
    ``raw_root/folder_name``. On any error the temporary folder is removed and nothing else is touched.

    Args:
        raw_root: the nnUNet_raw folder (created if missing).
        folder_name: ``DatasetXXX_Name``.
        overwrite: replace an existing dataset of the same name.
    """
    target = raw_root / folder_name
    _check_target(raw_root, target, overwrite)
    raw_root.mkdir(parents=True, exist_ok=True)
    tmp = raw_root / f".tmp_{folder_name}_{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        _remove_empty_dirs(tmp)
        verify_integrity(tmp)
        _move_into_place(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("wrote %s", target)


def _remove_empty_dirs(folder: Path) -> None:
    """Drop empty optional folders (imagesTs without test data, ...); nnU-Net needs imagesTr and labelsTr."""
    for sub in folder.iterdir():
        if sub.is_dir() and sub.name not in ("imagesTr", "labelsTr") and not any(sub.iterdir()):
            sub.rmdir()


def _move_into_place(tmp: Path, target: Path) -> None:
    old = None
    if target.exists():
        old = target.with_name(f".old_{target.name}_{uuid.uuid4().hex[:8]}")
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def verify_integrity(folder: Path, num_processes: Optional[int] = None) -> None:
    """Run nnU-Net's ``verify_dataset_integrity`` and turn its failures into a ``ConversionError``."""
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    if num_processes is None:  # a spawned worker costs seconds (it imports torch): few for small datasets
        num_cases = len(list((folder / "labelsTr").iterdir())) if (folder / "labelsTr").is_dir() else 0
        num_processes = max(1, min(8, os.cpu_count() or 1, num_cases // 100))
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            verify_dataset_integrity(str(folder), num_processes)
    except (AssertionError, RuntimeError, OSError) as e:
        raise ConversionError(f"nnU-Net integrity check failed for {folder}: {e}\n{out.getvalue()}") from e
    logger.debug(out.getvalue())


def make_dirs(folder: Path, names: Sequence[str]) -> Dict[str, Path]:
    """Create ``folder/name`` for each name; return {name: path}."""
    paths = {n: folder / n for n in names}
    for p in paths.values():
        p.mkdir(parents=True, exist_ok=True)
    return paths


def write_dataset_json(folder: Path, channel_names: Dict[str, str], labels: Dict[str, int],
                       num_training: int, file_ending: str, **kwargs) -> None:
    """Write dataset.json with nnU-Net's own ``generate_dataset_json``.

    Args:
        kwargs: passed on (dataset_name, reference, license, description, extra keys, ...).
    """
    from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

    generate_dataset_json(str(folder), dict(channel_names), dict(labels), num_training, file_ending,
                          converted_by="nnsam2 dataset_conversion", **kwargs)


def write_splits(folder: Path, splits: List[Dict[str, List[str]]]) -> None:
    """Write nnU-Net's ``splits_final.json`` (a list of {"train": [...], "val": [...]}) into ``folder``.

    nnU-Net trains from ``nnUNet_preprocessed/DatasetXXX_Name/splits_final.json``; nnunetv2 2.8.1's experiment
    planner (and so ``nnsam2_plan_and_preprocess``) copies the raw-folder file there.
    """
    for i, s in enumerate(splits):
        overlap = set(s["train"]) & set(s["val"])
        if overlap:
            raise ConversionError(f"split {i} has cases in both train and val: {sorted(overlap)[:5]}")
    with open(folder / "splits_final.json", "w") as f:
        json.dump(splits, f, indent=2)


def block_splits(case_ids: Sequence[str], num_folds: int = 5) -> List[Dict[str, List[str]]]:
    """Split ordered case ids into ``num_folds`` contiguous blocks; fold k validates on block k."""
    if len(case_ids) < num_folds:
        raise ConversionError(f"need at least {num_folds} cases for {num_folds} folds, got {len(case_ids)}")
    bounds = [round(k * len(case_ids) / num_folds) for k in range(num_folds + 1)]
    splits = []
    for k in range(num_folds):
        val = list(case_ids[bounds[k]:bounds[k + 1]])
        splits.append({"train": [c for c in case_ids if c not in val], "val": val})
    return splits


def require_dir(path: Path, what: str) -> Path:
    """Raise a ConversionError naming ``path`` unless it is a folder."""
    if not path.is_dir():
        raise ConversionError(f"{what} not found: {path} is not a folder (wrong -i folder?)")
    return path


def base_parser(description: str, default_id: int) -> argparse.ArgumentParser:
    """argparse parser with the options every converter shares: -i, -o, -d, --overwrite, -v."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("-i", "--input", required=True, type=Path,
                   help="the dataset as downloaded and unzipped")
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="nnUNet_raw folder to write into (default: $nnUNet_raw)")
    p.add_argument("-d", "--dataset-id", type=int, default=default_id,
                   help=f"nnU-Net dataset id (default: {default_id})")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset of the same name")
    p.add_argument("-v", "--verbose", action="store_true", help="log every case")
    return p


def run_cli(func: Callable[..., Path], args: argparse.Namespace, **kwargs) -> int:
    """Call a converter with the shared options; print the result or ``error: ...``; return the exit code."""
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    try:
        out = func(args.input, raw_root=args.output, dataset_id=args.dataset_id,
                   overwrite=args.overwrite, **kwargs)
    except (ConversionError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(out)
    return 0
