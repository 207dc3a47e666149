"""Every command's output path checked before any work starts, each error naming the user's path.

An output folder must not be an existing file, nor lie below one, nor lie inside (or be) one of
the command's input folders; an output file must not be a folder. In both cases the nearest
existing folder above must accept a new file: that is tried (an unnamed temporary file, gone at
once), since ``os.access`` says yes to root on read-only or virtual file systems such as /proc.
Nothing is created.
"""
import os
import tempfile
from typing import Sequence

from nnsam2.utils.nnunet_env import UsageError


def _existing_parent(path: str) -> str:
    """The nearest ancestor of the absolute ``path`` that exists (a file or a folder)."""
    parent = os.path.dirname(path)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    return parent


def _check_writable(what: str, path: str, parent: str, option: str) -> None:
    if not os.path.isdir(parent):
        raise UsageError(f"{what} {path} cannot be created: {parent} is a file, not a folder; "
                         f"choose another {option}")
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as e:
        raise UsageError(f"{what} {path} cannot be written: no new file can be made in {parent} "
                         f"({e.strerror or e}); choose another {option}") from None


def _inside(path: str, folder: str) -> bool:
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def check_output_folder(folder: str, *, option: str = "-o", inputs: Sequence[str] = ()) -> str:
    """Refuse an output folder that is a file, cannot be created or written, or is inside (or
    equal to) one of the ``inputs`` folders. Returns ``folder``."""
    path = os.path.abspath(folder)
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"output folder {folder} exists and is not a folder; choose another "
                         f"{option}")
    for source in inputs:
        if _inside(path, source):
            raise UsageError(f"output folder {folder} is inside (or is) the input folder "
                             f"{source}; the outputs would mix with or overwrite the inputs: "
                             f"choose another {option}")
    _check_writable("output folder", folder, path if os.path.isdir(path) else _existing_parent(path),
                    option)
    return folder


def check_output_file(file: str, *, option: str = "-o") -> str:
    """Refuse an output file that is a folder or whose folder cannot be created or written.
    Returns ``file``."""
    path = os.path.abspath(file)
    if os.path.isdir(path) or file.endswith(("/", os.sep)):
        raise UsageError(f"output file {file} is a folder; give a file name as {option}")
    _check_writable("output file", file, _existing_parent(path), option)
    return file
