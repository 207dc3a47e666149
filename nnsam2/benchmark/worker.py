"""Runs the jobs one after another (never concurrently: they would disturb each other's timings),
each in a fresh process forked from a ``forkserver`` that has imported this module (torch, sam2,
nnU-Net and everything a job needs) once, so that a job's CPU peak RSS covers only the shared
imports plus its one model."""
import logging
import multiprocessing
import os
import traceback
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from typing import Iterable, List

import torch
from tqdm import tqdm

from nnsam2.benchmark import measure
from nnsam2.benchmark.jobs import Job
from nnsam2.benchmark.nnunet_ref import build_unet
from nnsam2.benchmark.paired import PairJob, run_pair
from nnsam2.benchmark.variants import (MEM_SLICES, Built, build_sam2_variant, build_sam_vit_b,
                                       input_shape)
from nnsam2.network.summary import flops_by_component

logger = logging.getLogger(__name__)

PRELOAD = ["nnsam2.benchmark.worker"]  # this module


def _label(job) -> str:
    size = f" {job.size}" if job.size else ""
    other = f" vs {job.reference}" if isinstance(job, PairJob) else ""
    patch = job.patch if isinstance(job, PairJob) else job.input_patch
    return f"{job.variant}{other}{size} {patch[0]}x{patch[1]}"


def _failed(job, error: BaseException) -> dict:
    logger.error("%s failed: %s", _label(job), error)
    logger.debug("".join(traceback.format_exception(error)))
    return {**job_record(job), "error": f"{type(error).__name__}: {error}"}


def run_jobs(jobs: Iterable, *, isolate: bool = True, progress: bool = True) -> List[dict]:
    """Measure every job (:class:`Job` or :class:`PairJob`), each in a fresh process when
    ``isolate``; a failing job gives a row with an ``error`` entry instead."""
    jobs = list(jobs)
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    rows = []
    with tqdm(total=len(jobs), desc="nnsam2_benchmark", unit="job", disable=not progress) as bar:
        for job in jobs:
            bar.set_postfix_str(_label(job))
            try:
                if isolate:  # one new pool per job: a crashed (OOM-killed) job breaks only itself
                    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
                        rows.append(pool.submit(run_any, job, True).result())
                else:
                    rows.append(run_any(job, isolated=False))
            except Exception as error:
                rows.append(_failed(job, error))
            bar.update()
    return rows


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
    record["unet_arch"] = {"class_name": unet["class_name"], **unet["kwargs"]} if unet else None
    return record


def run_job(job: Job, isolated: bool = True) -> dict:
    """Parameters, GFLOPs, latency (batch 1 and N), training step and peak memory (CUDA: per
    phase; CPU: peak RSS after each phase, only when ``isolated``) of one job."""
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
    flops = flops_by_component(model, (1, *shape))
    row["gflops"] = flops["all"]
    reference = job.variant in ("nnunet_unet", "sam_vit_b")
    row["gflops_by_component"] = None if reference else flops
    measure.reset_peak_memory(device)
    for batch in sorted({1, job.batch_size}):
        forward = measure.inference(model, torch.randn(batch, *shape, device=device))
        row[f"latency_bs{'1' if batch == 1 else 'N'}"] = measure.time_repeated(
            forward, device, warmup=job.warmup, repeats=job.repeats)
    row.setdefault("latency_bsN", row["latency_bs1"])  # batch size 1
    row["peak_infer_mib"] = measure.peak_memory_mib(device, isolated)
    row["train_step"] = row["peak_train_mib"] = None
    if job.train and not built.inference_only:
        measure.reset_peak_memory(device)
        x = torch.randn(job.batch_size, *shape, device=device)
        target = torch.randint(0, job.classes, (job.batch_size, *shape[1:]), device=device)
        row["train_step"] = measure.time_repeated(measure.make_train_step(model, x, target),
                                                  device, warmup=job.warmup, repeats=job.repeats)
        row["peak_train_mib"] = measure.peak_memory_mib(device, isolated)
    row["loadavg_end"] = os.getloadavg()[0]  # before the (slow on CPU) bf16 dtype check
    row["autocast_bf16_ops"] = None if reference else measure.autocast_heavy_op_dtypes(
        model, torch.randn(1, *shape, device=device))
    return _per_slice(row, MEM_SLICES if job.variant == "mem" else 1)


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
