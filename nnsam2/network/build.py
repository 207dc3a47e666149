"""Builds the adapted SAM2 network from sam2's own modules with plain constructors (no Hydra)."""
import logging
from dataclasses import asdict
from functools import partial

from torch import nn
from sam2.modeling.backbones.hieradet import Hiera
from sam2.modeling.backbones.image_encoder import FpnNeck, ImageEncoder
from sam2.modeling.position_encoding import PositionEmbeddingSine
from sam2.modeling.sam.prompt_encoder import PromptEncoder

from nnsam2.network.configs import AdapterCfg, SizeCfg, get_size, resolve
from nnsam2.network.decoder import build_mask_decoder
from nnsam2.network.hp_adapter import DeformableAdapter
from nnsam2.network.lora import inject_lora
from nnsam2.network.sam2_weights import MEMORY_KEYS
from nnsam2.network.memory_net import SAM2MemSegNet, build_memory_attention, build_memory_encoder
from nnsam2.network.peg import EmbeddingPEG, SAM2DensePE, TokenPEG
from nnsam2.network.lw_adapter import RepAdapter
from nnsam2.network.sam2_net import SAM2SegNet
from nnsam2.network.stem import InputStem
from nnsam2.network.trunk import PEGTrunk, inject_adapters

logger = logging.getLogger(__name__)

DECODER_HEAD_PARAMS = ("mask_tokens", "output_hypernetworks_mlps")


def build_image_encoder(size: SizeCfg, adapter: AdapterCfg) -> ImageEncoder:
    hiera = Hiera(embed_dim=size.embed_dim, num_heads=size.num_heads, stages=size.stages,
                  global_att_blocks=size.global_att_blocks, window_spec=size.window_spec,
                  window_pos_embed_bkg_spatial_size=size.window_pos_embed_bkg_spatial_size)
    if adapter.kind in ("hp", "lw"):
        adapter_type = (partial(DeformableAdapter, deform_impl=adapter.deform_impl)
                        if adapter.kind == "hp" else RepAdapter)
        inject_adapters(hiera, lambda dim: adapter_type(
            dim, bottleneck_ratio=adapter.bottleneck_ratio, scale=adapter.adapter_scale))
    peg = TokenPEG(size.embed_dim) if adapter.pos_embed == "peg" else None
    neck = FpnNeck(
        position_encoding=PositionEmbeddingSine(num_pos_feats=size.d_model, normalize=True,
                                                temperature=10000, warmup_cache=False),
        d_model=size.d_model, backbone_channel_list=list(size.backbone_channel_list),
        fpn_top_down_levels=[2, 3], fpn_interp_model="nearest")
    return ImageEncoder(trunk=PEGTrunk(hiera, peg), neck=neck, scalp=1)


def _segnet_modules(num_input_channels: int, size_cfg: SizeCfg, adapter: AdapterCfg,
                    num_classes: int) -> dict:
    """The keyword arguments of :class:`SAM2SegNet` (shared by the 2D and the memory network)."""
    prompt_encoder = PromptEncoder(embed_dim=size_cfg.d_model, image_embedding_size=(64, 64),
                                   input_image_size=(1024, 1024), mask_in_chans=16)
    decoder = build_mask_decoder(num_classes, size_cfg.d_model, size_cfg.decoder_depth,
                                 size_cfg.decoder_mlp_dim, size_cfg.decoder_heads)
    image_pe = (EmbeddingPEG(size_cfg.d_model) if adapter.pos_embed == "peg"
                else SAM2DensePE(prompt_encoder))
    return dict(stem=InputStem(num_input_channels),
                image_encoder=build_image_encoder(size_cfg, adapter),
                sam_prompt_encoder=prompt_encoder, sam_mask_decoder=decoder, image_pe=image_pe,
                num_classes=num_classes)


def _finish(net: SAM2SegNet, adapter: AdapterCfg, **config) -> SAM2SegNet:
    """LoRA (if asked for), trainability and ``net.config``."""
    if adapter.kind == "lora":
        lora_args = dict(rank=adapter.lora_rank, alpha=adapter.lora_alpha,
                         dropout=adapter.lora_dropout)
        inject_lora(net.image_encoder.trunk, lambda n, m: n.endswith("attn.qkv"), **lora_args)
        inject_lora(net.sam_mask_decoder.transformer, lambda n, m: n.rsplit(".", 1)[-1] in (
            "q_proj", "k_proj", "v_proj", "out_proj"), **lora_args)
    set_trainable(net, adapter)
    net.config = dict(config, adapter=asdict(adapter))
    return net


def _check_classes(num_classes: int) -> None:
    if num_classes < 2:
        raise ValueError(f"need at least 2 output classes (background + 1), got {num_classes}")


def build_network(num_input_channels: int, num_classes: int, *, size: str = "tiny",
                  adapter: AdapterCfg = AdapterCfg(), clicks: bool = False) -> SAM2SegNet:
    """The adapted SAM2, frozen where the method says so.

    Args:
        num_input_channels: channels of nnU-Net's (z-scored) input.
        num_classes: output channels (background included), at least 2.
        size: ``tiny``, ``small``, ``base_plus``, ``large`` or ``toy``.
        adapter: adaptation settings (see :class:`AdapterCfg`).
        clicks: also take clicks (:mod:`nnsam2.network.click_prompts`); without any, the
            network computes exactly what it computes without this option.
    """
    _check_classes(num_classes)
    size_cfg, adapter = get_size(size), resolve(adapter)
    net = SAM2SegNet(**_segnet_modules(num_input_channels, size_cfg, adapter, num_classes))
    if clicks:
        net.enable_clicks()
    return _finish(net, adapter, size=size, num_input_channels=num_input_channels,
                   num_classes=num_classes, **({"clicks": True} if clicks else {}))


def build_memory_network(num_input_channels: int, num_classes: int, *, size: str = "tiny",
                         adapter: AdapterCfg = AdapterCfg(),
                         directions: str = "both", clicks: bool = False) -> SAM2MemSegNet:
    """The ``2d_mem`` network: the adapted SAM2 of :func:`build_network` plus SAM2's frozen
    memory attention and memory encoder over the slices of a (B, C, D, H, W) patch.

    Args:
        num_input_channels / num_classes / size / adapter: as for :func:`build_network`.
        directions: ``both`` (forward and backward over the slices, logits averaged) or
            ``forward``.
        clicks: also take clicks, as :func:`build_network`; a slice's clicks reach the other
            slices through its memory.
    """
    _check_classes(num_classes)
    size_cfg, adapter = get_size(size), resolve(adapter)
    net = SAM2MemSegNet(
        memory_attention=build_memory_attention(size_cfg.d_model, size_cfg.mem_dim,
                                                num_layers=size_cfg.memory_layers,
                                                ffn_dim=size_cfg.memory_ffn_dim),
        memory_encoder=build_memory_encoder(size_cfg.d_model, size_cfg.mem_dim),
        directions=directions,
        **_segnet_modules(num_input_channels, size_cfg, adapter, num_classes))
    if clicks:
        net.enable_clicks()
    return _finish(net, adapter, size=size, num_input_channels=num_input_channels,
                   num_classes=num_classes, memory=net.memory_config(),
                   **({"clicks": True} if clicks else {}))


def is_trainable_name(name: str, adapter: AdapterCfg) -> bool:
    """Which parameters train: stem, PEGs, adapters, LoRA and (part of) the mask decoder; in
    ``2d_mem`` also the memory path (memory attention, memory encoder, their position encodings
    and the gate): it reads features that the adapters change (documentation/methods.md)."""
    if name.startswith("sam_prompt_encoder."):
        return name.startswith("sam_prompt_encoder.no_mask_embed") and adapter.train_all
    if adapter.train_all:
        return True
    if name.startswith(MEMORY_KEYS) or name == "memory_gate":
        return True
    if name.startswith(("stem.", "image_pe.", "click_prompts.")) or ".peg." in name:
        return True
    if ".adapter." in name or "lora_" in name:
        return True
    if name.startswith("sam_mask_decoder."):
        return adapter.train_decoder == "full" or any(p in name for p in DECODER_HEAD_PARAMS)
    return False


def set_trainable(net: nn.Module, adapter: AdapterCfg) -> None:
    for name, param in net.named_parameters():
        param.requires_grad_(is_trainable_name(name, adapter))
