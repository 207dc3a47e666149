"""First-GPU acceptance: one command that checks, on the machine it runs on, what the CPU test
suite cannot (precision policy, deformable convolutions, the planner's memory estimate, speed,
batched prediction, the commands end to end, ``torch.compile``) and writes a PASS/FAIL table.

``run_acceptance(...)`` runs every check of :func:`plan` and returns the rows; a check that
fails or crashes is a FAIL row (the error in one line, the traceback in the log) and the others
still run. A check that needs CUDA is a ``SKIP (cpu)`` row on a CPU. See
documentation/benchmarks.md, "First-GPU acceptance".
"""
import importlib
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from nnsam2.benchmark.acceptance.core import FULL, QUICK, Context, Outcome, Settings
from nnsam2.benchmark.machine import describe, machine_info
from nnsam2.network.deform_conv import IMPLS
from nnsam2.network.precision import policy_for

logger = logging.getLogger(__name__)

VARIANTS = ("none", "none_peg", "hp", "lw")
# Check groups in the order they run; --acceptance_skip takes these names.
GROUPS = ("environment", "dcn", "precision", "memory_plan", "dcn_speed", "train_step",
          "prediction", "end_to_end", "2d_mem", "compile")


@dataclass(frozen=True)
class Check:
    """One row of the table: ``target`` names the function (``module.function`` of this
    package) that returns its :class:`Outcome` from ``(ctx, **params)``. It is imported when the
    check runs: a module that does not import is that check's FAIL, not the end of the run."""

    group: str
    name: str
    target: str
    params: Dict[str, str] = field(default_factory=dict)
    cuda_only: bool = False

    def function(self) -> Callable[..., Outcome]:
        module, name = self.target.rsplit(".", 1)
        return getattr(importlib.import_module(f"{__name__}.{module}"), name)


@dataclass(frozen=True)
class Row:
    group: str
    name: str
    status: str  # PASS, FAIL or SKIP (why)
    figure: str
    note: str
    seconds: float


def plan(settings: Settings) -> List[Check]:
    """Every check, in :data:`GROUPS` order."""
    return [
        Check("environment", "environment", "environment.check_environment"),
        *[Check("dcn", f"DCN {impl} parity", "deform.check_parity", dict(impl=impl))
          for impl in IMPLS],
        Check("precision", "precision audit", "training.check_precision_audit"),
        *[Check("memory_plan", f"memory plan {size}", "gpu_memory.check_memory_plan",
                dict(size=size), cuda_only=True) for size in settings.memory_sizes],
        *[Check("dcn_speed", f"DCN {impl} speed", "deform.check_speed", dict(impl=impl))
          for impl in IMPLS],
        *[Check("train_step", f"training step {v}", "training.check_train_step",
                dict(variant=v)) for v in VARIANTS],
        Check("prediction", "batched vs patch-at-a-time", "prediction.check_prediction"),
        Check("end_to_end", "end to end", "end_to_end.check_end_to_end"),
        Check("2d_mem", "2d_mem fwd + bwd", "mem_network.check_2d_mem"),
        Check("compile", "torch.compile training", "training.check_compile", cuda_only=True),
    ]


def one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = f"{type(error).__name__}: {lines[0] if lines else ''}"
    return text if len(text) <= 200 else text[:197] + "..."


def run_check(check: Check, ctx: Context, skip: Sequence[str]) -> Row:
    if check.group in skip:
        return Row(check.group, check.name, "SKIP (asked)", "", "--acceptance_skip", 0.0)
    if check.cuda_only and ctx.device.type != "cuda":
        return Row(check.group, check.name, "SKIP (cpu)", "", "needs CUDA", 0.0)
    logger.info("acceptance: %s", check.name)
    start = time.perf_counter()
    try:
        outcome = check.function()(ctx, **check.params)
    except Exception as error:  # a crash is this check's FAIL, never the end of the run
        logger.exception("acceptance check %r crashed", check.name)
        outcome = Outcome(False, "", one_line(error))
    finally:
        if ctx.device.type == "cuda":
            torch.cuda.empty_cache()
    status = "PASS" if outcome.passed else "FAIL"
    logger.info("acceptance: %s %s %s", check.name, status, outcome.figure)
    return Row(check.group, check.name, status, outcome.figure, outcome.note,
               time.perf_counter() - start)


def run_acceptance(device: str = "cuda", quick: bool = False, skip: Sequence[str] = (),
                   markdown_path: Optional[str] = None,
                   command: str = "") -> Tuple[List[Row], str]:
    """Run every check on ``device``; ``quick``: toy sizes and tiny patches (the CPU dry run);
    ``skip``: groups of :data:`GROUPS` not to run; ``command``: the command line, for the
    table's header. Returns (rows, the Markdown table), which is written to ``markdown_path``."""
    unknown = set(skip) - set(GROUPS)
    if unknown:
        raise ValueError(f"unknown acceptance checks {sorted(unknown)}; choose from {GROUPS}")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but torch sees no CUDA device")
    ctx = Context(dev, policy_for(dev), QUICK if quick else FULL, quick)
    start = time.perf_counter()
    rows = [run_check(check, ctx, skip) for check in plan(ctx.settings)]
    text = format_markdown(rows, ctx, command, time.perf_counter() - start)
    if markdown_path:
        with open(markdown_path, "w") as f:
            f.write(text)
    return rows, text


def failed(rows: Sequence[Row]) -> bool:
    return any(r.status == "FAIL" for r in rows)


def format_markdown(rows: Sequence[Row], ctx: Context, command: str, seconds: float) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    counts = {s: sum(r.status.startswith(s) for r in rows) for s in ("PASS", "FAIL", "SKIP")}
    lines = [f"Acceptance run{' (quick)' if ctx.quick else ''} on "
             f"{describe(machine_info(str(ctx.device)))}; precision policy {ctx.policy.name}; "
             f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; {seconds:.0f} s in all; "
             + ", ".join(f"{n} {s}" for s, n in counts.items()) + ".",
             ""]
    if command:
        lines[0:0] = [f"`{command}`", ""]
    lines += ["| # | check | result | figure | note | s |", "|---|---|---|---|---|---|"]
    lines += [f"| {GROUPS.index(r.group) + 1} | {cell(r.name)} | {r.status} | {cell(r.figure)} "
              f"| {cell(r.note)} | {r.seconds:.1f} |" for r in rows]
    return "\n".join(lines) + "\n"
