"""Costs of the adapted SAM2 variants against frozen SAM2, nnU-Net's U-Net and SAM ViT-B.

``benchmark(...)`` measures every variant, each in a fresh process, and returns (and optionally
writes) the result. See documentation/benchmarks.md.
"""
import logging
from typing import Optional

from nnsam2.benchmark.analysis import compare_pairs, compute_ratios, extra_fp32_ops
from nnsam2.benchmark.jobs import make_jobs, make_pair_jobs, resolve_settings
from nnsam2.benchmark.machine import machine_info
from nnsam2.benchmark.tables import format_markdown, format_text, write_files
from nnsam2.benchmark.variants import ALL_VARIANTS, SAM2_VARIANTS
from nnsam2.benchmark.worker import run_jobs

logger = logging.getLogger(__name__)

__all__ = ["benchmark", "format_text", "format_markdown", "ALL_VARIANTS", "SAM2_VARIANTS"]


def benchmark(*, isolate: bool = True, progress: bool = True, json_path: Optional[str] = None,
              markdown_path: Optional[str] = None, plot_path: Optional[str] = None,
              **options) -> dict:
    """Measure every variant at every SAM2 size and patch; returns the result dict.

    ``options`` are those of :func:`~nnsam2.benchmark.jobs.resolve_settings` (sizes, patches,
    plans, variants, device, timing, pairing); ``isolate``: one fresh process per job (needed for
    honest per-model CPU peak RSS); ``progress``: a tqdm progress bar; the paths: files to write.

    Returns ``{"machine", "settings", "rows", "paired", "ratios", "comparisons",
    "extra_fp32_ops"}``: each row is one model, each ``paired`` entry one alternating
    measurement, each ``comparisons`` entry one compared pair's paired and separate ratio.
    """
    if options.get("device", "cpu").startswith("cuda"):
        import torch
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda asked for, but torch sees no CUDA device")
    settings = resolve_settings(**options)
    jobs, pairs = make_jobs(settings), make_pair_jobs(settings)
    logger.info("benchmarking %d models and %d pairs on %s", len(jobs), len(pairs),
                settings.device)
    measured = run_jobs(jobs + pairs, isolate=isolate, progress=progress)
    rows, paired_rows = measured[:len(jobs)], measured[len(jobs):]
    result = dict(machine=machine_info(settings.device, settings.threads),
                  settings=settings.as_dict(), rows=rows, paired=paired_rows,
                  ratios=compute_ratios(rows), comparisons=compare_pairs(rows, paired_rows),
                  extra_fp32_ops=extra_fp32_ops(rows))
    write_files(result, json_path, markdown_path)
    if plot_path:
        from nnsam2.benchmark.plot import write_plot
        write_plot(result, plot_path)
    return result
