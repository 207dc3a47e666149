"""Shared CLI plumbing: logging set-up and turning known errors into one-line messages."""
import logging
import sys
from typing import Callable

from nnsam2.network.checkpoint import CheckpointError
from nnsam2.nnunet.environment import UsageError
from nnsam2.nnunet.init_policy import MissingCheckpointError

USER_ERRORS = (UsageError, CheckpointError, MissingCheckpointError, FileNotFoundError)


def run_cli(prog: str, fn: Callable[[], None]) -> None:
    """Run ``fn``; a user error prints ``prog: error: ...`` and exits with status 1."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        fn()
    except USER_ERRORS as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        sys.exit(1)
