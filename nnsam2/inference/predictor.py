"""nnU-Net's predictor, loading model folders safely, with LW adapters fused and LoRA merged and
several patches per forward pass (:mod:`nnsam2.inference.batched_prediction`)."""
import copy
import os

import torch

from nnunetv2.utilities.file_path_utilities import load_json
from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnsam2.network import frozen_store
from nnsam2.network.precision import policy_for
from nnsam2.network.sam2_net import SAM2SegNet
from nnsam2.training import checkpoint_files
from nnsam2.inference import atomic_outputs
from nnsam2.inference.batched_prediction import BatchedPredictor
from nnsam2.inference.click_prediction import with_click_maps
from nnsam2.training.trainer_lookup import use_nnsam2_trainers
from nnsam2.utils.nnunet_env import compile_requested
from nnsam2.utils.wrappers import unwrap


class SAM2Predictor(BatchedPredictor):
    """Loads a trained nnsam2 model folder (no SAM2 checkpoint needed) and prepares every fold's
    weights for inference: Lightweight adapters re-parameterised, LoRA merged. Predicts several
    patches per forward pass up to ``prediction_memory_gb`` (see :class:`BatchedPredictor`).
    nnsam2's trainers are found without ``nnUNet_extTrainer`` being set by the caller."""

    allow_pickle = None  # True: trusted legacy checkpoints unpickled in full; None: nnSAM2_allow_pickle
    clicks = None  # {case: [Click]} in raw voxels (nnsam2_predict --clicks); None: prompt-free

    def initialize_from_trained_model_folder(self, model_training_output_dir, use_folds,
                                             checkpoint_name="checkpoint_final.pth"):
        """nnU-Net's model-folder loading, but checkpoints are read without unpickling code
        (:mod:`nnsam2.utils.safe_torch_load`) and their frozen SAM2 weights come from the folder's store."""
        use_nnsam2_trainers()
        folder = model_training_output_dir
        if use_folds is None:
            use_folds = self.auto_detect_available_folds(folder, checkpoint_name)
        checkpoints = [checkpoint_files.read(os.path.join(folder, f"fold_{f}", checkpoint_name),
                                             allow_pickle=self.allow_pickle)[0]
                       for f in ([use_folds] if isinstance(use_folds, str) else use_folds)]
        first = checkpoints[0]
        plans_manager = PlansManager(load_json(os.path.join(folder, "plans.json")))
        dataset_json = load_json(os.path.join(folder, "dataset.json"))
        configuration_manager = plans_manager.get_configuration(first["init_args"]["configuration"])
        trainer_class = recursive_find_trainer_class_by_name(first["trainer_name"])
        network = trainer_class.build_network_architecture(
            plans_manager, configuration_manager,
            determine_num_input_channels(plans_manager, configuration_manager, dataset_json),
            plans_manager.get_label_manager(dataset_json).num_segmentation_heads,
            enable_deep_supervision=False)
        parameters = [c["network_weights"] for c in checkpoints]
        network.load_state_dict(parameters[0])
        self.manual_initialization(network, plans_manager, configuration_manager, parameters,
                                   dataset_json, first["trainer_name"],
                                   first.get("inference_allowed_mirroring_axes"))
        self.prepare_network_for_inference()
        self.use_device_precision()
        self.compile_if_asked()

    def compile_if_asked(self) -> None:
        """``nnUNet_compile=t`` compiles the prediction network, as nnU-Net's predictor does
        (nnU-Net's fold loop then loads the weights into the compiled module's original)."""
        wanted = compile_requested()
        if wanted and not isinstance(self.network, torch._dynamo.eval_frame.OptimizedModule):
            print("nnsam2: compiling the network (nnUNet_compile)")
            self.network = torch.compile(self.network)

    def use_device_precision(self) -> None:
        """The network runs in the precision policy of this predictor's device under nnU-Net's
        autocast (fp16 on CUDA): bf16 on GPUs with native bf16, fp16 on older ones."""
        net = unwrap(self.network)
        if isinstance(net, SAM2SegNet):
            net.autocast_dtype = policy_for(self.device).autocast_dtype

    def prepare_network_for_inference(self) -> None:
        training_net = unwrap(self.network)
        if not isinstance(training_net, SAM2SegNet):
            return
        prepared, counts = [], (0, 0)
        for params in self.list_of_parameters:
            net = copy.deepcopy(training_net)
            net.load_state_dict(params)
            counts = net.prepare_for_inference()
            # a copy: the last fold's network predicts, and loading another fold's weights into
            # it must not overwrite the last fold's (state_dict() shares the parameters' storage)
            prepared.append({k: v.clone() for k, v in net.state_dict().items()})
        # every fold's frozen SAM2 is the same: load it once, swap only what differs per case
        self.network, self.list_of_parameters = net, frozen_store.fold_deltas(prepared)
        fused, merged = counts
        if fused:
            print(f"nnsam2: re-parameterised {fused} Lightweight adapters for inference (branches "
                  f"fused into one 3x3 convolution, up-projection and residual add into one "
                  f"product; {len(prepared)} fold(s))")
        if merged:
            print(f"nnsam2: merged {merged} LoRA layers into their base weights for inference "
                  f"({len(prepared)} fold(s))")

    def predict_from_data_iterator(self, data_iterator, save_probabilities: bool = False,
                                   num_processes_segmentation_export: int = 3):
        """nnU-Net's loop; each clicked case's data carries its click map as one more channel."""
        if self.clicks:
            data_iterator = with_click_maps(data_iterator, self.clicks, self.plans_manager,
                                            self.configuration_manager)
        return super().predict_from_data_iterator(data_iterator, save_probabilities,
                                                  num_processes_segmentation_export)

    @property
    def plans_manager(self):
        return self._plans_manager

    @plans_manager.setter
    def plans_manager(self, plans_manager) -> None:
        # whoever sets it, the export workers get writers that never leave a truncated file
        self._plans_manager = atomic_outputs.with_atomic_export(plans_manager)

    def _manage_input_and_output_lists(self, list_of_lists_or_source_folder,
                                       output_folder_or_list_of_truncated_output_files,
                                       folder_with_segs_from_prev_stage=None, overwrite=True,
                                       part_id=0, num_parts=1, save_probabilities=False):
        """nnU-Net's cases to predict, with what killed writes left of them removed first."""
        lists = super()._manage_input_and_output_lists(
            list_of_lists_or_source_folder, output_folder_or_list_of_truncated_output_files,
            folder_with_segs_from_prev_stage, overwrite, part_id, num_parts, save_probabilities)
        atomic_outputs.prepare_outputs(lists[1], self.dataset_json["file_ending"], save_probabilities)
        return lists
