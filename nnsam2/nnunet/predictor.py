"""nnU-Net's predictor, with LW adapters fused and LoRA merged before inference."""
import copy

import torch
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

from nnsam2.network.sam2_net import SAM2SegNet
from nnsam2.nnunet.trainers import unwrap


class SAM2Predictor(nnUNetPredictor):
    """Loads a trained nnsam2 model folder (no SAM2 checkpoint needed) and prepares every fold's
    weights for inference: Lightweight adapters re-parameterised, LoRA merged."""

    def initialize_from_trained_model_folder(self, model_training_output_dir, use_folds,
                                             checkpoint_name="checkpoint_final.pth"):
        super().initialize_from_trained_model_folder(model_training_output_dir, use_folds,
                                                     checkpoint_name)
        if self.device.type == "cuda":
            torch.set_autocast_dtype("cuda", torch.bfloat16)
        self.prepare_network_for_inference()

    def prepare_network_for_inference(self) -> None:
        training_net = unwrap(self.network)
        if not isinstance(training_net, SAM2SegNet):
            return
        prepared, counts = [], (0, 0)
        for params in self.list_of_parameters:
            net = copy.deepcopy(training_net)
            net.load_state_dict(params)
            counts = net.prepare_for_inference()
            prepared.append(net.state_dict())
        self.network, self.list_of_parameters = net, prepared
        fused, merged = counts
        if fused:
            print(f"nnsam2: re-parameterised {fused} Lightweight adapters for inference (branches "
                  f"fused into one 3x3 convolution, up-projection and residual add into one "
                  f"product; {len(prepared)} fold(s))")
        if merged:
            print(f"nnsam2: merged {merged} LoRA layers into their base weights for inference "
                  f"({len(prepared)} fold(s))")
