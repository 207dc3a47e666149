"""``2d_mem``: SAM2's memory over the slices of a patch, prompt-free.

The slices of a (B, C, D, H, W) patch are a video. Every slice goes through the 2D network's image
encoder (once, batched over all B*D slices); then, slice after slice, the lowest-resolution
features are conditioned on the memories of up to ``num_maskmem - 1`` previous slices with sam2's
``MemoryAttention``, decoded by the prompt-free multi-class decoder, and turned into a memory by
sam2's ``MemoryEncoder``. Both directions (0..D-1 and D-1..0, each with its own memory bank) run
together as a batch of 2B; their logits are averaged.

Differences from SAM2's video predictor (sam2/modeling/sam2_base.py), all forced by the absence
of prompts:

* no conditioning frames: the first slice of a direction is decoded like SAM2's image mode
  (``features + no_mem_embed``), every later one attends to the previous slices' memories only
  (``maskmem_tpos_enc[t - 1]`` for slice distance t, as SAM2 does for non-conditioning frames);
* no object pointers: they come from SAM's per-object output token, and the prompt-free
  multi-class decoder has one token per class, not per object;
* one memory per slice from the union foreground mask (1 - background probability): SAM2's
  memory encoder was trained on single-object masks, so it stays usable; per-class memories
  would cost K - 1 times more memory attention;
* no ``no_obj_embed_spatial``: it needs SAM's object score head, which the decoder drops.

One addition, so that ``2d_mem`` can only add to ``2d``: the memory-conditioned features enter
as a **gated residual**, ``lerp(features + no_mem_embed, memory_attention(...), gate)`` with one
gate per channel, closed (0) at initialisation. A closed gate gives the 2D network's output on
every slice exactly (``torch.lerp`` returns its start at weight 0 and its end at weight 1, bit for
bit); :meth:`SAM2MemSegNet.open_gate` gives SAM2's memory path exactly.

Reference: Ravi et al., "SAM 2: Segment Anything in Images and Videos", arXiv 2408.00714.
"""
from functools import partial
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from sam2.modeling.memory_attention import MemoryAttention, MemoryAttentionLayer
from sam2.modeling.memory_encoder import CXBlock, Fuser, MaskDownSampler, MemoryEncoder
from sam2.modeling.position_encoding import PositionEmbeddingSine, compute_axial_cis
from sam2.modeling.sam.transformer import Attention, RoPEAttention

from nnsam2.network.click_prompts import clicks_from_map
from nnsam2.network.decoder import prompt_free_masks
from nnsam2.network.sam2_net import SAM2SegNet

DIRECTIONS = ("both", "forward")
NUM_MASKMEM = 7  # sam2.1 configs: the current slice + 6 memories
# The gate is GATE_SCALE x its parameter: Adam moves a parameter by about the learning rate per
# step whatever its gradient, so the adapters' 1e-4 would take thousands of steps to open it.
# A power of two keeps gate = 1 exact (open_gate).
GATE_SCALE = 64.0

Memory = Tuple[torch.Tensor, torch.Tensor]  # (features, spatial pos enc), each (N, mem_dim, h, w)


class HostRoPEAttention(RoPEAttention):
    """sam2's RoPEAttention, built without touching CUDA.

    sam2's constructor moves its rotary frequencies to ``"cuda"`` whenever a GPU exists, so
    building the network for ``-device cpu``, for the planner's memory estimate or on a worker
    opened a CUDA context. Here they stay where they are made; ``forward`` moves them to the
    input's device (sam2 does that itself), and :class:`SAM2MemSegNet` sets them per map size.
    """

    def __init__(self, *args, rope_theta: float = 10000.0, rope_k_repeat: bool = False,
                 feat_sizes=(64, 64), **kwargs):
        Attention.__init__(self, *args, **kwargs)
        self.compute_cis = partial(compute_axial_cis, dim=self.internal_dim // self.num_heads,
                                   theta=rope_theta)
        self.freqs_cis = self.compute_cis(end_x=feat_sizes[0], end_y=feat_sizes[1])
        self.rope_k_repeat = rope_k_repeat


def build_memory_attention(d_model: int, mem_dim: int, *, num_layers: int = 4,
                           ffn_dim: int = 2048) -> MemoryAttention:
    """sam2's MemoryAttention as in ``configs/sam2.1/sam2.1_hiera_*.yaml``."""
    def rope(**kwargs) -> RoPEAttention:
        return HostRoPEAttention(rope_theta=10000.0, feat_sizes=(64, 64), embedding_dim=d_model,
                                 num_heads=1, downsample_rate=1, dropout=0.1, **kwargs)

    layer = MemoryAttentionLayer(
        activation="relu", cross_attention=rope(rope_k_repeat=True, kv_in_dim=mem_dim),
        d_model=d_model, dim_feedforward=ffn_dim, dropout=0.1, pos_enc_at_attn=False,
        pos_enc_at_cross_attn_keys=True, pos_enc_at_cross_attn_queries=False,
        self_attention=rope())
    return MemoryAttention(d_model=d_model, pos_enc_at_input=True, layer=layer,
                           num_layers=num_layers)


def build_memory_encoder(d_model: int, mem_dim: int) -> MemoryEncoder:
    """sam2's MemoryEncoder as in ``configs/sam2.1/sam2.1_hiera_*.yaml``."""
    return MemoryEncoder(
        out_dim=mem_dim,
        mask_downsampler=MaskDownSampler(embed_dim=d_model, kernel_size=3, stride=2, padding=1),
        fuser=Fuser(CXBlock(dim=d_model, kernel_size=7, padding=3, layer_scale_init_value=1e-6,
                            use_dwconv=True), num_layers=2),
        position_encoding=PositionEmbeddingSine(num_pos_feats=mem_dim, normalize=True,
                                                temperature=10000, warmup_cache=False),
        in_dim=d_model)


def _tokens(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(2).permute(2, 0, 1)  # (N, C, h, w) -> (h*w, N, C), sam2's sequence-first


class SAM2MemSegNet(SAM2SegNet):
    """(B, C_in, D, H, W) -> (B, num_classes, D, H, W) logits; the slices are a video.

    The 2D network's modules and state-dict keys are kept as they are (a 2D model's weights
    load); the memory parts are named like the official checkpoint's keys.

    Args:
        memory_attention: sam2 MemoryAttention (RoPE self/cross attention), width ``d_model``.
        memory_encoder: sam2 MemoryEncoder, ``d_model`` in, ``mem_dim`` out.
        num_maskmem: SAM2's memory length: the slice itself + ``num_maskmem - 1`` memories.
        directions: ``both`` (forward and backward, logits averaged) or ``forward``.
        sigmoid_scale_for_mem_enc / sigmoid_bias_for_mem_enc: applied to the foreground
            probability before the memory encoder (SAM2.1: 20 and -10).
        **segnet: the :class:`SAM2SegNet` modules.
    """

    def __init__(self, *, memory_attention: MemoryAttention, memory_encoder: MemoryEncoder,
                 num_maskmem: int = NUM_MASKMEM, directions: str = "both",
                 sigmoid_scale_for_mem_enc: float = 20.0,
                 sigmoid_bias_for_mem_enc: float = -10.0, **segnet):
        super().__init__(**segnet)
        d_model = self.no_mem_embed.shape[-1]
        out_proj = memory_encoder.out_proj  # as sam2_base: Identity when out_dim == d_model
        mem_dim = out_proj.weight.shape[0] if hasattr(out_proj, "weight") else d_model
        assert memory_attention.d_model == d_model, (
            f"memory attention width {memory_attention.d_model} != decoder width {d_model}")
        if directions not in DIRECTIONS:
            raise ValueError(f"directions must be one of {DIRECTIONS}, got {directions!r}")
        if num_maskmem < 2:
            raise ValueError(f"num_maskmem must be at least 2 (one memory), got {num_maskmem}")
        self.memory_attention = memory_attention
        self.memory_encoder = memory_encoder
        self.num_maskmem = num_maskmem
        self.directions = directions
        self.sigmoid_scale_for_mem_enc = sigmoid_scale_for_mem_enc
        self.sigmoid_bias_for_mem_enc = sigmoid_bias_for_mem_enc
        self.maskmem_tpos_enc = nn.Parameter(torch.zeros(num_maskmem, 1, 1, mem_dim))
        # Unused (SAM2 adds no_mem_embed directly, as we do): a buffer, so that the checkpoint key
        # loads and no optimiser or DDP sees a parameter without gradient.
        self.register_buffer("no_mem_pos_enc", torch.zeros(1, 1, d_model))
        self.memory_gate = nn.Parameter(torch.zeros(d_model))  # closed: the 2D network
        self._rope_cache: Dict[tuple, torch.Tensor] = {}
        self.reset_memory_parameters()

    def reset_memory_parameters(self) -> None:
        nn.init.trunc_normal_(self.maskmem_tpos_enc, std=0.02)
        nn.init.trunc_normal_(self.no_mem_pos_enc, std=0.02)
        nn.init.zeros_(self.memory_gate)

    @torch.no_grad()
    def open_gate(self) -> None:
        """Memory-conditioned features only, as SAM2's video path (``--sam2-gate-open``)."""
        self.memory_gate.fill_(1.0 / GATE_SCALE)

    def gate(self) -> torch.Tensor:
        """The per-channel gate, 0 (2D network) to 1 (SAM2's memory path)."""
        return self.memory_gate * GATE_SCALE

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5:
            raise ValueError(f"expected a (B, C, D, H, W) patch, got shape {tuple(x.shape)}")
        self.check_input_size(*x.shape[-2:])
        with self.autocast_context(x.device):
            if self.has_click_map(x):  # a slice's clicks reach the others through its memory
                image, click_map = x[:, :-1], x[:, -1]
                if self.training and self.train_both_modes:  # see SAM2SegNet.train_both_modes
                    clicked = click_map.flatten(1).any(1)
                    return self.with_click_parameters(torch.cat([
                        self._forward(image), self._forward(image[clicked], click_map[clicked])]))
                return self.with_click_parameters(self._forward(image, click_map))
            return self._forward(x)

    def _forward(self, x: torch.Tensor, click_map: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``click_map``: (B, D, H, W), see :mod:`nnsam2.network.click_prompts`; None: none."""
        b, _, depth, height, width = x.shape
        slices = x.transpose(1, 2).flatten(0, 1)  # (B, C, D, H, W) -> (B*D, C, H, W)
        encoded = self.image_encoder(self.stem(slices))
        feats, decoder = encoded["backbone_fpn"], self.sam_mask_decoder  # strides 4, 8, 16
        per_slice = [t.unflatten(0, (b, depth)) for t in (  # each (B, D, ...)
            decoder.conv_s0(feats[0]), decoder.conv_s1(feats[1]), feats[2],
            encoded["vision_pos_enc"][-1])]
        orders = [range(depth)] + ([range(depth - 1, -1, -1)] if self.directions == "both"
                                   else [])
        bank: List[Memory] = []  # oldest first, at most num_maskmem - 1
        steps = []
        for step in range(depth):
            # slice `step` of the forward pass, slice D-1-step of the backward one: (nd*B, ...)
            s0, s1, pix, pos = (torch.cat([t[:, order[step]] for order in orders])
                                for t in per_slice)
            embed = self._condition(pix, pos, bank)
            clicks = None if click_map is None else clicks_from_map(
                torch.cat([click_map[:, order[step]] for order in orders]))
            if clicks is not None and any(len(c) for c in clicks):
                logits = self.decode_with_clicks(embed, (s0, s1), clicks, height, width)
            else:
                logits = prompt_free_masks(decoder, self.sam_prompt_encoder.no_mask_embed.weight,
                                           embed, self.image_pe(embed), (s0, s1))
            logits = F.interpolate(logits, size=(height, width), mode="bilinear",
                                   align_corners=False)
            steps.append(logits)
            if step < depth - 1:
                bank = (bank + [self._encode_memory(pix, logits)])[1 - self.num_maskmem:]
        per_dir = torch.stack(steps).unflatten(1, (len(orders), b))  # (D, nd, B, K, H, W)
        logits = per_dir[:, 0]
        if len(orders) == 2:  # backward step t is slice D-1-t
            logits = (logits + per_dir[:, 1].flip(0)) / 2
        return logits.permute(1, 2, 0, 3, 4)  # (D, B, K, H, W) -> (B, K, D, H, W)

    def _condition(self, pix: torch.Tensor, pos: torch.Tensor,
                   bank: List[Memory]) -> torch.Tensor:
        """(N, C, h, w) features conditioned on the memories through the gate; SAM2's image mode
        (the 2D network's features) without any."""
        image_mode = pix + self.no_mem_embed.reshape(1, -1, 1, 1)
        if not bank:
            return image_mode
        n, c, h, w = pix.shape
        self._set_rope_size(h, w, pix.device)
        memory = torch.cat([_tokens(feat) for feat, _ in bank])  # (M*h*w, N, mem_dim)
        # the memory `distance` slices back gets maskmem_tpos_enc[distance - 1]
        memory_pos = torch.cat([_tokens(mem_pos) + self.maskmem_tpos_enc[len(bank) - 1 - i]
                                for i, (_, mem_pos) in enumerate(bank)])
        out = self.memory_attention(curr=_tokens(pix), curr_pos=_tokens(pos), memory=memory,
                                    memory_pos=memory_pos)  # (h*w, N, C)
        conditioned = out.permute(1, 2, 0).reshape(n, c, h, w)  # (h*w, N, C) -> (N, C, h, w)
        dtype = image_mode.dtype
        return torch.lerp(image_mode, conditioned.to(dtype),
                          self.gate().to(dtype).reshape(1, -1, 1, 1))

    def _encode_memory(self, pix: torch.Tensor, logits: torch.Tensor) -> Memory:
        """Memory of one decoded slice from its raw features and its foreground probability,
        scaled and biased like SAM2.1 does with its sigmoid of the mask logits."""
        foreground = 1.0 - torch.softmax(logits.float(), dim=1)[:, :1]  # (N, 1, H, W)
        mask = foreground * self.sigmoid_scale_for_mem_enc + self.sigmoid_bias_for_mem_enc
        out = self.memory_encoder(pix, mask, skip_mask_sigmoid=True)
        return out["vision_features"], out["vision_pos_enc"][-1]

    def _set_rope_size(self, height: int, width: int, device: torch.device) -> None:
        """Give every RoPEAttention the rotary frequencies of an h x w map (row-major tokens).

        sam2 recomputes them with w = h = sqrt(tokens) whenever the token count changes, which
        fails on non-square maps; with frequencies of the right length it uses ours as they are.
        """
        for module in self.memory_attention.modules():
            if isinstance(module, RoPEAttention):
                key = (height, width, str(device),
                       tuple(sorted(module.compute_cis.keywords.items())))
                if key not in self._rope_cache:
                    self._rope_cache[key] = module.compute_cis(end_x=width,
                                                               end_y=height).to(device)
                module.freqs_cis = self._rope_cache[key]

    def memory_config(self) -> dict:
        return dict(num_maskmem=self.num_maskmem, directions=self.directions,
                    mem_dim=self.maskmem_tpos_enc.shape[-1],
                    layers=self.memory_attention.num_layers,
                    sigmoid_scale_for_mem_enc=self.sigmoid_scale_for_mem_enc,
                    sigmoid_bias_for_mem_enc=self.sigmoid_bias_for_mem_enc)
