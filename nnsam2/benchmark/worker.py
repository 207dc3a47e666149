"""Measures one job. Meant to run in a fresh process per job (see ``runner``), so that the CPU
peak RSS belongs to that model alone; importing this module imports everything a job needs."""
import logging
import os
from dataclasses import asdict

import torch

from nnsam2.benchmark import measure
from nnsam2.benchmark.jobs import Job
from nnsam2.benchmark.nnunet_ref import build_unet
from nnsam2.benchmark.paired import PairJob, run_pair
from nnsam2.benchmark.variants import (Built, build_sam2_variant, build_sam_vit_b, input_shape,
                                       slices_per_input)

logger = logging.getLogger(__name__)


def build(job: Job) -> Built:
    if job.variant == "nnunet_unet":
        model = build_unet(job.unet, job.channels, job.classes)
        how = "plans" if job.unet.source.startswith("plans") else "nnU-Net planner"
        padded = "" if job.unet.patch == job.patch else (
            f", nnU-Net pads {job.patch} to {job.unet.patch}")
        return Built(model, False, f"{job.unet.class_name.rsplit('.', 1)[-1]} via {how}{padded}")
    if job.variant == "sam_vit_b":
        return build_sam_vit_b()
    return build_sam2_variant(job.variant, job.size, job.channels, job.classes)


def job_record(job) -> dict:
    record = asdict(job)
    unet = record.pop("unet", None)
    record["unet_source"] = unet["source"] if unet else None
    record["unet_arch"] = ({"class_name": unet["class_name"], **unet["kwargs"]}
                           if unet else None)
    return record


def _inference(row: dict, model, job: Job, device: torch.device) -> None:
    shape = input_shape(job.variant, job.channels, job.input_patch)
    for batch in sorted({1, job.batch_size}):
        x = torch.randn(batch, *shape, device=device)
        row[f"latency_bs{'1' if batch == 1 else 'N'}"] = measure.inference_latency(
            model, x, warmup=job.warmup, repeats=job.repeats)
    if job.batch_size == 1:
        row["latency_bsN"] = row["latency_bs1"]


def _training(row: dict, model, job: Job, device: torch.device) -> None:
    shape = input_shape(job.variant, job.channels, job.input_patch)
    x = torch.randn(job.batch_size, *shape, device=device)
    target = torch.randint(0, job.classes, (job.batch_size, *shape[1:]), device=device)
    row["train_step"] = measure.train_step_time(model, x, target, warmup=job.warmup,
                                                repeats=job.repeats)


def run_job(job: Job, isolated: bool = True) -> dict:
    """Parameters, GFLOPs, latency (batch 1 and N), training step and peak memory of one job.

    Peak memory: CUDA ``max_memory_allocated`` per phase; CPU the process's peak RSS
    (``ru_maxrss``) after inference and after training, only when ``isolated`` (a fresh process
    per job); ``rss_start_mib`` is the RSS before the model was built.
    """
    torch.manual_seed(0)
    if job.threads:
        torch.set_num_threads(job.threads)
    device = torch.device(job.device)
    row = job_record(job)
    row.update(torch_threads=torch.get_num_threads(), rss_start_mib=measure.current_rss_mib(),
               loadavg_start=os.getloadavg()[0],
               isolated=isolated, autocast="bf16" if device.type == "cuda" else "none (fp32)")
    built = build(job)
    model = built.model.to(device)
    row.update(measure.count_parameters(model), note=built.note,
               inference_only=built.inference_only)
    shape = input_shape(job.variant, job.channels, job.input_patch)
    flops = measure.forward_gflops(model, (1, *shape))
    row["gflops"] = flops["all"]
    reference = job.variant in ("nnunet_unet", "sam_vit_b")
    row["gflops_by_component"] = None if reference else flops
    measure.reset_peak_memory(device)
    _inference(row, model, job, device)
    row["peak_infer_mib"] = _peak(device, isolated)
    row["train_step"] = row["peak_train_mib"] = None
    if job.train and not built.inference_only:
        measure.reset_peak_memory(device)
        _training(row, model, job, device)
        row["peak_train_mib"] = _peak(device, isolated)
    row["loadavg_end"] = os.getloadavg()[0]  # before the (slow on CPU) bf16 dtype check
    row["autocast_bf16_ops"] = None if reference else measure.autocast_heavy_op_dtypes(
        model, torch.randn(1, *shape, device=device))
    return _per_slice(row, slices_per_input(job.variant))


PER_SLICE = ("latency_bs1", "latency_bsN", "train_step")


def _per_slice(row: dict, slices: int) -> dict:
    """Times and GFLOPs of a multi-slice input divided by its slices (comparable with the 2D
    variants' rows); the per-input values stay under ``per_input``. Peak memory stays per input."""
    row["slices_per_input"] = slices
    if slices == 1:
        return row
    row["per_input"] = {k: row[k] for k in PER_SLICE + ("gflops",)}
    for key in PER_SLICE:
        if row[key] is not None:
            row[key] = {k: v / slices if k.endswith("_ms") else v for k, v in row[key].items()}
    row["gflops"] /= slices
    row["gflops_by_component"] = {k: v / slices for k, v in row["gflops_by_component"].items()}
    return row


def run_any(job, isolated: bool = True) -> dict:
    """A :class:`Job` (one model) or a :class:`PairJob` (a paired latency comparison)."""
    return run_pair(job) if isinstance(job, PairJob) else run_job(job, isolated)


def _peak(device: torch.device, isolated: bool):
    if device.type == "cpu" and not isolated:
        return None  # ru_maxrss of a shared process says nothing about this model
    return measure.peak_memory_mib(device)
