"""Prompt-free, multi-class use of sam2's ``MaskDecoder``.

The decoder is built with one mask token + hypernetwork MLP per class. With no prompts the token
sequence is [object-score token, IoU token, class tokens]; the dense prompt is the prompt encoder's
``no_mask_embed``. The IoU and object-score heads are removed: nothing would train them, and plain
DDP needs every trainable parameter to receive a gradient.
"""
from typing import Optional, Sequence

import torch
from sam2.modeling.sam.mask_decoder import MaskDecoder
from sam2.modeling.sam.transformer import TwoWayTransformer

UNUSED_HEADS = ("iou_prediction_head", "pred_obj_score_head")


def build_mask_decoder(num_classes: int, d_model: int, depth: int, mlp_dim: int,
                       heads: int) -> MaskDecoder:
    """sam2's MaskDecoder with ``num_classes`` mask tokens and the official SAM2 head settings."""
    decoder = MaskDecoder(
        transformer_dim=d_model,
        transformer=TwoWayTransformer(depth=depth, embedding_dim=d_model, mlp_dim=mlp_dim,
                                      num_heads=heads),
        num_multimask_outputs=num_classes - 1,  # sam2 adds one token: num_classes in all
        iou_head_depth=3,
        iou_head_hidden_dim=256,
        use_high_res_features=True,
        iou_prediction_use_sigmoid=True,
        pred_obj_scores=True,
        pred_obj_scores_mlp=True,
    )
    for name in UNUSED_HEADS:
        delattr(decoder, name)
    return decoder


def prompt_free_masks(decoder: MaskDecoder, no_mask_embed: torch.Tensor,
                      image_embed: torch.Tensor, image_pe: torch.Tensor,
                      high_res: Sequence[torch.Tensor],
                      prompt_tokens: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Class logits at 1/4 input resolution.

    Args:
        decoder: mask decoder from :func:`build_mask_decoder`.
        no_mask_embed: (1, C) dense "no mask" prompt embedding.
        image_embed: (B, C, h, w) image embedding at stride 16.
        image_pe: (B or 1, C, h, w) position encoding of the embedding.
        high_res: FPN features at stride 4 and 8, already projected by conv_s0 / conv_s1.
        prompt_tokens: (B, N, C) sparse prompt tokens (clicks) after the class tokens; None:
            prompt-free.

    Returns:
        (B, num_classes, 4h, 4w) logits.
    """
    b, c, h, w = image_embed.shape
    tokens = torch.cat([decoder.obj_score_token.weight, decoder.iou_token.weight,
                        decoder.mask_tokens.weight], dim=0)
    tokens = tokens.unsqueeze(0).expand(b, -1, -1)  # (B, 2 + K, C)
    if prompt_tokens is not None:
        tokens = torch.cat([tokens, prompt_tokens.to(tokens.dtype)], dim=1)  # (B, 2 + K + N, C)
    src = image_embed + no_mask_embed.reshape(1, c, 1, 1)
    hs, src = decoder.transformer(src, image_pe, tokens)  # (B, 2 + K, C), (B, h*w, C)
    class_tokens = hs[:, 2:2 + decoder.num_mask_tokens]  # (B, K, C)
    src = src.transpose(1, 2).reshape(b, c, h, w)  # (B, h*w, C) -> (B, C, h, w)
    up1, norm1, act1, up2, act2 = decoder.output_upscaling
    feat_s0, feat_s1 = high_res
    pixels = act1(norm1(up1(src) + feat_s1))
    pixels = act2(up2(pixels) + feat_s0)  # (B, C/8, 4h, 4w)
    hyper = torch.stack([mlp(class_tokens[:, k]) for k, mlp
                         in enumerate(decoder.output_hypernetworks_mlps)], dim=1)  # (B, K, C/8)
    return torch.einsum("bkc,bchw->bkhw", hyper, pixels)
