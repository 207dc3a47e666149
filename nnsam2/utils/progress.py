"""When to draw progress bars: for a person watching a terminal, never into logs or CI output."""
import sys


def show_progress(disabled: bool = False) -> bool:
    """Off with ``--disable_progress_bar`` / ``--no_pbar`` or when stderr is not a terminal."""
    return not disabled and sys.stderr.isatty()
