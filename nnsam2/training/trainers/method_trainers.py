"""The method trainers: one class per adapter method of the papers, plus the baselines.

SAM2 stays frozen as the papers say; what trains is listed per trainer (documentation/methods.md
has the table for every size). Schedule variants of each are in :mod:`.variants.training_length`.
"""
from nnsam2.losses import CompositeLoss
from nnsam2.training.trainers.nnsam2_trainer import nnSAM2Trainer


class SAM2DualAdapterTrainer(nnSAM2Trainer):
    """PEG + High-Performance (deformable-conv) adapter: the default. SAM2 stays frozen; PEGs,
    adapters, input stem and the class tokens with their hypernetwork MLPs train."""
    adapter_kind = "hp"


class SAM2DualAdapterTrainer_LW(nnSAM2Trainer):
    """PEG + Lightweight (re-parameterisable) adapter; SAM2 frozen as for the default."""
    adapter_kind = "lw"


class SAM2DualAdapterTrainer_LWWide(SAM2DualAdapterTrainer_LW):
    """Lightweight adapter with the HP adapter's C/4 bottleneck: more capacity, but its fused form
    costs about 6% more compute than frozen SAM2 (the default LW's C/8 about 2%)."""
    sam2_bottleneck_ratio = 0.25


class SAM2VanillaTrainer(nnSAM2Trainer):
    """Frozen SAM2 with its own position encodings; only the decoder parts the adapter trainers
    train (class tokens, hypernetwork MLPs) and the stem train: the baseline."""
    adapter_kind = "none"


class SAM2LoRATrainer(nnSAM2Trainer):
    """SAM2LoRA (arXiv 2510.10288): LoRA (rank 8, alpha 16, dropout 0.1) on every Hiera block's
    attn.qkv and the decoder transformer's attention linears, SAM2's own position encodings (no
    PEG); class tokens and hypernetwork MLPs train; composite BCE + soft Dice + Focal Tversky loss
    (1:1:1, alpha 0.7, beta 0.3, gamma 0.75)."""
    adapter_kind = "lora"

    def _build_loss(self):
        if self.label_manager.has_regions:
            raise NotImplementedError("SAM2LoRATrainer's composite loss does not support "
                                      "region-based training")
        return CompositeLoss(ignore_label=self.label_manager.ignore_label,
                             batch_dice=self.configuration_manager.batch_dice, ddp=self.is_ddp)


class SAM2DualAdapterTrainer_FullDecoder(SAM2DualAdapterTrainer):
    """HP adapter with the whole mask decoder trainable (not the paper's setting: it trains
    SAM2's decoder transformer and upscaling too, about 4 M more parameters)."""
    sam2_train_decoder = "full"


class SAM2DualAdapterTrainer_LW_FullDecoder(SAM2DualAdapterTrainer_LW):
    """LW adapter with the whole mask decoder trainable (not the paper's setting)."""
    sam2_train_decoder = "full"


class SAM2VanillaTrainer_FullDecoder(SAM2VanillaTrainer):
    """Frozen SAM2 encoder with the whole mask decoder trainable (decoder fine-tuning baseline)."""
    sam2_train_decoder = "full"


BASE_TRAINERS = (SAM2DualAdapterTrainer, SAM2DualAdapterTrainer_LW, SAM2DualAdapterTrainer_LWWide,
                 SAM2VanillaTrainer, SAM2LoRATrainer, SAM2DualAdapterTrainer_FullDecoder,
                 SAM2DualAdapterTrainer_LW_FullDecoder, SAM2VanillaTrainer_FullDecoder)
