"""The prompt-free, adapter-tuned SAM2 segmentation network (knows nothing of nnU-Net)."""
import hashlib
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from sam2.modeling.backbones.image_encoder import ImageEncoder
from sam2.modeling.sam.mask_decoder import MaskDecoder
from sam2.modeling.sam.prompt_encoder import PromptEncoder

from nnsam2.network import frozen_store
from nnsam2.network.click_prompts import ClickPrompts, clicks_from_map, groups_by_count
from nnsam2.network.decoder import prompt_free_masks
from nnsam2.network.lora import merge_lora
from nnsam2.network.peg import SAM2DensePE
from nnsam2.network.precision import autocast_switch
from nnsam2.network.summary import parameter_report


SIZE_MULTIPLE = 32  # patch embed stride 4 x three 2x poolings in Hiera; also the FPN merges


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

    Attributes:
        autocast_dtype: the dtype the network runs in under any autocast, whoever opened it
            (nnU-Net's validation and predictor open fp16 on CUDA); set by the trainer and the
            predictor from the run's policy. None: the policy of the input's device, bf16 where
            the GPU has it natively, else fp16 (:mod:`nnsam2.network.precision`). Without
            autocast the network runs in the caller's precision.
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
        self.num_input_channels = stem.in_channels
        self.click_prompts: Optional[ClickPrompts] = None  # set by enable_clicks()
        # image features of click passes, kept by an interactive session (None: not kept)
        self.feature_cache: Optional[dict] = None
        self.feature_cache_key = None  # e.g. the fold whose weights are loaded
        # training with clicks: a batch with click maps returns the prompt-free logits of every
        # sample followed by the clicked logits of the samples with clicks (trainers/interactive)
        self.train_both_modes = False
        self.autocast_dtype: Optional[torch.dtype] = None
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

    def enable_clicks(self) -> None:
        """Accept clicks (:mod:`nnsam2.network.click_prompts`): an input with one channel more
        than the image's carries a click map in its last channel."""
        self.click_prompts = ClickPrompts(self.sam_prompt_encoder, self.num_classes)

    def has_click_map(self, x: torch.Tensor) -> bool:
        return self.click_prompts is not None and x.shape[1] == self.num_input_channels + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input_size(*x.shape[-2:])
        with self.autocast_context(x.device):
            if self.has_click_map(x):
                return self._forward_with_clicks(x[:, :-1], clicks_from_map(x[:, -1]))
            return self._forward(x)

    def autocast_context(self, device: torch.device):
        """Any open autocast switched to :attr:`autocast_dtype` (see the class docstring)."""
        return autocast_switch(device, self.autocast_dtype)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """The computation alone, without the size check and the autocast switch: ONNX export
        traces this (a raise and an autocast query would be baked into the graph)."""
        embed, high_res = self.encode_image(x)
        logits = prompt_free_masks(self.sam_mask_decoder,
                                   self.sam_prompt_encoder.no_mask_embed.weight,
                                   embed, self.image_pe(embed), high_res)
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)

    def encode_image(self, x: torch.Tensor) -> tuple:
        """(B, C_in, H, W) -> (embedding at stride 16 with no_mem_embed, (stride-4, stride-8)
        features projected for the decoder): everything that does not depend on prompts."""
        features = self.image_encoder(self.stem(x))["backbone_fpn"]  # strides 4, 8, 16
        decoder = self.sam_mask_decoder
        high_res = (decoder.conv_s0(features[0]), decoder.conv_s1(features[1]))
        return features[2] + self.no_mem_embed.reshape(1, -1, 1, 1), high_res

    def _forward_with_clicks(self, x: torch.Tensor, clicks) -> torch.Tensor:
        """The image encoder once for the batch (its features kept when a session asks), then
        :meth:`decode_with_clicks`."""
        embed, high_res = self._cached_encode(x)
        clicked = [i for i, c in enumerate(clicks) if len(c)]
        if self.training and self.train_both_modes and clicked:  # prompt-free for all, then
            # the clicked samples alone with their clicks
            free = self.decode_with_clicks(embed, high_res, [c[:0] for c in clicks],
                                           *x.shape[-2:])
            with_clicks = self.decode_with_clicks(
                embed[clicked], tuple(t[clicked] for t in high_res),
                [clicks[i] for i in clicked], *x.shape[-2:])
            logits = torch.cat([free, with_clicks])
        else:
            logits = self.decode_with_clicks(embed, high_res, clicks, *x.shape[-2:])
        logits = self.with_click_parameters(logits)
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)

    def with_click_parameters(self, logits: torch.Tensor) -> torch.Tensor:
        """In training, ``logits`` + 0 x the click parameters: a batch without clicks still
        gives them a (zero) gradient, as DDP wants of every trainable parameter in every step.
        The values do not change."""
        if not self.training:
            return logits
        zero = sum(p.sum() for p in self.click_prompts.parameters() if p.requires_grad) * 0
        return logits + zero.to(logits.dtype)

    def decode_with_clicks(self, embed: torch.Tensor, high_res: tuple, clicks,
                           height: int, width: int) -> torch.Tensor:
        """Logits at 1/4 resolution: samples grouped by their number of clicks, one decoder pass
        per group; a sample without clicks is decoded prompt-free. ``clicks``: per sample an
        (n, 3) tensor of (class, y, x) in pixels of the height x width input."""
        groups = groups_by_count(clicks)
        logits = None
        for count, index in groups:
            whole = len(groups) == 1
            pick = (lambda t: t) if whole else (lambda t: t[index])
            part_embed = pick(embed)
            image_pe = self.image_pe(part_embed)
            tokens = None
            part_high_res = tuple(pick(t) for t in high_res)  # strides 4, 8
            if count:
                stacked = torch.stack([clicks[i] for i in index])
                tokens = self.click_prompts.tokens(stacked, height, width)
                image_pe = image_pe + self._click_dense_pe(part_embed)
                part_embed, s1, s0 = (f + self.click_prompts.dense(
                    stacked, height, width, level, f.shape[-2:]).to(f.dtype) for level, f in
                    enumerate((part_embed, part_high_res[1], part_high_res[0])))
                part_high_res = (s0, s1)
            part = prompt_free_masks(self.sam_mask_decoder,
                                     self.sam_prompt_encoder.no_mask_embed.weight, part_embed,
                                     image_pe, part_high_res, tokens)
            if whole:
                return part
            if logits is None:
                logits = part.new_empty((len(embed), *part.shape[1:]))
            logits[index] = part
        return logits

    def _cached_encode(self, x: torch.Tensor) -> tuple:
        """:meth:`encode_image`, from :attr:`feature_cache` when the same images were encoded
        with the same weights before: a new click re-runs the decoder only."""
        if self.feature_cache is None:
            return self.encode_image(x)
        key = (self.feature_cache_key, tuple(x.shape), str(x.dtype),
               hashlib.blake2b(x.detach().cpu().numpy().tobytes(), digest_size=16).hexdigest())
        if key not in self.feature_cache:
            self.feature_cache[key] = self.encode_image(x)
        return self.feature_cache[key]

    def _click_dense_pe(self, embed: torch.Tensor) -> torch.Tensor:
        """SAM2's dense position encoding, added to the image's for the decoder passes that
        carry clicks when the network's own (a PEG) knows no absolute position: the click
        tokens' location encoding needs keys encoded the same way. Zero when the image's position
        encoding is SAM2's already."""
        if isinstance(self.image_pe, SAM2DensePE):
            return torch.zeros((), dtype=embed.dtype, device=embed.device)
        h, w = embed.shape[-2:]
        return self.sam_prompt_encoder.pe_layer((h, w)).unsqueeze(0).to(embed.dtype)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Also takes the lean state dicts of nnsam2 checkpoints (frozen SAM2 weights stored once
        per model folder) and the per-fold deltas of an ensemble (see
        :mod:`nnsam2.network.frozen_store`)."""
        if isinstance(state_dict, frozen_store.FoldDelta):  # the rest is loaded already
            unknown = set(state_dict) - set(self.state_dict())
            if unknown:
                raise KeyError(f"fold weights for another network: {sorted(unknown)[:3]}")
            return super().load_state_dict(state_dict, strict=False, assign=assign)
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
