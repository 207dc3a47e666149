"""One fold of a trained model folder as the network that inference runs (LW fused, LoRA merged),
loaded the way ``nnsam2_predict`` loads it (safe checkpoint reading, frozen-weight store)."""
import os
from typing import List, Optional, Union

import torch

from nnsam2.network.memory_net import SAM2MemSegNet
from nnsam2.network.sam2_net import SAM2SegNet
from nnsam2.training.trainer_lookup import use_nnsam2_trainers
from nnsam2.utils.nnunet_env import UsageError

Fold = Union[int, str]


def trained_folds(folder: str, checkpoint_name: str) -> List[str]:
    """Fold names (``0``, ``all``, ...) whose folder holds ``checkpoint_name``."""
    return sorted(d[len("fold_"):] for d in os.listdir(folder) if d.startswith("fold_")
                  and os.path.isfile(os.path.join(folder, d, checkpoint_name)))


def resolve_fold(folder: str, fold: Optional[str], checkpoint_name: str) -> Fold:
    """The fold to export: the one asked for, or the only trained one."""
    for name in ("plans.json", "dataset.json"):
        if not os.path.isfile(os.path.join(folder, name)):
            raise UsageError(f"{folder} is not a trained model folder (no {name}); pass the "
                             f"TRAINER__PLANS__CONFIGURATION folder under nnUNet_results")
    trained = trained_folds(folder, checkpoint_name)
    if fold is None:
        if len(trained) != 1:
            raise UsageError(f"{folder} has {checkpoint_name} for fold(s) {trained or 'none'}: "
                             f"pass -f with one of them (one network per ONNX file)")
        fold = trained[0]
    if fold not in trained:
        raise UsageError(f"{folder}: no fold_{fold}/{checkpoint_name}; trained fold(s): "
                         f"{' '.join(trained) or 'none'}")
    return fold if fold == "all" else int(fold)


def load_inference_network(folder: str, fold: Fold, checkpoint_name: str):
    """(fused SAM2SegNet in eval mode on the CPU, the predictor that loaded it)."""
    from nnsam2.inference.predictor import SAM2Predictor
    use_nnsam2_trainers()
    predictor = SAM2Predictor(use_mirroring=False, perform_everything_on_device=False,
                              device=torch.device("cpu"), allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(folder, [fold], checkpoint_name)
    net = predictor.network
    if not isinstance(net, SAM2SegNet):
        raise UsageError(f"{folder} holds a {type(net).__name__}, not an nnsam2 network "
                         f"(trainer {predictor.trainer_name}); nnsam2_export exports nnsam2 models")
    if isinstance(net, SAM2MemSegNet):
        raise UsageError(f"{folder} is a 2d_mem model: its slice-by-slice memory loop is not "
                         f"exported to ONNX; export the dataset's 2d model instead")
    return net.eval(), predictor


def configuration_name(predictor) -> str:
    """The plans configuration the predictor was set up with (the manager does not keep its
    name; nnU-Net resolves inheritance, so compare the resolved dicts)."""
    plans = predictor.plans_manager
    loaded = predictor.configuration_manager.configuration
    names = [n for n in plans.available_configurations
             if plans.get_configuration(n).configuration == loaded]
    return names[0]
