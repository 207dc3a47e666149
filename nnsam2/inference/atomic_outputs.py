"""Prediction outputs that are complete or absent, never half-written.

nnU-Net's export (``export_prediction_from_logits``, in a spawned worker) writes ``CASE.npz`` and
``CASE.pkl`` (with ``--save_probabilities``) and then the segmentation ``CASE<ending>`` in place,
and ``--continue_prediction`` skips every case whose files exist, so a kill during a write left a
truncated file that was never redone. Here:

* the segmentation goes through a temporary name and is renamed into place
  (:func:`nnsam2.utils.atomic.atomic_path`): it exists only once complete, and as nnU-Net writes
  it last, it marks the whole case as done;
* before cases are (re)predicted their old segmentation is removed, so that an interrupted
  overwrite cannot leave an old segmentation beside a half-written new ``.npz``;
* leftovers of killed writes (hidden temporary files) are removed before the cases are redone.

The writer reaches the export workers inside the plans manager that nnU-Net sends them:
:class:`AtomicExportPlansManager` hands out :class:`AtomicSegWriter`.
"""
import contextlib
import functools
import glob
import os
import shutil
import tempfile
from typing import Callable, Iterable, Optional

from nnunetv2.imageio.base_reader_writer import BaseReaderWriter
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnsam2.utils.atomic import atomic_path

STAGING_PREFIX = ".nnsam2-partial-"  # hidden folders: no listing of *.nii.gz ever sees them


class AtomicSegWriter:
    """An nnU-Net reader/writer whose ``write_seg`` is atomic; everything else is the wrapped one's.

    Args:
        base: the reader/writer class named by the plans (``SimpleITKIO``, ``NaturalImage2DIO``, ...).
    """

    def __init__(self, base: type):
        self.base: BaseReaderWriter = base()

    def __getattr__(self, name: str):
        return getattr(self.base, name)

    def write_seg(self, seg, output_fname: str, properties: dict) -> None:
        write_atomically(output_fname, lambda path: self.base.write_seg(seg, path, properties))


class AtomicExportPlansManager(PlansManager):
    """nnU-Net's plans manager, whose reader/writer writes segmentations atomically."""

    @property
    def image_reader_writer_class(self):
        return functools.partial(AtomicSegWriter, PlansManager.image_reader_writer_class.fget(self))


def with_atomic_export(plans_manager: Optional[PlansManager]) -> Optional[PlansManager]:
    """The same plans, managed by an :class:`AtomicExportPlansManager`."""
    if plans_manager is None or isinstance(plans_manager, AtomicExportPlansManager):
        return plans_manager
    return AtomicExportPlansManager(plans_manager.plans)


def write_atomically(path: str, write: Callable[[str], None]) -> None:
    """Call ``write(name)``; the file it writes becomes ``path`` atomically.

    Image writers choose the format from the file ending, which atomic_path's temporary name
    lacks: the file is written under its own name in a hidden staging folder next to ``path``,
    then moved onto the temporary name (same file system, so both moves are renames).
    """
    folder, name = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=folder)
    try:
        with atomic_path(path) as tmp:
            write(os.path.join(staging, name))
            os.replace(os.path.join(staging, name), tmp)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def prepare_outputs(truncated_outputs: Optional[Iterable[str]], file_ending: str,
                    save_probabilities: bool) -> None:
    """Before predicting the cases ``truncated_outputs`` (output paths without ending)."""
    outputs = [os.path.abspath(o) for o in truncated_outputs or []]
    for folder in {os.path.dirname(o) for o in outputs}:
        for stale in glob.glob(os.path.join(folder, STAGING_PREFIX + "*")):
            shutil.rmtree(stale, ignore_errors=True)
    for output in outputs:
        folder, name = os.path.split(output + file_ending)
        # atomic_path's temporary files are named ".NAME.<random>.tmp"
        stale = glob.glob(os.path.join(folder, glob.escape(f".{name}.") + "*.tmp"))
        for path in stale + ([output + file_ending] if save_probabilities else []):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

