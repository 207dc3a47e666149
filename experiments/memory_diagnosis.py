"""Why the ungated (gate open) ``2d_mem`` learnt slowly: figures measured on the same batches for
the gate closed (the 2D network) and the gate open (SAM2's memory path, the old behaviour)
(documentation/memory.md, "Why ungated 2d_mem learnt slowly").

    export nnUNet_raw=... nnUNet_preprocessed=... nnUNet_results=/a/scratch/folder
    python -m experiments.memory_diagnosis -d 992 --iterations 300 -o diagnosis.md

The dataset must be planned with a ``2d_mem`` configuration. The real trainer class is built in
this process (random init, every parameter trains, as ``--random-init --train-all``; its run
settings are written to its fold folder under ``nnUNet_results``), its own training dataloader
(nnU-Net's augmentation, in-process) draws the batches once, and every arm trains from the same
initial weights on those batches with the trainer's loss, optimiser groups and nnU-Net's gradient
clipping; the learning rate follows nnU-Net's poly schedule per iteration over ``--iterations``.
The network's own forward runs unchanged; hooks record what it computes per slice step:

* per direction and step (step 0 = the first slice of a direction, image mode): CE and soft Dice
  (nnU-Net's loss terms), gradient norms at the decoder input and at the logits, predicted vs
  reference foreground, per-class TP/FP/FN;
* the features the decoder receives (image mode vs memory-attention output) and the raw
  features of the same slice, per-channel statistics;
* the union-foreground mask handed to the memory encoder, against the ground truth;
* gradient norms and relative updates per component, per iteration;
* nnU-Net's augmentation of a (D, H, W) run: synthetic stacks through the trainer's transforms,
  and label runs in the real batches against the preprocessed volumes.

Arms: ``closed`` (gate frozen at 0: the 2D network), ``open`` (gate frozen at 1: the old
2d_mem), ``open_nodropout`` (open, memory attention without dropout), ``closed_trainable`` (gate
starts at 0 and trains: the current default).
"""
import argparse
import copy
import os
import random
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from typing import Dict, List, Sequence
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F

from nnsam2.benchmark.machine import machine_info
from nnsam2.network import memory_net
from nnsam2.training import run_settings
from nnsam2.training.trainer_lookup import use_nnsam2_trainers
from nnsam2.utils.nnunet_env import require_env

ARMS = ("closed", "open", "open_nodropout", "closed_trainable")
COMPONENTS = (  # (label, predicate on the parameter name); a parameter may be in several
    ("memory attention", lambda n: n.startswith("memory_attention.")),
    ("memory encoder", lambda n: n.startswith("memory_encoder.")),
    ("maskmem_tpos_enc", lambda n: n == "maskmem_tpos_enc"),
    ("memory_gate", lambda n: n == "memory_gate"),
    ("decoder (all)", lambda n: n.startswith("sam_mask_decoder.")),
    ("decoder transformer", lambda n: n.startswith("sam_mask_decoder.transformer.")),
    ("decoder class heads", lambda n: n.startswith(("sam_mask_decoder.mask_tokens",
                                                    "sam_mask_decoder.output_hypernetworks"))),
    ("trunk adapters", lambda n: n.startswith("image_encoder.trunk.") and ".adapter." in n),
    ("trunk PEG", lambda n: n.startswith("image_encoder.trunk.") and ".peg." in n),
    ("trunk (all)", lambda n: n.startswith("image_encoder.trunk.")),
    ("FPN neck", lambda n: n.startswith("image_encoder.neck.")),
    ("stem", lambda n: n.startswith("stem.")),
    ("no_mem_embed", lambda n: n == "no_mem_embed"),
    ("whole network", lambda n: True),
)
CLIP = 12.0  # nnU-Net's train_step


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------- trainer, batches

def make_trainer(dataset: str, trainer_name: str, plans: str, lr: float):
    from nnunetv2.run.run_training import get_trainer_from_args
    use_nnsam2_trainers()
    trainer = get_trainer_from_args(dataset, "2d_mem", "all", trainer_name, plans,
                                    device=torch.device("cpu"))
    run_settings.save(trainer.output_folder, run_settings.RunSettings("random", train_all=True))
    trainer.initial_lr = lr
    trainer.initialize()
    return trainer


def draw_batches(loader, count: int) -> List[dict]:
    out = []
    for _ in range(count):
        batch = next(loader)
        out.append({"data": batch["data"].clone(), "target": batch["target"].to(torch.int8)})
    return out


# ----------------------------------------------------------------------------- recording hooks

class Recorder:
    """Records what ``SAM2MemSegNet._forward`` computes per slice step, without changing it:
    the decoder's input and output (``prompt_free_masks`` is wrapped where memory_net calls
    it), the memory attention's input and output, the memory encoder's mask, the stride-16
    encoder features. Gradients of the non-leaf tensors are kept when ``grads``."""

    def __init__(self, net, grads: bool):
        self.net, self.grads = net, grads

    @contextmanager
    def __call__(self):
        self.decoder_in, self.logits, self.ma_kwargs, self.ma_out = [], [], [], []
        self.masks, self.mem_pix = [], []
        self.features = None
        original = memory_net.prompt_free_masks

        def decoder_call(decoder, no_mask_embed, embed, image_pe, high_res):
            logits = original(decoder, no_mask_embed, embed, image_pe, high_res)
            if self.grads and logits.requires_grad:
                embed.retain_grad()
                logits.retain_grad()
            self.decoder_in.append(embed)
            self.logits.append(logits)
            return logits

        def ma_hook(module, args, kwargs, output):
            self.ma_kwargs.append({k: v.detach() for k, v in kwargs.items()})
            self.ma_out.append(output.detach())

        def me_hook(module, args, kwargs):
            self.mem_pix.append(args[0].detach())
            self.masks.append(args[1].detach())

        def enc_hook(module, args, output):
            feats = output["backbone_fpn"][2]
            if self.grads and feats.requires_grad:
                feats.retain_grad()
            self.features = feats

        handles = [self.net.memory_attention.register_forward_hook(ma_hook, with_kwargs=True),
                   self.net.memory_encoder.register_forward_pre_hook(me_hook, with_kwargs=True),
                   self.net.image_encoder.register_forward_hook(enc_hook)]
        try:
            with mock.patch.object(memory_net, "prompt_free_masks", decoder_call):
                yield self
        finally:
            for h in handles:
                h.remove()


def slice_of(direction: int, step: int, depth: int) -> int:
    return step if direction == 0 else depth - 1 - step


def upsampled(rec: Recorder, size) -> List[torch.Tensor]:
    return [F.interpolate(l.detach(), size=size, mode="bilinear", align_corners=False)
            for l in rec.logits]


def check_reconstruction(rec: Recorder, out: torch.Tensor, b: int) -> float:
    """Max |difference| between the network's output and the mean of the recorded directions."""
    depth = out.shape[2]
    ups = upsampled(rec, out.shape[-2:])
    mean = torch.stack([(ups[t][:b] + ups[depth - 1 - t][b:]) / 2 for t in range(depth)], dim=2)
    return (mean - out.detach()).abs().max().item()


# ----------------------------------------------------------------------------- measurements

def confusion(pred: torch.Tensor, ref: torch.Tensor, k: int) -> np.ndarray:
    """(K-1, 3) TP, FP, FN per foreground class."""
    rows = []
    for c in range(1, k):
        p, r = pred == c, ref == c
        rows.append([(p & r).sum().item(), (p & ~r).sum().item(), (~p & r).sum().item()])
    return np.array(rows, dtype=np.float64)


def dice_from(conf: np.ndarray) -> np.ndarray:
    tp, fp, fn = conf[..., 0], conf[..., 1], conf[..., 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)


def feature_stats(x: torch.Tensor) -> Dict[str, np.ndarray]:
    """x (N, C, h, w): per-channel mean and std over samples and positions."""
    x = x.detach().transpose(0, 1).flatten(1)  # (C, N*h*w)
    return {"mu": x.mean(1).numpy(), "sd": x.std(1).numpy(),
            "rms": x.pow(2).mean().sqrt().item(), "token_norm": x.norm(dim=0).mean().item()}


def shift(a: dict, ref: dict) -> Dict[str, float]:
    """a's statistics against ref's: mean shift in units of ref's per-channel std (RMS over
    channels), median per-channel std ratio, cosine of the per-channel mean vectors."""
    sd = np.maximum(ref["sd"], 1e-8)
    cos = float(np.dot(a["mu"], ref["mu"]) /
                max(np.linalg.norm(a["mu"]) * np.linalg.norm(ref["mu"]), 1e-12))
    return {"mean_shift_sd": float(np.sqrt(np.mean(((a["mu"] - ref["mu"]) / sd) ** 2))),
            "sd_ratio": float(np.median(a["sd"] / sd)), "mu_cos": cos}


def token_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean cosine between matching tokens (channel vectors) of two (N, C, h, w) maps."""
    return F.cosine_similarity(a.detach(), b.detach(), dim=1).mean().item()


def tokens_to_map(tokens: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    n, c, h, w = like.shape
    return tokens.permute(1, 2, 0).reshape(n, c, h, w)


def step_records(rec: Recorder, target: torch.Tensor, loss, b: int, k: int) -> dict:
    """Per direction and step: losses, foreground, confusion, features, masks, gradients."""
    depth = target.shape[2]
    ups = upsampled(rec, target.shape[-2:])
    feats = rec.features.detach().unflatten(0, (b, depth))  # (B, D, C, h, w)
    nd = ups[0].shape[0] // b
    r = defaultdict(dict)
    for t in range(depth):
        embed = rec.decoder_in[t]
        # the raw stride-16 features of the slices decoded at this step, in the decoder's order
        pix = torch.cat([feats[:, slice_of(d, t, depth)] for d in range(nd)])
        r["feat_embed"][t] = feature_stats(embed)
        r["feat_pix"][t] = feature_stats(pix)
        if t > 0:
            conditioned = tokens_to_map(rec.ma_out[t - 1], pix)
            r["feat_cond"][t] = feature_stats(conditioned)
            r["cos_cond_pix"][t] = token_cosine(conditioned, pix)
        r["cos_embed_pix"][t] = token_cosine(embed, pix)
        if embed.grad is not None:
            r["grad_embed"][t] = [embed.grad[d * b:(d + 1) * b].norm().item() for d in range(nd)]
            r["grad_logits"][t] = [rec.logits[t].grad[d * b:(d + 1) * b].norm().item()
                                   for d in range(nd)]
        for d in range(nd):
            s = slice_of(d, t, depth)
            lg, tg = ups[t][d * b:(d + 1) * b], target[:, :, s].long()
            with torch.no_grad():
                ce = loss.ce(lg, tg).item()
                sdice = -loss.dc(lg, tg).item()
            pred = lg.argmax(1)
            ref = tg[:, 0]
            r["ce"][(d, t)] = ce
            r["soft_dice"][(d, t)] = sdice
            r["conf"][(d, t)] = confusion(pred, ref, k)
            r["fg"][(d, t)] = ((pred > 0).sum().item(), (ref > 0).sum().item())
            if t < depth - 1 and t < len(rec.masks):  # the mask this step hands to memory
                mask = rec.masks[t][d * b:(d + 1) * b, 0]
                fg_prob = (mask + 10.0) / 20.0  # undo the x20 - 10 (SAM2.1's scale and bias)
                gt = ref > 0
                hard = fg_prob > 0.5
                inter = (hard & gt).sum().item()
                r["mask"][(d, t)] = dict(
                    min=mask.min().item(), max=mask.max().item(), mean_prob=fg_prob.mean().item(),
                    prob_in_gt=fg_prob[gt].mean().item() if gt.any() else np.nan,
                    prob_out_gt=fg_prob[~gt].mean().item() if (~gt).any() else np.nan,
                    frac_hard=hard.float().mean().item(), frac_gt=gt.float().mean().item(),
                    inter=inter, hard_sum=hard.sum().item(), gt_sum=gt.sum().item())
    if rec.features.grad is not None:
        g = rec.features.grad.unflatten(0, (b, depth))
        r["grad_feat_slice"] = [g[:, s].norm().item() for s in range(depth)]
    return r


def component_norms(net, what: str, before: Dict[str, torch.Tensor] = None) -> Dict[str, float]:
    """Per component: gradient norm (``grad``) or ||after - before|| / ||before|| (``update``)."""
    sq, ref = defaultdict(float), defaultdict(float)
    for name, p in net.named_parameters():
        if what == "grad":
            if p.grad is None:
                continue
            value = p.grad.detach().pow(2).sum().item()
        else:
            if name not in before:
                continue
            value = (p.detach() - before[name]).pow(2).sum().item()
        for label, pred in COMPONENTS:
            if pred(name):
                sq[label] += value
                if what == "update":
                    ref[label] += before[name].pow(2).sum().item()
    if what == "grad":
        return {k: v ** 0.5 for k, v in sq.items()}
    return {k: (v / ref[k]) ** 0.5 if ref[k] > 0 else np.nan for k, v in sq.items()}


# ----------------------------------------------------------------------------- training arms

def set_arm(net, arm: str) -> None:
    with torch.no_grad():
        net.memory_gate.zero_()
    if arm.startswith("open"):
        net.open_gate()
    net.memory_gate.requires_grad_(arm == "closed_trainable")


def optimiser_for(trainer, net, arm: str):
    optimizer, _ = trainer.configure_optimizers()  # the trainer's groups (train_all sets all)
    set_arm(net, arm)  # after it: configure_optimizers makes every parameter trainable
    for group in optimizer.param_groups:
        group["params"] = [p for p in group["params"] if p.requires_grad]
    return optimizer


def train_mode(net, arm: str) -> None:
    net.train()
    if arm == "open_nodropout":
        net.memory_attention.eval()  # its dropout (attention and MLP) off


def evaluate(net, trainer, batches: Sequence[dict], k: int) -> dict:
    """Eval mode on fixed validation batches: pseudo Dice per class (summed TP/FP/FN) of the
    network's output, predicted / reference foreground, foreground Dice per direction step."""
    net.eval()
    b = batches[0]["data"].shape[0]
    conf, fg_pred, fg_ref = 0.0, 0, 0
    step_conf = defaultdict(float)
    rec = Recorder(net, grads=False)
    with torch.no_grad():
        for batch in batches:
            target = batch["target"].long()
            with rec():
                out = net(batch["data"])
            pred = out.argmax(1)
            conf = conf + confusion(pred, target[:, 0], k)
            fg_pred += (pred > 0).sum().item()
            fg_ref += (target > 0).sum().item()
            ups = upsampled(rec, target.shape[-2:])
            depth = target.shape[2]
            for t in range(depth):
                for d in range(ups[t].shape[0] // b):
                    p = ups[t][d * b:(d + 1) * b].argmax(1) > 0
                    r = target[:, 0, slice_of(d, t, depth)] > 0
                    step_conf[t] = step_conf[t] + np.array(
                        [(p & r).sum().item(), (p & ~r).sum().item(), (~p & r).sum().item()],
                        dtype=np.float64)
    return {"dice": dice_from(conf), "fg_ratio": fg_pred / max(fg_ref, 1),
            "step_fg_dice": {t: float(dice_from(c)) for t, c in step_conf.items()}}


def train_arm(arm: str, trainer, init_state: dict, batches: List[dict], val: List[dict],
              iterations: int, lr: float, eval_every: int, seed: int, k: int) -> dict:
    net = trainer.network
    net.load_state_dict(init_state)
    optimizer = optimiser_for(trainer, net, arm)
    seed_all(seed)
    log = {"iters": [], "evals": {}, "cpu_s": 0.0}
    rec = Recorder(net, grads=True)
    start = time.process_time()
    for it in range(iterations):
        if it % eval_every == 0:
            log["evals"][it] = evaluate(net, trainer, val, k)
        for group in optimizer.param_groups:  # nnU-Net's poly schedule, per iteration
            group["lr"] = lr * (1 - it / iterations) ** 0.9
        batch = batches[it % len(batches)]
        data, target = batch["data"], batch["target"].long()
        train_mode(net, arm)
        optimizer.zero_grad(set_to_none=True)
        with rec():
            out = net(data)
            loss = trainer.loss(out, target)
            loss.backward()
        b = data.shape[0]
        record = step_records(rec, target, trainer.loss, b, k)
        if it == 0:
            record["reconstruction_err"] = check_reconstruction(rec, out, b)
            assert record["reconstruction_err"] < 1e-4, "the hooks no longer see the forward"
        record["loss"] = loss.item()
        with torch.no_grad():
            record["loss_ce"] = trainer.loss.ce(out, target).item()
            record["loss_dice"] = -trainer.loss.dc(out, target).item()
            record["slice_ce"] = [trainer.loss.ce(out[:, :, s], target[:, :, s]).item()
                                  for s in range(out.shape[2])]
            record["slice_dice"] = [-trainer.loss.dc(out[:, :, s], target[:, :, s]).item()
                                    for s in range(out.shape[2])]
            record["conf_out"] = confusion(out.argmax(1), target[:, 0], k)
        record["grad"] = component_norms(net, "grad")
        before = {n: p.detach().clone() for n, p in net.named_parameters() if p.requires_grad}
        record["grad_total"] = torch.nn.utils.clip_grad_norm_(net.parameters(), CLIP).item()
        optimizer.step()
        record["update"] = component_norms(net, "update", before)
        record["gate_mean"] = net.gate().mean().item()
        log["iters"].append(record)
    log["evals"][iterations] = evaluate(net, trainer, val, k)
    log["cpu_s"] = time.process_time() - start
    log["probe_end"] = probe(net, val[0])
    return log


# ----------------------------------------------------------------------------- probes

def probe(net, batch: dict) -> dict:
    """Memory attention and memory encoder on one fixed batch (eval mode): how far dropout moves
    the memory attention's output, how much that output depends on the memories, how much of
    the slice's own features it keeps, how much the memory depends on the mask."""
    state = net.training
    saved_gate = net.memory_gate.detach().clone()
    net.open_gate()  # the memory path runs its real inputs whatever the arm's gate
    net.eval()
    rec = Recorder(net, grads=False)
    out = {}
    with torch.no_grad(), rec():
        net(batch["data"])
    ma = net.memory_attention
    rel = lambda a, b: ((a - b).norm() / b.norm()).item()
    drop, other, zero, keep = [], [], [], []
    with torch.no_grad():
        for kwargs, eval_out in zip(rec.ma_kwargs, rec.ma_out):
            ma.train()
            torch.manual_seed(0)
            drop.append(rel(ma(**kwargs), eval_out))
            ma.eval()
            rolled = dict(kwargs, memory=kwargs["memory"].roll(1, dims=1))  # another sample's
            other.append(rel(ma(**rolled), eval_out))
            zero.append(rel(ma(**dict(kwargs, memory=torch.zeros_like(kwargs["memory"]))),
                            eval_out))
            keep.append(F.cosine_similarity(eval_out, kwargs["curr"], dim=-1).mean().item())
        # memory of the last encoded step: the recorded mask vs constant empty / full masks
        enc = net.memory_encoder
        pix, mask = rec.mem_pix[-1], rec.masks[-1]
        mem = enc(pix, mask, skip_mask_sigmoid=True)["vision_features"]
        empty = enc(pix, torch.full_like(mask, -10.0), skip_mask_sigmoid=True)["vision_features"]
        full = enc(pix, torch.full_like(mask, 10.0), skip_mask_sigmoid=True)["vision_features"]
    out.update(dropout_rel_change=float(np.mean(drop)),
               other_memory_rel_change=float(np.mean(other)),
               zero_memory_rel_change=float(np.mean(zero)), cos_out_curr=float(np.mean(keep)),
               mem_vs_empty_mask=rel(empty, mem), mem_vs_full_mask=rel(full, mem),
               mem_rms=mem.pow(2).mean().sqrt().item())
    with torch.no_grad():
        net.memory_gate.copy_(saved_gate)
    net.train(state)
    return out


# ----------------------------------------------------------------------------- augmentation

def training_transforms(trainer):
    rotation, dummy_2d, initial_patch, mirror_axes = \
        trainer.configure_rotation_dummyDA_mirroring_and_inital_patch_size()
    lm = trainer.label_manager
    transforms = trainer.get_training_transforms(
        trainer.configuration_manager.patch_size, rotation, trainer._get_deep_supervision_scales(),
        mirror_axes, dummy_2d, use_mask_for_norm=trainer.configuration_manager.use_mask_for_norm,
        is_cascaded=trainer.is_cascaded, foreground_labels=lm.foreground_labels,
        regions=lm.foreground_regions if lm.has_regions else None, ignore_label=lm.ignore_label)
    return transforms, dummy_2d, [int(s) for s in initial_patch], mirror_axes


def synthetic_stack(shape, slices: Sequence[int], rng: np.random.Generator):
    """Image and label with the same in-plane pattern (a disk of label 1, a square of label 2,
    texture) on ``slices`` only."""
    depth, h, w = shape
    yy, xx = np.mgrid[:h, :w]
    disk = (yy - h * 0.4) ** 2 + (xx - w * 0.45) ** 2 < (min(h, w) * 0.15) ** 2
    square = (abs(yy - h * 0.65) < h * 0.08) & (abs(xx - w * 0.62) < w * 0.08)
    label2d = np.where(disk, 1, np.where(square, 2, 0)).astype(np.int16)
    image2d = label2d.astype(np.float32) + 0.2 * rng.standard_normal((h, w)).astype(np.float32)
    image = np.zeros((1, depth, h, w), np.float32)
    label = np.zeros((1, depth, h, w), np.int16)
    for s in slices:
        image[0, s], label[0, s] = image2d, label2d
    return torch.from_numpy(image), torch.from_numpy(label)


def corr(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    den = (a.norm() * b.norm()).item()
    return (a @ b).item() / den if den > 0 else 0.0


def augmentation_checks(trainer, batches: List[dict], samples: int, seed: int) -> dict:
    transforms, dummy_2d, initial_patch, mirror_axes = training_transforms(trainer)
    rng = np.random.default_rng(seed)
    seed_all(seed)
    depth = initial_patch[0]
    same_label, img_corr, img_label_corr = 0, [], []
    for _ in range(samples):  # A: every slice the same
        image, label = synthetic_stack(initial_patch, range(depth), rng)
        out = transforms(image=image, segmentation=label)
        seg, img = out["segmentation"][0], out["image"][0]
        same_label += all(torch.equal(seg[s], seg[0]) for s in range(depth))
        img_corr.append(min(corr(img[s], img[0]) for s in range(1, depth)))
        img_label_corr.append(np.mean([corr(img[s], (seg[s] > 0).float()) for s in range(depth)]))
    one_slice, flipped, neighbour_corr = 0, 0, []
    src = 1
    for _ in range(samples):  # B: the pattern on slice 1 only
        image, label = synthetic_stack(initial_patch, [src], rng)
        out = transforms(image=image, segmentation=label)
        seg, img = out["segmentation"][0], out["image"][0]
        labelled = [s for s in range(depth) if (seg[s] > 0).any()]
        one_slice += len(labelled) == 1
        if labelled == [depth - 1 - src]:
            flipped += 1
        s = labelled[0] if labelled else src
        neighbour_corr.append(max(corr(img[n], img[s]) for n in (s - 1, s + 1)
                                  if 0 <= n < depth))
    neighbour_corr = np.array(neighbour_corr)
    # C: label runs in the real training batches vs the preprocessed volumes
    def pair_stats(seg: np.ndarray):  # seg (D, H, W) integer labels
        inter = union = both = flips = 0
        for s in range(seg.shape[0] - 1):
            a, b = seg[s] > 0, seg[s + 1] > 0
            inter += (a & b).sum()
            union += a.sum() + b.sum()
            both_fg = a & b
            both += both_fg.sum()
            flips += (both_fg & (seg[s] != seg[s + 1])).sum()
        return inter, union, both, flips

    def pooled(stats):
        inter, union, both, flips = np.sum(stats, axis=0)
        return 2 * inter / max(union, 1), flips / max(both, 1)

    aug = [pair_stats(batch["target"][i, 0].numpy()) for batch in batches
           for i in range(batch["target"].shape[0])]
    dataset_tr, _ = trainer.get_tr_and_val_datasets()
    raw = []
    for key in dataset_tr.identifiers:
        _, seg, _, _ = dataset_tr.load_case(key)
        raw.append(pair_stats(np.asarray(seg[0])))
    return dict(dummy_2d=dummy_2d, initial_patch=initial_patch, mirror_axes=mirror_axes,
                samples=samples, same_label_frac=same_label / samples,
                img_corr_min_median=float(np.median(img_corr)),
                img_corr_min_p05=float(np.percentile(img_corr, 5)),
                img_label_corr_median=float(np.median(img_label_corr)),
                one_slice_frac=one_slice / samples, flipped_frac=flipped / samples,
                neighbour_corr_median=float(np.median(neighbour_corr)),
                neighbour_corr_gt_0_3=float((neighbour_corr > 0.3).mean()),
                aug_adjacent_fg_dice=pooled(aug)[0], aug_flip_frac=pooled(aug)[1],
                raw_adjacent_fg_dice=pooled(raw)[0], raw_flip_frac=pooled(raw)[1],
                aug_patches=len(aug), raw_cases=len(raw))


# ----------------------------------------------------------------------------- report

def windows(n: int) -> List[tuple]:
    edges = sorted({0, min(10, n), n // 6, n // 2, n})
    return [(a, b) for a, b in zip(edges, edges[1:]) if b > a]


def mean_over(records, fn):
    values = [fn(r) for r in records]
    values = [v for v in values if v is not None and not (isinstance(v, float) and np.isnan(v))]
    return float(np.mean(values)) if values else float("nan")


def fmt(x, digits=3) -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "-"
    if isinstance(x, float) and (abs(x) >= 1e4 or (0 < abs(x) < 10 ** -digits)):
        return f"{x:.2e}"
    return f"{x:.{digits}f}"


def table(head: Sequence[str], rows: Sequence[Sequence]) -> List[str]:
    return (["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] +
            ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def report(logs: Dict[str, dict], aug: dict, init_probe: dict, meta: dict) -> str:
    n = meta["iterations"]
    wins = windows(n)
    depth = meta["depth"]
    classes = meta["class_names"]
    L = [f"### Why ungated 2d_mem learnt slowly: figures ({meta['dataset']})", "",
         f"Command: `python -m experiments.memory_diagnosis {' '.join(meta['argv'])}`  ",
         f"Machine: {meta['machine']['cpu']}, {meta['machine']['logical_cpus']} logical CPUs, "
         f"{meta['threads']} torch thread(s), torch {torch.__version__}; seed {meta['seed']}  ",
         f"Trainer {meta['trainer']} ({meta['dataset']}, `2d_mem`, fold all), toy size, random "
         f"init, every parameter trains; patch {meta['patch']} (B, C, D, H, W); {n} iterations per "
         f"arm on the same {n} augmented batches (nnU-Net's training dataloader, drawn once), same "
         f"initial weights; AdamW lr {meta['lr']:g} with nnU-Net's poly schedule per iteration, "
         f"gradient clipping at {CLIP:g}. Arms: " + ", ".join(
             f"`{a}` ({logs[a]['cpu_s']:.0f} CPU s)" for a in logs) + ". "
         "Step t of a direction decodes slice t (forward) or D-1-t (backward); step 0 is SAM2's "
         "image mode (no memory). Windows are iteration ranges [a, b).", ""]

    # 1. validation pseudo Dice
    L += ["**Validation pseudo Dice** (fixed unaugmented batches, eval mode; summed TP/FP/FN "
          "over the batches; fg ratio = predicted / reference foreground voxels):", ""]
    rows = []
    for arm, log in logs.items():
        for it, ev in sorted(log["evals"].items()):
            rows.append([arm, it] + [fmt(float(d)) for d in ev["dice"]] + [fmt(ev["fg_ratio"])] +
                        [fmt(ev["step_fg_dice"][t]) for t in range(depth)])
    L += table(["arm", "after iteration"] + classes + ["fg ratio"] +
               [f"fg Dice step {t}" for t in range(depth)], rows) + [""]

    # 2. per-step losses
    L += ["**Loss per direction step** (training batches, train mode; nnU-Net's CE and soft Dice "
          "terms on each direction's own logits for the slice that step decodes, mean of both "
          "directions):", ""]
    rows = []
    for arm, log in logs.items():
        for a, b in wins:
            recs = log["iters"][a:b]
            row = [arm, f"{a}-{b}"]
            for t in range(depth):
                ce = mean_over(recs, lambda r: np.mean([r["ce"][(d, t)] for d in (0, 1)]))
                sd = mean_over(recs, lambda r: np.mean([r["soft_dice"][(d, t)] for d in (0, 1)]))
                row.append(f"{fmt(ce, 3)} / {fmt(sd, 3)}")
            rows.append(row)
    L += table(["arm", "iterations"] + [f"step {t}: CE / soft Dice" for t in range(depth)],
               rows) + [""]

    L += ["**Per slice position of the network's output** (the averaged directions; what the "
          "loss trains), CE / soft Dice, and the whole patch's loss:", ""]
    rows = []
    for arm, log in logs.items():
        for a, b in wins:
            recs = log["iters"][a:b]
            rows.append([arm, f"{a}-{b}"] +
                        [f"{fmt(mean_over(recs, lambda r: r['slice_ce'][s]))} / "
                         f"{fmt(mean_over(recs, lambda r: r['slice_dice'][s]))}"
                         for s in range(depth)] +
                        [fmt(mean_over(recs, lambda r: r["loss"]))])
    L += table(["arm", "iterations"] + [f"slice {s}" for s in range(depth)] + ["loss"], rows) + [""]

    L += ["**Training pseudo Dice per class and predicted / reference foreground, per direction "
          "step** (argmax of each direction's own logits; summed over the window):", ""]
    rows = []
    for arm, log in logs.items():
        for a, b in wins:
            recs = log["iters"][a:b]
            row = [arm, f"{a}-{b}"]
            for t in range(depth):
                conf = sum(r["conf"][(d, t)] for r in recs for d in (0, 1))
                pred = sum(r["fg"][(d, t)][0] for r in recs for d in (0, 1))
                ref = sum(r["fg"][(d, t)][1] for r in recs for d in (0, 1))
                row.append(" / ".join(fmt(float(x), 2) for x in dice_from(conf)) +
                           f"; {fmt(pred / max(ref, 1), 2)}")
            conf = sum(r["conf_out"] for r in recs)
            row.append(" / ".join(fmt(float(x), 2) for x in dice_from(conf)))
            rows.append(row)
    L += table(["arm", "iterations"] + [f"step {t}: Dice {'/'.join(classes)}; fg ratio"
                                        for t in range(depth)] + ["output: Dice"], rows) + [""]

    # 3. gradients
    labels = [c for c, _ in COMPONENTS]
    L += ["**Gradient norm per component** (before clipping; median over the window) and, "
          "in the second table, the relative update ||dw|| / ||w|| per step (median):", ""]
    for key, title in (("grad", "gradient norm"), ("update", "relative update")):
        rows = []
        for arm, log in logs.items():
            for a, b in wins:
                recs = log["iters"][a:b]
                rows.append([arm, f"{a}-{b}"] + [
                    fmt(float(np.median([r[key].get(c, np.nan) for r in recs])), 4)
                    for c in labels])
        L += [f"{title}:", ""] + table(["arm", "iterations"] + labels, rows) + [""]
    rows = []
    for arm, log in logs.items():
        for a, b in wins:
            recs = log["iters"][a:b]
            rows.append([arm, f"{a}-{b}", fmt(float(np.median([r["grad_total"] for r in recs])), 3),
                         fmt(float(np.mean([r["grad_total"] > CLIP for r in recs])), 2),
                         fmt(float(np.mean([r["gate_mean"] for r in recs])), 3)])
    L += table(["arm", "iterations", "total grad norm (median)", "share clipped",
                "mean gate"], rows) + [""]

    L += ["**Gradient reaching each step** (median over the window of the norm of the loss "
          "gradient at the decoder input and at the decoder's logits, mean of both directions) "
          "and at the encoder's stride-16 features per slice position:", ""]
    rows = []
    for arm, log in logs.items():
        for a, b in wins:
            recs = log["iters"][a:b]
            rows.append([arm, f"{a}-{b}"] + [
                f"{fmt(float(np.median([np.mean(r['grad_embed'][t]) for r in recs])), 4)} / "
                f"{fmt(float(np.median([np.mean(r['grad_logits'][t]) for r in recs])), 4)}"
                for t in range(depth)] + [
                fmt(float(np.median([r["grad_feat_slice"][s] for r in recs])), 4)
                for s in range(depth)])
    L += table(["arm", "iterations"] + [f"step {t}: decoder in / logits" for t in range(depth)] +
               [f"enc. slice {s}" for s in range(depth)], rows) + [""]

    # 4. features
    L += ["**Features the decoder receives** (stride 16, train mode; statistics over channels of "
          "per-channel mean / std over samples and positions; 'shift' = RMS over channels of the "
          "mean difference to step 0's decoder input in units of step 0's per-channel std; "
          "'sd ratio' = median per-channel std ratio to step 0's; 'cos to own slice' = mean "
          "cosine between each token and the same slice's raw feature token). Memory steps with "
          "the gate open receive the memory attention's output:", ""]
    rows = []
    for arm, log in logs.items():
        for a, b in dict.fromkeys((wins[0], wins[-1])):  # first and last window
            recs = log["iters"][a:b]
            for t in range(depth):
                def m(fn):
                    return mean_over(recs, fn)
                ref = lambda r: r["feat_embed"][0]
                row = [arm, f"{a}-{b}", t,
                       fmt(m(lambda r: r["feat_embed"][t]["rms"])),
                       fmt(m(lambda r: float(np.mean(np.abs(r["feat_embed"][t]["mu"]))))),
                       fmt(m(lambda r: float(np.mean(r["feat_embed"][t]["sd"])))),
                       fmt(m(lambda r: shift(r["feat_embed"][t], ref(r))["mean_shift_sd"])),
                       fmt(m(lambda r: shift(r["feat_embed"][t], ref(r))["sd_ratio"])),
                       fmt(m(lambda r: r["cos_embed_pix"][t])),
                       fmt(m(lambda r: shift(r["feat_pix"][t], r["feat_pix"][0])["mean_shift_sd"])),
                       fmt(m(lambda r: r["feat_pix"][t]["rms"])),
                       fmt(m(lambda r: r["feat_cond"][t]["rms"] if t else None)),
                       fmt(m(lambda r: r["cos_cond_pix"][t] if t else None))]
                rows.append(row)
    L += table(["arm", "iterations", "step", "decoder in: RMS", "mean abs channel mean",
                "mean channel std", "shift vs step 0", "sd ratio vs step 0", "cos to own slice",
                "raw features: shift vs step 0", "raw features: RMS",
                "memory attention out: RMS", "memory attention out: cos to own slice"],
               rows) + [""]

    # 5. masks
    L += ["**Union-foreground mask handed to the memory encoder** (1 - softmax background, "
          "x20 - 10; mean over the window; 'prob' = the foreground probability before scaling; "
          "Dice of prob > 0.5 against the reference foreground, summed over the window):", ""]
    rows = []
    for arm, log in logs.items():
        for a, b in wins:
            recs = log["iters"][a:b]
            for t in range(depth - 1):
                ms = [r["mask"][(d, t)] for r in recs for d in (0, 1) if (d, t) in r["mask"]]
                if not ms:
                    continue
                mm = lambda key: float(np.nanmean([x[key] for x in ms]))
                inter = sum(x["inter"] for x in ms)
                den = sum(x["hard_sum"] + x["gt_sum"] for x in ms)
                rows.append([arm, f"{a}-{b}", t, f"{fmt(min(x['min'] for x in ms), 2)} .. "
                             f"{fmt(max(x['max'] for x in ms), 2)}", fmt(mm("mean_prob")),
                             fmt(mm("prob_in_gt")), fmt(mm("prob_out_gt")), fmt(mm("frac_hard")),
                             fmt(mm("frac_gt")), fmt(2 * inter / max(den, 1))])
    L += table(["arm", "iterations", "step", "mask range", "mean prob", "prob on ref fg",
                "prob on ref bg", "share prob > 0.5", "share ref fg", "Dice vs ref fg"],
               rows) + [""]

    # 6. probes
    L += ["**Memory attention and encoder probes** (one fixed validation batch, eval mode, "
          "memory path run with its real inputs; relative change = ||a - b|| / ||b||):", ""]
    probe_rows = [["initial weights", init_probe]] + [
        [f"after `{arm}`", log["probe_end"]] for arm, log in logs.items()]
    keys = [("dropout_rel_change", "dropout on vs off"),
            ("other_memory_rel_change", "memories of another sample"),
            ("zero_memory_rel_change", "zero memories"),
            ("cos_out_curr", "cos(output, own slice's input)"),
            ("mem_vs_empty_mask", "memory: mask -10 everywhere"),
            ("mem_vs_full_mask", "memory: mask +10 everywhere"), ("mem_rms", "memory RMS")]
    L += table(["weights"] + [label for _, label in keys],
               [[name] + [fmt(p[key]) for key, _ in keys] for name, p in probe_rows]) + [""]

    # 7. augmentation
    a = aug
    L += ["**nnU-Net's augmentation of the runs** (the trainer's own training transforms; "
          f"dummy 2D: {a['dummy_2d']}, initial patch {a['initial_patch']}, mirror axes "
          f"{tuple(int(x) for x in a['mirror_axes'])}; {a['samples']} synthetic stacks per test):",
          ""]
    L += table(["check", "measured"], [
        ["A, same pattern on every slice: label identical on all slices after the transforms",
         f"{a['same_label_frac']:.3f} of stacks"],
        ["A: min over slices of the image correlation with slice 0, median (5th percentile)",
         f"{a['img_corr_min_median']:.3f} ({a['img_corr_min_p05']:.3f})"],
        ["A: image-label correlation per slice, median", f"{a['img_label_corr_median']:.3f}"],
        ["B, pattern on slice 1 only: label on exactly one slice after the transforms",
         f"{a['one_slice_frac']:.3f} of stacks"],
        ["B: that slice is D-1-1 (the run mirrored along the slice axis)",
         f"{a['flipped_frac']:.3f} of stacks"],
        ["B: image correlation of the labelled slice with its neighbour, median",
         f"{a['neighbour_corr_median']:.3f}"],
        ["B: stacks whose neighbour slice correlates > 0.3 with the labelled one (image mixed "
         "across slices)", f"{a['neighbour_corr_gt_0_3']:.3f}"],
        [f"C, real batches ({a['aug_patches']} patches): Dice of the foreground of adjacent "
         "slices (pooled)", f"{a['aug_adjacent_fg_dice']:.3f}"],
        [f"C, preprocessed volumes ({a['raw_cases']} cases): the same",
         f"{a['raw_adjacent_fg_dice']:.3f}"],
        ["C: share of voxels foreground in two adjacent slices with different labels, batches / "
         "volumes", f"{a['aug_flip_frac']:.4f} / {a['raw_flip_frac']:.4f}"],
    ]) + [""]
    first = next(iter(logs.values()))["iters"][0]
    L += [f"Hook check: the recorded per-direction logits reproduce the network's output within "
          f"{first['reconstruction_err']:.1e}.", ""]
    return "\n".join(L)


# ----------------------------------------------------------------------------- main

def run(a, argv: List[str]) -> str:
    require_env("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
    os.environ["nnUNet_n_proc_DA"] = "0"  # augmentation in this process, reproducible
    torch.set_num_threads(a.threads)
    seed_all(a.seed)
    trainer = make_trainer(a.d, a.trainer, a.plans, a.lr)
    seed_all(a.seed)
    loader_tr, loader_val = trainer.get_dataloaders()
    batches = draw_batches(loader_tr, a.iterations)
    val = draw_batches(loader_val, a.val_batches)
    net = trainer.network
    init_state = copy.deepcopy(net.state_dict())
    k = trainer.label_manager.num_segmentation_heads
    labels = trainer.dataset_json["labels"]
    names = [n for n, v in sorted(labels.items(), key=lambda kv: kv[1]) if n != "background"]
    start = time.process_time()
    aug = augmentation_checks(trainer, batches, a.aug_samples, a.seed)
    print(f"augmentation checks: {time.process_time() - start:.1f} CPU s", flush=True)
    net.load_state_dict(init_state)
    init_probe = probe(net, val[0])
    logs = {}
    for arm in a.arms:
        logs[arm] = train_arm(arm, trainer, init_state, batches, val, a.iterations, a.lr,
                              a.eval_every, a.seed, k)
        print(f"{arm}: {logs[arm]['cpu_s']:.0f} CPU s, val Dice "
              f"{[round(float(x), 3) for x in logs[arm]['evals'][a.iterations]['dice']]}",
              flush=True)
    meta = dict(iterations=a.iterations, depth=batches[0]["data"].shape[2], num_classes=k,
                class_names=names, dataset=trainer.plans_manager.dataset_name, argv=argv,
                machine=machine_info("cpu"), seed=a.seed, threads=a.threads, trainer=a.trainer,
                lr=a.lr,
                patch=list(batches[0]["data"].shape))
    text = report(logs, aug, init_probe, meta)
    if a.o:
        with open(a.o, "w") as f:
            f.write(text + "\n")
    return text


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-d", required=True, help="dataset name or id, planned with 2d_mem")
    p.add_argument("-tr", dest="trainer", default="SAM2DualAdapterTrainer")
    p.add_argument("-p", dest="plans", default="nnSAM2Plans")
    p.add_argument("--iterations", type=int, default=300, help="training iterations per arm")
    p.add_argument("--arms", nargs="+", choices=ARMS, default=["closed", "open"])
    p.add_argument("--lr", type=float, default=2e-3,
                   help="initial learning rate (the random-init CPU trainers' 2e-3)")
    p.add_argument("--eval_every", type=int, default=50)
    p.add_argument("--val_batches", type=int, default=4)
    p.add_argument("--aug_samples", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("-o", help="markdown file to write the report to")
    print(run(p.parse_args(argv), argv))


if __name__ == "__main__":
    main()
