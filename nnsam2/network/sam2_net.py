"""The prompt-free, adapter-tuned SAM2 segmentation network (knows nothing of nnU-Net)."""
import contextlib

import torch
import torch.nn.functional as F
from torch import nn
from sam2.modeling.backbones.image_encoder import ImageEncoder
from sam2.modeling.sam.mask_decoder import MaskDecoder
from sam2.modeling.sam.prompt_encoder import PromptEncoder

from nnsam2.network import frozen_store
from nnsam2.network.decoder import prompt_free_masks
from nnsam2.network.lora import merge_lora
from nnsam2.network.summary import parameter_report


SIZE_MULTIPLE = 32  # patch embed stride 4 x three 2x poolings in Hiera; also the FPN merges


def bf16_autocast(device_type: str):
    """bf16 wherever autocast is on, whoever turned it on.

    SAM2 is trained in bf16; fp16 (nnU-Net's autocast default, used by its validation and by
    ``nnUNetv2_predict``) risks overflow in its attention. The choice is made here, per forward
    call, because ``torch.set_autocast_dtype`` is thread-local and every entry point would have to
    remember it. Without autocast the network runs in the caller's precision.
    """
    if torch.is_autocast_enabled(device_type) and \
            torch.get_autocast_dtype(device_type) != torch.bfloat16:
        return torch.autocast(device_type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


class SAM2SegNet(nn.Module):
    """(B, C_in, H, W) -> (B, num_classes, H, W) logits.

    Top-level module names follow the official SAM2 checkpoint (``image_encoder``,
    ``sam_prompt_encoder``, ``sam_mask_decoder``, ``no_mem_embed``) so that weight loading is a
    rename-free match; wrappers add ``inner`` segments only.

    Args:
        stem: C_in -> 3 channel mapping.
        image_encoder: sam2 ImageEncoder (trunk possibly wrapped by PEGTrunk), scalp=1.
        sam_prompt_encoder: frozen prompt encoder; supplies the "no mask" dense embedding.
        sam_mask_decoder: multi-class mask decoder from ``build_mask_decoder``.
        image_pe: module producing the decoder's position encoding from the image embedding.
        num_classes: output channels.
    """

    def __init__(self, *, stem: nn.Module, image_encoder: ImageEncoder,
                 sam_prompt_encoder: PromptEncoder, sam_mask_decoder: MaskDecoder,
                 image_pe: nn.Module, num_classes: int):
        super().__init__()
        d_model = sam_mask_decoder.transformer_dim
        assert image_encoder.neck.d_model == d_model, (
            f"neck width {image_encoder.neck.d_model} != decoder width {d_model}")
        assert sam_mask_decoder.num_mask_tokens == num_classes, (
            f"decoder has {sam_mask_decoder.num_mask_tokens} mask tokens for {num_classes} classes")
        self.num_classes = num_classes
        self.stem = stem
        self.image_encoder = image_encoder
        self.sam_prompt_encoder = sam_prompt_encoder
        self.sam_mask_decoder = sam_mask_decoder
        self.image_pe = image_pe
        # Added to the lowest-resolution features in SAM2's image mode.
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, d_model))
        nn.init.trunc_normal_(self.no_mem_embed, std=0.02)

    @staticmethod
    def check_input_size(height: int, width: int) -> None:
        if height % SIZE_MULTIPLE or width % SIZE_MULTIPLE or height <= 0 or width <= 0:
            raise ValueError(
                f"input height and width must be positive multiples of {SIZE_MULTIPLE}, got "
                f"{height}x{width} (e.g. use {SIZE_MULTIPLE * max(1, round(height / SIZE_MULTIPLE))}"
                f"x{SIZE_MULTIPLE * max(1, round(width / SIZE_MULTIPLE))})")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input_size(*x.shape[-2:])
        with bf16_autocast(x.device.type):
            return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """The computation alone, without the size check and the autocast switch: ONNX export
        traces this (a raise and an autocast query would be baked into the graph)."""
        height, width = x.shape[-2:]
        features = self.image_encoder(self.stem(x))["backbone_fpn"]  # strides 4, 8, 16
        decoder = self.sam_mask_decoder
        feat_s0 = decoder.conv_s0(features[0])
        feat_s1 = decoder.conv_s1(features[1])
        embed = features[2] + self.no_mem_embed.reshape(1, -1, 1, 1)  # (B, C, H/16, W/16)
        logits = prompt_free_masks(decoder, self.sam_prompt_encoder.no_mask_embed.weight,
                                   embed, self.image_pe(embed), (feat_s0, feat_s1))
        return F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Also takes the lean state dicts of nnsam2 checkpoints (frozen SAM2 weights stored once
        per model folder, see :mod:`nnsam2.network.frozen_store`)."""
        return super().load_state_dict(frozen_store.expand(state_dict), strict=strict,
                                       assign=assign)

    @torch.no_grad()
    def reparameterize(self) -> int:
        """Fuse every re-parameterisable module (LW adapters) in place; returns how many."""
        fused = 0
        for module in self.modules():
            if hasattr(module, "reparameterize") and module is not self and not getattr(
                    module, "is_fused", True):
                module.reparameterize()
                fused += 1
        return fused

    @torch.no_grad()
    def merge_lora(self) -> int:
        """Fold every LoRA update into its base weight; returns how many layers were merged."""
        return merge_lora(self)

    def prepare_for_inference(self) -> tuple:
        """Eval mode, LW adapters fused and LoRA merged; returns (fused, merged) counts."""
        self.eval()
        return self.reparameterize(), self.merge_lora()

    def trainable_parameter_report(self) -> dict:
        return parameter_report(self)
