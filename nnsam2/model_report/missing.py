""""Not available": how a report section says that its input is missing instead of crashing.

A model folder is often incomplete (folds still training, no find_best_configuration yet, the raw
data on another machine). Each section is collected on its own; whatever stops one becomes a
:class:`Missing` with the reason, shown in the report as "not available (reason)".
"""
import logging
from dataclasses import dataclass
from typing import Any, Callable

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Missing:
    reason: str

    def __str__(self) -> str:
        return f"not available ({self.reason})"


def is_missing(value: Any) -> bool:
    return isinstance(value, Missing)


def collect(name: str, fn: Callable[[], Any]) -> Any:
    """``fn()``, or a Missing naming what went wrong: one broken piece never costs the report.

    Anything unexpected is logged with its type, so a bug still shows in the command's output.
    """
    try:
        return fn()
    except FileNotFoundError as e:
        return Missing(f"{e.filename} not found" if e.filename else str(e))
    except Exception as e:  # noqa: BLE001 - a report of a damaged folder must still be written
        logger.warning("report: %s not available: %s: %s", name, type(e).__name__, e)
        return Missing(f"{type(e).__name__}: {e}")
