"""What to tell a user whose model folder does not exist: a command that can work.

nnsam2 plans only ``2d``, so suggesting ``nnsam2_train ... 3d_fullres`` sends a user to a dead
end: the suggestion is built from the configurations in the plans and the models already trained.
"""
import glob
import json
import os
from typing import List


def planned_configurations(dataset: str, plans: str) -> List[str]:
    """Configurations of ``plans`` for ``dataset`` (DatasetXXX_Name): from nnUNet_preprocessed,
    else from any trained model folder's plans.json; empty when neither exists."""
    candidates = [os.path.join(os.environ.get("nnUNet_preprocessed", ""), dataset, plans + ".json")]
    candidates += sorted(glob.glob(os.path.join(os.environ.get("nnUNet_results", ""), dataset,
                                                f"*__{plans}__*", "plans.json")))
    for path in candidates:
        if os.path.isfile(path):
            with open(path) as f:
                return sorted(json.load(f).get("configurations", {}))
    return []


def trained_models(dataset: str) -> List[str]:
    """Model folder names (TRAINER__PLANS__CONFIGURATION) under nnUNet_results/dataset."""
    folder = os.path.join(os.environ.get("nnUNet_results", ""), dataset)
    if not os.path.isdir(folder):
        return []
    return sorted(d for d in os.listdir(folder) if d.count("__") == 2)


def no_model_message(folder: str, dataset: str, dataset_arg: str, configuration: str,
                     trainer: str, plans: str) -> str:
    """One line: the missing model folder, and a train or predict command that can work."""
    planned = planned_configurations(dataset, plans)
    if configuration in planned:
        fix = (f"train it with nnsam2_train {dataset_arg} {configuration} FOLD -tr {trainer} "
               f"-p {plans}")
    elif planned:
        fix = (f"configuration {configuration!r} is not in the plans {plans} (planned: "
               f"{planned}); use -c {planned[0]}")
    else:
        fix = f"plan and train it first: nnsam2_plan_and_preprocess -d {dataset_arg}"
    models = trained_models(dataset)
    trained = f"; trained models of {dataset}: {models}" if models else ""
    return f"no trained model at {folder}: {fix}{trained}"
