"""Runs jobs one after another, each in a fresh process, with a progress bar.

Processes come from a ``forkserver`` that has imported torch, sam2, nnU-Net and this package
once; each job is forked from it into a new process, so a job starts in well under a
second and its peak RSS (``ru_maxrss``) covers only the shared imports plus that one model.
Jobs never run concurrently: they would disturb each other's timings.
"""
import logging
import multiprocessing
import traceback
from concurrent.futures import ProcessPoolExecutor
from typing import Iterable, List

from tqdm import tqdm

from nnsam2.benchmark.paired import PairJob

logger = logging.getLogger(__name__)

PRELOAD = ["nnsam2.benchmark.worker"]


def _label(job) -> str:
    size = f" {job.size}" if job.size else ""
    other = f" vs {job.reference}" if isinstance(job, PairJob) else ""
    patch = job.patch if isinstance(job, PairJob) else job.input_patch
    return f"{job.variant}{other}{size} {patch[0]}x{patch[1]}"


def _failed(job, error: BaseException) -> dict:
    from nnsam2.benchmark.worker import job_record

    logger.error("%s failed: %s", _label(job), error)
    logger.debug("".join(traceback.format_exception(error)))
    return {**job_record(job), "error": f"{type(error).__name__}: {error}"}


def _run_isolated(jobs: List, bar: tqdm) -> List[dict]:
    from nnsam2.benchmark.worker import run_any

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    rows = []
    for job in jobs:
        bar.set_postfix_str(_label(job))
        try:  # a new one-process pool per job: a crashed (e.g. OOM-killed) job breaks only its own
            with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
                rows.append(pool.submit(run_any, job, True).result())
        except Exception as error:
            rows.append(_failed(job, error))
        bar.update()
    return rows


def _run_in_process(jobs: List, bar: tqdm) -> List[dict]:
    from nnsam2.benchmark.worker import run_any

    rows = []
    for job in jobs:
        bar.set_postfix_str(_label(job))
        try:
            rows.append(run_any(job, isolated=False))
        except Exception as error:
            rows.append(_failed(job, error))
        bar.update()
    return rows


def run_jobs(jobs: Iterable, *, isolate: bool = True, progress: bool = True) -> List[dict]:
    """Measure every job (:class:`Job` or :class:`PairJob`); a failing job gives a row with an
    ``error`` entry instead."""
    jobs = list(jobs)
    with tqdm(total=len(jobs), desc="nnsam2_benchmark", unit="job", disable=not progress) as bar:
        return _run_isolated(jobs, bar) if isolate else _run_in_process(jobs, bar)
