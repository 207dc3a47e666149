"""Reading, checking and writing images for the converters; every error names the file."""
import gzip
import shutil
import zlib
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import SimpleITK as sitk
from PIL import Image

from dataset_conversion.common import ConversionError


def read_sitk(path: Path) -> sitk.Image:
    """Read a NIfTI (or any SimpleITK format) image, or raise a ConversionError naming the file."""
    if not path.is_file():
        raise ConversionError(f"missing file: {path}")
    if path.name.endswith(".gz"):
        _check_gzip(path)  # SimpleITK silently reads truncated .gz files
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as e:
        raise ConversionError(f"cannot read {path} (corrupt or truncated?): {str(e).strip()[-200:]}") from e


def _check_gzip(path: Path, chunk: int = 1 << 24) -> None:
    """Decompress ``path`` to the end, raising a ConversionError if it is truncated or corrupt."""
    try:
        with gzip.open(path, "rb") as f:
            while f.read(chunk):
                pass
    except (OSError, EOFError, zlib.error) as e:
        raise ConversionError(f"cannot read {path} (corrupt or truncated?): {e}") from e


def read_pil(path: Path, mode: str) -> np.ndarray:
    """Read a 2D image file with Pillow, converted to ``mode`` ("L" -> (H, W), "RGB" -> (H, W, 3)).

    Args:
        path: any format Pillow reads (png, jpg, gif, tif).
        mode: Pillow mode to convert to.
    """
    if not path.is_file():
        raise ConversionError(f"missing file: {path}")
    try:
        with Image.open(path) as im:
            im.load()  # decodes fully: a truncated file fails here
            return np.asarray(im.convert(mode))
    except (OSError, ValueError, SyntaxError) as e:
        raise ConversionError(f"cannot read {path} (corrupt or truncated?): {e}") from e


def check_same_geometry(image: sitk.Image, seg: sitk.Image, image_path: Path, seg_path: Path) -> None:
    """Raise unless image and label share size, spacing, origin and direction."""
    checks = [("size", image.GetSize(), seg.GetSize(), 0),
              ("spacing", image.GetSpacing(), seg.GetSpacing(), 1e-3),
              ("origin", image.GetOrigin(), seg.GetOrigin(), 1e-2),
              ("direction", image.GetDirection(), seg.GetDirection(), 1e-3)]
    for what, a, b, tol in checks:
        if len(a) != len(b) or not np.allclose(a, b, rtol=tol, atol=tol):
            raise ConversionError(f"geometry mismatch ({what} {a} vs {b}) between image {image_path} "
                                  f"and label {seg_path}")


def check_same_shape(image: np.ndarray, seg: np.ndarray, image_path: Path, seg_path: Path) -> None:
    """Raise unless the 2D image (H, W[, C]) and label (H, W) cover the same pixel grid."""
    if image.shape[:2] != seg.shape[:2]:
        raise ConversionError(f"geometry mismatch (shape {image.shape[:2]} vs {seg.shape[:2]}) between image "
                              f"{image_path} and label {seg_path}")


def check_values(arr: np.ndarray, allowed: Iterable[int], path: Path) -> None:
    """Raise if ``arr`` holds values outside ``allowed``."""
    found = np.unique(arr)
    bad = np.setdiff1d(found, np.asarray(list(allowed)))
    if bad.size:
        raise ConversionError(f"unexpected label values {bad[:10].tolist()} in {path} "
                              f"(allowed: {sorted(allowed)})")


def check_mostly_binary(gray: np.ndarray, path: Path, max_fraction: float = 0.05) -> None:
    """Raise if more than ``max_fraction`` of a lossy (JPEG) mask lies far from both 0 and 255."""
    ambiguous = float(np.mean((gray > 32) & (gray < 224)))
    if ambiguous > max_fraction:
        raise ConversionError(f"{path} does not look like a binary mask: {ambiguous:.1%} of pixels are "
                              f"between 32 and 224 (unexpected label values)")


def write_label_sitk(seg: sitk.Image, out: Path, mapping: dict = None) -> None:
    """Write a label image as uint8 NIfTI with its geometry kept; ``mapping`` remaps {old: new}, others -> 0."""
    arr = sitk.GetArrayFromImage(seg)
    if mapping is not None:
        lut = np.zeros(int(max(arr.max(), max(mapping))) + 1, dtype=np.uint8)
        for old, new in mapping.items():
            lut[old] = new
        arr = lut[arr.astype(np.int64)]
    img = sitk.GetImageFromArray(arr.astype(np.uint8))
    img.CopyInformation(seg)
    sitk.WriteImage(img, str(out), True)


def copy_file(src: Path, dst: Path) -> None:
    """Byte copy (keeps spacing, orientation and data type of an already valid NIfTI)."""
    shutil.copyfile(src, dst)


def write_png(arr: np.ndarray, out: Path) -> None:
    """Write a 2D uint8/uint16 array (H, W) losslessly as PNG."""
    if arr.ndim != 2:
        raise ValueError(f"expected a 2D array for {out}, got shape {arr.shape}")
    if arr.dtype not in (np.uint8, np.uint16):
        if not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0 or arr.max() > 65535:
            raise ConversionError(f"cannot store {arr.dtype} values in [{arr.min()}, {arr.max()}] "
                                  f"losslessly as PNG: {out}")
        arr = arr.astype(np.uint16 if arr.max() > 255 else np.uint8)
    Image.fromarray(arr).save(out)


def write_channels_png(image: np.ndarray, images_dir: Path, case_id: str) -> None:
    """Write (H, W) or (H, W, C) as nnU-Net channel files ``case_id_0000.png``, ``_0001.png``, ..."""
    channels = image[..., None] if image.ndim == 2 else image  # (H, W) -> (H, W, 1)
    for c in range(channels.shape[-1]):
        write_png(np.ascontiguousarray(channels[..., c]), images_dir / f"{case_id}_{c:04d}.png")


def sorted_files(folder: Path, patterns: Sequence[str]) -> list:
    """Files in ``folder`` matching any of the glob ``patterns`` (case-sensitive), sorted by name."""
    return sorted({p for pat in patterns for p in folder.glob(pat) if p.is_file()})
