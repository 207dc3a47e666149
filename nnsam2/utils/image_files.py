"""Header-level reading and completeness checks of single image files, each problem naming the file.

SimpleITK reads a truncated ``.nii.gz`` without complaint (the missing voxels come back as zeros),
and reading a header succeeds on a half-written file. So every file is checked for completeness
too, cheaply: the gzip trailer of a NIfTI records its uncompressed size, which the header predicts;
an uncompressed NIfTI must be at least that long; a PNG must end with its IEND chunk. Only when the
cheap test disagrees is the gzip stream decompressed to the end to decide.
"""
import gzip
import os
import struct
import zlib
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
NIFTI1_HEADER_BYTES, NIFTI2_HEADER_BYTES = 348, 540
GZIP_MAGIC = b"\x1f\x8b"


class ImageFileError(ValueError):
    """An image file that cannot be used; the message names the file and what to do."""


@dataclass(frozen=True)
class ImageHeader:
    """What the header of one file says, in numpy axis order ((z,) y, x)."""
    path: str
    dim: int
    shape: Tuple[int, ...]
    spacing: Tuple[float, ...]
    components: int  # values per voxel (3 for an RGB PNG, 2 for a two-component NIfTI)


def read_header(path: str) -> ImageHeader:
    """Geometry of ``path`` from its header (SimpleITK, as nnU-Net's readers) without the voxels."""
    import SimpleITK as sitk
    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    try:
        reader.ReadImageInformation()
    except RuntimeError as e:
        raise ImageFileError(f"{path}: cannot read the image header ({_last_line(e)}); replace the "
                             f"file with a readable copy") from e
    return ImageHeader(path, reader.GetDimension(), tuple(reader.GetSize())[::-1],
                       tuple(reader.GetSpacing())[::-1], reader.GetNumberOfComponents())


def check_complete(path: str) -> None:
    """Raise an ImageFileError if ``path`` is cut short (NIfTI, gzip, PNG); other formats pass."""
    name = path.lower()
    if name.endswith((".nii", ".nii.gz")):
        expected, isize = _nifti_size(path), _gzip_isize(path)
        if isize is None and os.path.getsize(path) < expected:  # uncompressed, whatever the name
            raise _truncated(path, f"{os.path.getsize(path)} bytes, the header needs {expected}")
        if isize is not None and isize != expected % 2 ** 32:
            _check_gzip_stream(path)  # a multi-member gzip may still be fine
    elif name.endswith(".gz"):
        _check_gzip_stream(path)
    elif name.endswith(".png"):
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - len(PNG_END)))
            if f.read() != PNG_END:
                raise _truncated(path, "no PNG end marker")


def _nifti_size(path: str) -> int:
    """Bytes of the uncompressed NIfTI file: header, extensions and voxel data."""
    import nibabel
    opener = open if _gzip_isize(path) is None else gzip.open  # readers ignore a wrong suffix
    try:
        with opener(path, "rb") as f:
            block = f.read(NIFTI2_HEADER_BYTES)
        sizeof_hdr = struct.unpack("<i", block[:4])[0]
        if sizeof_hdr not in (NIFTI1_HEADER_BYTES, NIFTI2_HEADER_BYTES):
            sizeof_hdr = struct.unpack(">i", block[:4])[0]  # big-endian file
        nifti2 = sizeof_hdr == NIFTI2_HEADER_BYTES
        header = (nibabel.Nifti2Header if nifti2 else nibabel.Nifti1Header)(block[:sizeof_hdr])
        shape, dtype = header.get_data_shape(), header.get_data_dtype()
    except Exception as e:  # gzip, struct and nibabel raise several types for damaged headers
        raise ImageFileError(f"{path}: cannot read the NIfTI header ({_last_line(e)}); replace "
                             f"the file with a readable copy") from e
    offset = max(int(header.get_data_offset()), sizeof_hdr + 4)  # + 4 extension flag bytes
    return offset + int(np.prod(shape)) * dtype.itemsize


def _gzip_isize(path: str) -> Optional[int]:
    """The uncompressed size (mod 2**32) from the gzip trailer, None for a non-gzip file."""
    with open(path, "rb") as f:
        if f.read(2) != GZIP_MAGIC:
            return None
        f.seek(-4, os.SEEK_END)
        return struct.unpack("<I", f.read(4))[0]


def _check_gzip_stream(path: str, chunk: int = 1 << 22) -> None:
    """Decompress ``path`` to the end without keeping the output; a cut stream raises."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        with open(path, "rb") as f:
            while data := f.read(chunk):
                inflater.decompress(data, 0)
                while inflater.eof and inflater.unused_data:  # next gzip member
                    rest = inflater.unused_data
                    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    inflater.decompress(rest, 0)
    except zlib.error as e:
        raise _truncated(path, f"corrupt gzip data: {e}") from e
    if not inflater.eof:
        raise _truncated(path, "the gzip stream ends early")


def _truncated(path: str, why: str) -> ImageFileError:
    return ImageFileError(f"{path}: file is truncated or corrupt ({why}); copy or export it again")


def _last_line(e: Exception) -> str:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[-1][:200] if lines else type(e).__name__
