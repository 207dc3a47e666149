"""``nnsam2_predict --clicks``: clicks given in raw-image voxels, carried to the network's grid.

Each clicked case's preprocessed data gets one channel more, the click map (0, or ``class + 1``
at the voxel a click lands on after nnU-Net's transposition, cropping and resampling:
:mod:`nnsam2.interactive.click_coordinates`). nnU-Net's padding, sliding window and mirroring
then carry the clicks to each patch; the network reads the last channel as clicks
(:mod:`nnsam2.network.click_prompts`). Cases without clicks are predicted prompt-free.
"""
import os
from typing import Dict, Iterable, List, Sequence

import numpy as np
import torch

from nnsam2.interactive.click_coordinates import Click, check_clicks, click_map
from nnsam2.utils.nnunet_env import UsageError
from nnsam2.utils.wrappers import unwrap


def check_model_takes_clicks(network, model_folder: str, trainer_name: str) -> None:
    if getattr(unwrap(network), "click_prompts", None) is None:
        raise UsageError(f"{model_folder} was trained without clicks ({trainer_name}): clicks "
                         f"need a model trained by an _Interactive trainer, e.g. "
                         f"nnsam2_train DATASET 2d FOLD -tr SAM2DualAdapterTrainer_Interactive")


def check_clicks_for_cases(clicks: Dict[str, List[Click]], cases: Dict[str, Sequence[str]],
                           reader_class, labels: Sequence[int], source: str) -> None:
    """Every clicked case exists in the input and each click lies in its image with a known
    class; read before anything is predicted."""
    unknown = sorted(set(clicks) - set(cases))
    if unknown:
        raise UsageError(f"{source}: case(s) {', '.join(unknown)} are not in the input folder "
                         f"(it holds {', '.join(sorted(cases)[:5])}{' ...' if len(cases) > 5 else ''})")
    for case, case_clicks in clicks.items():
        if case_clicks:
            image, _ = reader_class().read_images(list(cases[case]))
            check_clicks(case, case_clicks, image.shape[1:], labels, source)


def case_files(folder: str, cases: Sequence[str], dataset_json: dict) -> Dict[str, List[str]]:
    """{case: its channel files} as nnU-Net lists them."""
    from nnunetv2.utilities.utils import create_lists_from_splitted_dataset_folder
    files = create_lists_from_splitted_dataset_folder(folder, dataset_json["file_ending"], cases)
    return dict(zip(cases, files))


def with_click_maps(items: Iterable[dict], clicks: Dict[str, List[Click]], plans_manager,
                    configuration_manager) -> Iterable[dict]:
    """nnU-Net's preprocessed items, each clicked case's data with its click map appended."""
    for item in items:
        case = os.path.basename(item["ofile"]) if item.get("ofile") else None
        if clicks.get(case):
            data = item["data"]
            if isinstance(data, str):  # older nnU-Net hands over a temporary .npy file
                path, data = data, torch.from_numpy(np.load(data))
                os.remove(path)
            positions = click_map(clicks[case], item["data_properties"], plans_manager,
                                  configuration_manager, data.shape)
            data = torch.cat([data, torch.from_numpy(positions)[None].to(data.dtype)])
            print(f"nnsam2: {case}: {len(clicks[case])} click(s)")
            item = dict(item, data=data)
        yield item
