"""The file layout of an nnU-Net raw dataset: dataset.json and the case files it implies.

Every function returns the problems it found, one line each naming the file and what to do, so
that the caller can report all of them together (nnU-Net's own check stops at the first).
"""
import copy
import json
import os
import re
from collections import defaultdict
from typing import Dict, List, Tuple

REQUIRED_KEYS = ("channel_names", "labels", "numTraining", "file_ending")
Cases = Dict[str, Dict]  # case id -> {"images": [paths], "label": path}


def channel_pattern(file_ending: str) -> "re.Pattern":
    """``CASE_XXXX<file_ending>``: group 1 is the case id, group 2 the channel index."""
    return re.compile(r"^(.+)_(\d{4})" + re.escape(file_ending) + "$")


def load_dataset_json(folder: str) -> Tuple[dict, List[str]]:
    """dataset.json of ``folder`` and its problems; an empty dict when it cannot be used at all."""
    path = os.path.join(folder, "dataset.json")
    if not os.path.isfile(path):
        return {}, [f"{path}: missing; write it with nnU-Net's generate_dataset_json"]
    try:
        with open(path) as f:
            ds = json.load(f)
    except (OSError, ValueError) as e:
        return {}, [f"{path}: not valid JSON ({e}); fix or regenerate it"]
    missing = [k for k in REQUIRED_KEYS if k not in ds]
    if missing:
        return {}, [f"{path}: lacks the required key(s) {missing}; add them (see nnU-Net's "
                    f"dataset_format.md)"]
    problems = _json_value_problems(path, ds)
    return ({} if problems else ds), problems


def _json_value_problems(path: str, ds: dict) -> List[str]:
    problems = []
    if not isinstance(ds["channel_names"], dict) or not ds["channel_names"]:
        problems.append(f"{path}: channel_names must map '0', '1', ... to channel names")
    elif sorted(ds["channel_names"], key=str) != [str(i) for i in range(len(ds["channel_names"]))]:
        problems.append(f"{path}: channel_names keys {list(ds['channel_names'])} must be '0', "
                        f"'1', ... in order")
    ending = ds["file_ending"]
    if not isinstance(ending, str) or not ending.startswith("."):
        problems.append(f"{path}: file_ending {ending!r} must be a suffix such as '.nii.gz'")
    if not isinstance(ds["numTraining"], int) or isinstance(ds["numTraining"], bool):
        problems.append(f"{path}: numTraining {ds['numTraining']!r} must be an integer")
    return problems + _label_problems(path, ds)


def _label_problems(path: str, ds: dict) -> List[str]:
    """nnU-Net's LabelManager rules: background 0, consecutive values, ignore label last."""
    import numpy as np
    from nnunetv2.utilities.label_handling.label_handling import LabelManager
    if not isinstance(ds["labels"], dict):
        return [f"{path}: labels must map names to values, e.g. {{'background': 0, 'organ': 1}}"]
    try:
        manager = LabelManager(ds["labels"], regions_class_order=ds.get("regions_class_order"))
    except (AssertionError, RuntimeError, TypeError, ValueError) as e:
        return [f"{path}: labels {ds['labels']} are not valid for nnU-Net ({e})"]
    values = manager.all_labels + ([manager.ignore_label] if manager.has_ignore_label else [])
    if not np.all(np.diff(values) == 1):
        return [f"{path}: label values {values} must be consecutive (0, 1, 2, ...); renumber them"]
    return []


def expected_labels(ds: dict) -> List[int]:
    """Every value a label file may hold (the ignore label included)."""
    from nnunetv2.utilities.label_handling.label_handling import LabelManager
    manager = LabelManager(ds["labels"], regions_class_order=ds.get("regions_class_order"))
    values = manager.all_labels + ([manager.ignore_label] if manager.has_ignore_label else [])
    return [int(v) for v in values]


def find_training_cases(folder: str, ds: dict) -> Tuple[Cases, List[str]]:
    """Training cases and the layout problems: stray or missing files, wrong numTraining."""
    if "dataset" in ds:  # explicit file lists in dataset.json
        cases, problems = _listed_cases(folder, ds)
    else:
        cases, problems = _scanned_cases(folder, ds)
    if not problems and len(cases) != ds["numTraining"]:
        problems.append(f"{os.path.join(folder, 'dataset.json')}: numTraining is "
                        f"{ds['numTraining']} but {len(cases)} training case(s) were found; set "
                        f"numTraining to {len(cases)} or add the missing cases")
    return cases, problems


def _listed_cases(folder: str, ds: dict) -> Tuple[Cases, List[str]]:
    from nnunetv2.utilities.utils import get_filenames_of_train_images_and_targets
    cases = get_filenames_of_train_images_and_targets(folder, copy.deepcopy(ds))  # edits in place
    files = [p for c in cases.values() for p in [*c["images"], c["label"]]]
    missing = [p for p in files if not os.path.isfile(p)]
    return cases, [f"{p}: listed in dataset.json but missing; add the file or fix the entry"
                   for p in missing]


def _scanned_cases(folder: str, ds: dict) -> Tuple[Cases, List[str]]:
    images_dir, labels_dir = os.path.join(folder, "imagesTr"), os.path.join(folder, "labelsTr")
    problems = [f"{d}: missing folder; nnU-Net needs imagesTr and labelsTr"
                for d in (images_dir, labels_dir) if not os.path.isdir(d)]
    if problems:
        return {}, problems
    ending = ds["file_ending"]
    channels, problems = group_channel_files(images_dir, ending)
    bad_layout = set()
    for case, files in channels.items():
        case_problems = channel_problems(images_dir, case, files, len(ds["channel_names"]), ending)
        problems += case_problems
        bad_layout |= {case} if case_problems else set()
    labels = {f[:-len(ending)] for f in os.listdir(labels_dir) if f.endswith(ending)}
    stray_ids = {f[:-len(ending)] for f in os.listdir(images_dir)
                 if f.endswith(ending) and not channel_pattern(ending).match(f)}
    problems += [f"{os.path.join(labels_dir, c + ending)}: missing label of case {c}; add it or "
                 f"remove the case's images" for c in sorted(set(channels) - labels)]
    orphans = sorted(labels - set(channels) - stray_ids)  # a stray image is reported already
    problems += [f"{os.path.join(labels_dir, c + ending)}: label without images in {images_dir}; "
                 f"add {c}_0000{ending} or remove the label" for c in orphans]
    cases = {c: {"images": [os.path.join(images_dir, f) for f in files],
                 "label": os.path.join(labels_dir, c + ending)}
             for c, files in channels.items() if c in labels and c not in bad_layout}
    return cases, problems


def group_channel_files(folder: str, ending: str) -> Tuple[Dict[str, List[str]], List[str]]:
    """{case id: sorted channel file names}, and a problem per ``ending`` file without ``_XXXX``."""
    pattern, cases, problems = channel_pattern(ending), defaultdict(list), []
    for name in sorted(os.listdir(folder)):
        match = pattern.match(name)
        if match:
            cases[match.group(1)].append(name)
        elif name.endswith(ending):
            problems.append(f"{os.path.join(folder, name)}: file name lacks the 4-digit channel "
                            f"suffix; rename it {name[:-len(ending)]}_0000{ending} (one file per "
                            f"channel: CASE_XXXX{ending})")
    return dict(cases), problems


def channel_problems(folder: str, case: str, files: List[str], num_channels: int,
                     ending: str) -> List[str]:
    """Channel files must be ``_0000``, ``_0001``, ... with no gap and no more than the channels."""
    expected = [f"{case}_{i:04d}{ending}" for i in range(num_channels)]
    problems = [f"{os.path.join(folder, f)}: channel {f[len(case) + 1:len(case) + 5]} of case "
                f"{case} is not one of the {num_channels} channel(s) in dataset.json "
                f"channel_names; remove the file or add the channel"
                for f in files if f not in expected]
    present = [f for f in expected if f in files]
    if present != expected[:len(present)] or not present:
        problems.append(f"{os.path.join(folder, expected[0])}: case {case} lacks channel file(s) "
                        f"{sorted(set(expected[:max(1, len(present))]) - set(files))}; every case "
                        f"needs {expected[0]} onwards")
    return problems
