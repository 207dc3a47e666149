"""SAM2 sizes and adapter settings as small differences from the defaults.

The official sizes mirror ``sam2/configs/sam2.1/sam2.1_hiera_{t,s,b+,l}.yaml`` of sam2 1.1.0;
``toy`` is a few narrow blocks for tests and CPU demos (never pretrained).
"""
from dataclasses import dataclass, replace
from typing import Optional, Tuple

from nnsam2.network.deform_conv import IMPLS as DEFORM_IMPLS

ADAPTER_KINDS = ("hp", "lw", "lora", "none")
# The LW adapter exists for low latency: C/8 keeps its fused form within the 5% latency target.
DEFAULT_BOTTLENECK = {"hp": 0.25, "lw": 0.125}


@dataclass(frozen=True)
class SizeCfg:
    """Hiera trunk, FPN neck, mask decoder and memory hyper-parameters of one SAM2 size."""

    embed_dim: int = 96
    num_heads: int = 1
    stages: Tuple[int, ...] = (2, 3, 16, 3)
    global_att_blocks: Tuple[int, ...] = (12, 16, 20)
    window_spec: Tuple[int, ...] = (8, 4, 14, 7)
    window_pos_embed_bkg_spatial_size: Tuple[int, int] = (14, 14)
    d_model: int = 256  # FPN neck width == mask decoder transformer width
    decoder_depth: int = 2
    decoder_mlp_dim: int = 2048
    decoder_heads: int = 8
    # SAM2's memory (the ``2d_mem`` network): MemoryAttention layers and feed-forward width,
    # MemoryEncoder output width; the same in every official sam2.1 config.
    memory_layers: int = 4
    memory_ffn_dim: int = 2048
    mem_dim: int = 64
    checkpoint_names: Tuple[str, ...] = ()

    @property
    def backbone_channel_list(self) -> Tuple[int, ...]:
        # Hiera doubles the width at every stage; the neck lists them coarsest first.
        return tuple(self.embed_dim * 2**i for i in reversed(range(len(self.stages))))


def _names(stem: str) -> Tuple[str, ...]:
    return (f"sam2.1_hiera_{stem}.pt", f"sam2_hiera_{stem}.pt")


SIZES = {
    "tiny": SizeCfg(stages=(1, 2, 7, 2), global_att_blocks=(5, 7, 9),
                    window_pos_embed_bkg_spatial_size=(7, 7), checkpoint_names=_names("tiny")),
    "small": SizeCfg(stages=(1, 2, 11, 2), global_att_blocks=(7, 10, 13),
                     window_pos_embed_bkg_spatial_size=(7, 7), checkpoint_names=_names("small")),
    "base_plus": SizeCfg(embed_dim=112, num_heads=2, checkpoint_names=_names("base_plus")),
    "large": SizeCfg(embed_dim=144, num_heads=2, stages=(2, 6, 36, 4),
                     global_att_blocks=(23, 33, 43), window_spec=(8, 4, 16, 8),
                     window_pos_embed_bkg_spatial_size=(7, 7), checkpoint_names=_names("large")),
    "toy": SizeCfg(embed_dim=16, num_heads=1, stages=(1, 1, 2, 1), global_att_blocks=(3,),
                   window_spec=(8, 4, 4, 2), window_pos_embed_bkg_spatial_size=(4, 4),
                   d_model=64, decoder_mlp_dim=128, decoder_heads=2, memory_layers=2,
                   memory_ffn_dim=128, mem_dim=32),
}


@dataclass(frozen=True)
class AdapterCfg:
    """How SAM2 is adapted. ``None`` fields take the per-kind defaults of :func:`resolve`.

    Args:
        kind: ``hp`` (deformable-conv adapter), ``lw`` (re-parameterisable adapter),
            ``lora`` or ``none`` (frozen SAM2 + trainable prompt-free decoder).
        bottleneck_ratio: adapter hidden width as a fraction of the block width; default C/4 for
            ``hp``, C/8 for ``lw`` (its inference cost stays within 5% of frozen SAM2's, see
            documentation/benchmarks.md).
        adapter_scale: fixed scale of the adapter's residual branch.
        lora_rank / lora_alpha / lora_dropout: LoRA settings (alpha defaults to 2 x rank).
        pos_embed: ``peg`` (convolutional PEGs; default for ``hp`` and ``lw``, the dual-adapter
            method) or ``sam2`` (Hiera's absolute pos-embed and the prompt encoder's dense PE, i.e.
            unmodified SAM2; default for ``lora`` and ``none``).
        train_decoder: ``heads`` (default: only the class tokens and their hypernetwork MLPs, the
            multi-class extension SAM2 does not have, train; the rest of SAM2's mask decoder stays
            frozen as the papers say) or ``full`` (the whole mask decoder trains).
        train_all: train every parameter (only sensible without pretrained weights, e.g. demos).
        deform_impl: the ``hp`` adapter's deformable convolution: None (default: per device,
            ``torchvision`` in fp32 on CUDA, ``embedding_bag`` elsewhere), ``embedding_bag`` (fast
            backward, bf16 under autocast; on CUDA its bf16 backward needs torch 2.13+) or
            ``torchvision``. Same parameters, same result: checkpoints load into either.
    """

    kind: str = "hp"
    bottleneck_ratio: Optional[float] = None
    adapter_scale: float = 0.5
    lora_rank: int = 8
    lora_alpha: Optional[float] = None
    lora_dropout: float = 0.1
    pos_embed: Optional[str] = None
    train_decoder: Optional[str] = None
    train_all: bool = False
    deform_impl: Optional[str] = None


def resolve(cfg: AdapterCfg) -> AdapterCfg:
    """Fill the per-kind defaults and validate the settings."""
    if cfg.kind not in ADAPTER_KINDS:
        raise ValueError(f"unknown adapter kind {cfg.kind!r}; choose one of {ADAPTER_KINDS}")
    pos = cfg.pos_embed or ("peg" if cfg.kind in ("hp", "lw") else "sam2")
    dec = cfg.train_decoder or "heads"
    if pos not in ("peg", "sam2"):
        raise ValueError(f"pos_embed must be 'peg' or 'sam2', got {pos!r}")
    if cfg.deform_impl is not None and cfg.deform_impl not in DEFORM_IMPLS:
        raise ValueError(f"deform_impl must be None (per device) or one of {DEFORM_IMPLS}, "
                         f"got {cfg.deform_impl!r}")
    if dec not in ("full", "heads"):
        raise ValueError(f"train_decoder must be 'full' or 'heads', got {dec!r}")
    ratio = (cfg.bottleneck_ratio if cfg.bottleneck_ratio is not None
             else DEFAULT_BOTTLENECK.get(cfg.kind, 0.25))
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"bottleneck_ratio must be in (0, 1], got {ratio!r}")
    alpha = cfg.lora_alpha if cfg.lora_alpha is not None else 2.0 * cfg.lora_rank
    return replace(cfg, pos_embed=pos, train_decoder=dec, lora_alpha=alpha, bottleneck_ratio=ratio)


def get_size(name: str) -> SizeCfg:
    if name not in SIZES:
        raise ValueError(f"unknown SAM2 size {name!r}; choose one of {tuple(SIZES)}")
    return SIZES[name]
