"""Costs of the adapted SAM2 variants against frozen SAM2, nnU-Net's U-Net and SAM ViT-B.

``benchmark(...)`` measures parameters, forward GFLOPs, inference latency (batch 1 and the plans'
batch size), one training step and peak memory of every variant, each in a fresh process, and
returns (and optionally writes) the result. See documentation/benchmarks.md.
"""
import logging
from typing import Optional, Sequence

from nnsam2.benchmark.analysis import check_targets, compute_ratios
from nnsam2.benchmark.jobs import make_jobs, make_pair_jobs, resolve_settings
from nnsam2.benchmark.machine import machine_info
from nnsam2.benchmark.report import format_markdown, format_text, write_json, write_markdown
from nnsam2.benchmark.runner import run_jobs
from nnsam2.benchmark.variants import ALL_VARIANTS, SAM2_VARIANTS

logger = logging.getLogger(__name__)

__all__ = ["benchmark", "format_text", "format_markdown", "ALL_VARIANTS", "SAM2_VARIANTS"]


def benchmark(*, sizes: Optional[Sequence[str]] = None,
              patches: Optional[Sequence[Sequence[int]]] = None, dataset: Optional[str] = None,
              plans: str = "nnSAM2Plans", configuration: str = "2d",
              channels: Optional[int] = None, classes: Optional[int] = None,
              batch_size: Optional[int] = None, variants: Optional[Sequence[str]] = None,
              device: str = "cpu", warmup: int = 3, repeats: int = 10, train: bool = True,
              threads: Optional[int] = None, paired: bool = True, isolate: bool = True,
              progress: bool = True, json_path: Optional[str] = None,
              markdown_path: Optional[str] = None, plot_path: Optional[str] = None) -> dict:
    """Measure every variant at every SAM2 size and patch; returns the result dict.

    Args:
        sizes: SAM2 sizes (default: the plans' ``sam2`` size, else ``tiny``).
        patches: (H, W) patches, multiples of 32 (default: the plans' 2D patch).
        dataset / plans / configuration: read patch, batch size, channels and classes from
            ``nnUNet_preprocessed/<dataset>/<plans>.json`` through nnU-Net's PlansManager.
        channels / classes / batch_size: without plans (or to override them); defaults 1, 2, 2.
        variants: subset of :data:`ALL_VARIANTS` (default: all but ``none_peg``; ``sam_vit_b``
            only when ``segment-anything`` is importable).
        device: ``cpu`` or ``cuda`` (bf16 autocast on CUDA).
        warmup / repeats: untimed and timed runs per measurement.
        train: also time one training step (forward + backward + AdamW) at the batch size.
        threads: torch intra-op threads in every job (default: torch's own default).
        paired: also time the target pairs (lw_reparam vs lw / none / none_peg, lora_merged vs
            lora) alternately in one process each; the targets then use those paired ratios.
        isolate: one fresh process per job (needed for honest per-model CPU peak RSS).
        progress: show a tqdm progress bar.
        json_path / markdown_path / plot_path: files to write.

    Returns:
        ``{"machine", "settings", "rows", "paired", "ratios", "targets"}``; each row is one
        model, each ``paired`` entry one alternating comparison.
    """
    if device.startswith("cuda"):
        import torch
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda asked for, but torch sees no CUDA device")
    settings = resolve_settings(sizes=sizes, patches=patches, dataset=dataset, plans=plans,
                                configuration=configuration, channels=channels,
                                classes=classes, batch_size=batch_size, variants=variants,
                                device=device, warmup=warmup, repeats=repeats, train=train,
                                threads=threads, paired=paired)
    jobs, pairs = make_jobs(settings), make_pair_jobs(settings)
    logger.info("benchmarking %d models and %d pairs on %s", len(jobs), len(pairs), device)
    measured = run_jobs(jobs + pairs, isolate=isolate, progress=progress)
    rows, paired_rows = measured[:len(jobs)], measured[len(jobs):]
    result = dict(machine=machine_info(device, threads), settings=settings.as_dict(), rows=rows,
                  paired=paired_rows, ratios=compute_ratios(rows),
                  targets=check_targets(rows, paired_rows))
    if json_path:
        write_json(result, json_path)
    if markdown_path:
        write_markdown(result, markdown_path)
    if plot_path:
        from nnsam2.benchmark.plot import write_plot
        write_plot(result, plot_path)
    return result
