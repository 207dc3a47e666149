"""The models being compared, each built from scratch (random init: only costs are measured).

SAM2 variants (per size and patch): ``none`` (frozen SAM2 + trainable decoder), ``none_peg``
(the same with PEGs), ``hp`` / ``lw`` / ``lora`` (training forms), ``lw_reparam`` /
``lora_merged`` (inference-only forms) and ``mem`` (the ``2d_mem`` network on stacks of
:data:`MEM_SLICES` slices, reported per slice). References: ``nnunet_unet`` (nnU-Net's default
2D U-Net) and ``sam_vit_b`` (segment-anything ViT-B at 1024x1024, fully trainable).
"""
import importlib.util
from dataclasses import dataclass
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn

from nnsam2.network import AdapterCfg, build_memory_network, build_network

SAM2_VARIANTS = ("none", "hp", "lw", "lw_reparam", "lora", "lora_merged")
OPTIONAL_SAM2_VARIANTS = ("none_peg", "mem")
REFERENCE_VARIANTS = ("nnunet_unet", "sam_vit_b")
ALL_VARIANTS = SAM2_VARIANTS + OPTIONAL_SAM2_VARIANTS + REFERENCE_VARIANTS
# The training-time form each inference-only form comes from.
TRAINING_FORM = {"lw_reparam": "lw", "lora_merged": "lora"}
SAM_VIT_B_PATCH = (1024, 1024)
MEM_SLICES = 8  # slices per (B, C, D, H, W) input of the memory variant


def sam_vit_b_available() -> bool:
    """Whether the ``segment-anything`` package (the original SAM) is importable."""
    return importlib.util.find_spec("segment_anything") is not None


@dataclass(frozen=True)
class Built:
    """A model ready to measure and what the benchmark needs to know about it."""

    model: nn.Module
    inference_only: bool
    note: str = ""


def build_sam2_variant(name: str, size: str, channels: int, classes: int) -> Built:
    """One of :data:`SAM2_VARIANTS` (or ``none_peg``, ``mem``)."""
    if name == "mem":
        net = build_memory_network(channels, classes, size=size, adapter=AdapterCfg("hp"))
        return Built(net, False, f"hp + SAM2 memory, {net.directions} directions; per slice of "
                                 f"{MEM_SLICES}-slice stacks")
    kind = TRAINING_FORM.get(name, name)
    adapter = AdapterCfg(kind="none", pos_embed="peg") if kind == "none_peg" else AdapterCfg(kind)
    net = build_network(channels, classes, size=size, adapter=adapter)
    if name == "lw_reparam":
        return Built(net.eval(), True, f"{net.reparameterize()} adapter convolutions fused")
    if name == "lora_merged":
        return Built(net.eval(), True, f"{net.merge_lora()} LoRA layers merged")
    pos = net.config["adapter"]["pos_embed"]
    return Built(net, False, f"pos-embed: {'PEG' if pos == 'peg' else 'SAM2 absolute'}")


class SAMViTBReference(nn.Module):
    """segment-anything ViT-B image encoder + prompt-free mask decoder: (B, 3, 1024, 1024) ->
    (B, 1, 1024, 1024) logits (B = 1: SAM's decoder pairs one prompt set with one image)."""

    def __init__(self, sam: nn.Module):
        super().__init__()
        self.image_encoder = sam.image_encoder
        self.prompt_encoder = sam.prompt_encoder
        self.mask_decoder = sam.mask_decoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        embedding = self.image_encoder(x)  # (B, 256, 64, 64)
        sparse, dense = self.prompt_encoder(points=None, boxes=None, masks=None)
        low_res, _ = self.mask_decoder(image_embeddings=embedding,
                                       image_pe=self.prompt_encoder.get_dense_pe(),
                                       sparse_prompt_embeddings=sparse,
                                       dense_prompt_embeddings=dense, multimask_output=False)
        return F.interpolate(low_res, size=x.shape[-2:], mode="bilinear", align_corners=False)


def build_sam_vit_b() -> Built:
    from segment_anything import sam_model_registry

    model = SAMViTBReference(sam_model_registry["vit_b"](checkpoint=None))
    model.prompt_encoder.requires_grad_(False)
    return Built(model, False, "segment-anything ViT-B, 1024x1024, batch 1, "
                               "encoder + decoder trainable")


def input_shape(name: str, channels: int, patch: Tuple[int, int]) -> Tuple[int, ...]:
    """(C, H, W) a variant runs at; (C, D, H, W) for the memory variant."""
    if name == "sam_vit_b":
        return (3, *SAM_VIT_B_PATCH)
    return (channels, MEM_SLICES, *patch) if name == "mem" else (channels, *patch)
