"""Shared CLI plumbing: logging set-up and turning known errors into one-line messages."""
import logging
import sys
import warnings
from typing import Callable

from nnsam2.network.sam2_weights import CheckpointError
from nnsam2.utils.nnunet_env import UsageError
from nnsam2.training.run_settings import MissingCheckpointError
from nnsam2.utils.process_guard import guarded

USER_ERRORS = (UsageError, CheckpointError, MissingCheckpointError, FileNotFoundError)


def run_cli(prog: str, fn: Callable[[], None]) -> None:
    """Run ``fn``; a user error prints ``prog: error: ...`` and exits with status 1.

    Its worker processes are stopped with it, even when it is killed (see process_guard).
    """
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # nnU-Net's trainer search imports every trainer module, timm among them, whose deprecated
    # torch.jit.interface prints two lines of warning before any of our output
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.interface` is deprecated",
                            category=FutureWarning)
    try:
        with guarded(prog):
            fn()
    except USER_ERRORS as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        sys.exit(1)
