"""Checks shared by the dataset-converter tests (``tests/test_dataset_conversion_*.py``)."""
from pathlib import Path
from typing import Callable, Sequence

import pytest

from dataset_conversion.common import ConversionError


def expect_conversion_error(convert: Callable, main: Callable, tmp_path: Path, src: Path, match: str, capsys,
                            cli_args: Sequence[str] = (), **convert_kwargs) -> str:
    """A converter refuses ``src`` both ways and writes nothing; returns the CLI's stderr.

    ``convert(src, raw_root=tmp_path / "raw", **convert_kwargs)`` must raise a :class:`ConversionError`
    matching ``match``; ``main(["-i", src, "-o", raw, *cli_args])`` must exit with 1; afterwards
    ``raw`` holds nothing (no dataset folder, no half-written ``.tmp_`` folder). Bind the first two
    arguments per converter, e.g. ``functools.partial(expect_conversion_error, convert_acdc, main)``.
    """
    raw = tmp_path / "raw"
    with pytest.raises(ConversionError, match=match):
        convert(src, raw_root=raw, **convert_kwargs)
    assert main(["-i", str(src), "-o", str(raw), *cli_args]) == 1
    assert not raw.exists() or list(raw.iterdir()) == []  # nothing half-written
    return capsys.readouterr().err
