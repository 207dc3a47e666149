"""User clicks: the clicks file, and their coordinates from raw image voxels to nnU-Net's
preprocessed grid.

A click is ``(class, z, y, x)``: a label value of dataset.json (0 = background) and integer
indices into the image array as nnU-Net's reader returns it, without the channel axis
(SimpleITK reader: ``GetArrayFromImage`` order z, y, x; 2D readers return (C, 1, Y, X), so z = 0).

The clicks file is JSON, ``{"case_id": [{"class": 1, "z": 3, "y": 40, "x": 17}, ...], ...}``,
keyed by nnU-Net's case identifier (file name without channel suffix and file ending).

``DefaultPreprocessor.run_case_npy`` transposes (``transpose_forward``), crops to the nonzero
bounding box, then resamples to the configuration's spacing; :func:`to_preprocessed` follows
the same steps. :func:`click_map` rasterises clicks into an extra input channel, so that
nnU-Net's padding and sliding-window slicing carry them to every patch, where
:func:`nnsam2.network.click_prompts.clicks_from_map` reads them back in the network.
"""
import json
import math
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from nnsam2.utils.atomic import atomic_path
from nnsam2.utils.nnunet_env import UsageError

_KEYS = ("class", "z", "y", "x")


@dataclass(frozen=True)
class Click:
    label: int
    z: int
    y: int
    x: int

    def to_json(self) -> Dict[str, int]:
        return {"class": self.label, "z": self.z, "y": self.y, "x": self.x}


class ClickError(UsageError, ValueError):
    """A bad clicks file or click; a UsageError so the CLIs print it as one line."""


def read_clicks_file(path: str) -> Dict[str, List[Click]]:
    """Read a clicks file; any problem is a one-line ClickError naming the file."""
    try:
        with open(path, encoding="utf-8") as f:
            content = json.load(f)
    except FileNotFoundError:
        raise ClickError(f"clicks file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ClickError(f"clicks file {path} cannot be read: {e}") from None
    except json.JSONDecodeError as e:
        raise ClickError(f"clicks file {path} is not valid JSON: {e}") from None
    if not isinstance(content, dict) or not all(isinstance(v, list) for v in content.values()):
        raise ClickError(f"clicks file {path} must hold a JSON object mapping each case id to a "
                         f"list of clicks")
    return {case: [_parse_click(path, case, i, entry) for i, entry in enumerate(entries)]
            for case, entries in content.items()}


def _parse_click(path: str, case: str, index: int, entry: object) -> Click:
    where = f"clicks file {path}: case {case!r}, click {index}"
    if not isinstance(entry, dict) or set(entry) != set(_KEYS):
        raise ClickError(f"{where}: expected an object with exactly the keys "
                         f"{', '.join(_KEYS)}, got {json.dumps(entry)}")
    # bool is an int in Python, but true/false as a coordinate is a mistake in the file
    bad = [k for k in _KEYS if not isinstance(entry[k], int) or isinstance(entry[k], bool)]
    if bad:
        raise ClickError(f"{where}: {', '.join(bad)} must be integers, got {json.dumps(entry)}")
    return Click(entry["class"], entry["z"], entry["y"], entry["x"])


def write_clicks_file(path: str, clicks: Dict[str, List[Click]]) -> None:
    """Write a clicks file atomically (a reader never sees half a file)."""
    content = {case: [c.to_json() for c in clicks[case]] for case in sorted(clicks)}
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(content, f, indent=1)
            f.write("\n")


def check_clicks(case: str, clicks: Sequence[Click], raw_shape: Sequence[int],
                 labels: Sequence[int], source: str) -> None:
    """Reject clicks outside the raw image or with a class not in ``labels``.

    ``raw_shape`` is the spatial (z, y, x) shape of the reader's array ((1, Y, X) for 2D images);
    ``source`` (the clicks file) is named in the message.
    """
    if len(raw_shape) != 3:
        raise ValueError(f"raw_shape must have 3 entries (z, y, x), got {tuple(raw_shape)}")
    shape = tuple(int(s) for s in raw_shape)
    for i, click in enumerate(clicks):
        where = f"{os.path.basename(source)}: case {case!r}, click {i} {json.dumps(click.to_json())}"
        if not all(0 <= v < s for v, s in zip((click.z, click.y, click.x), shape)):
            raise ClickError(f"{where} is outside the image, whose (z, y, x) shape is {shape}")
        if click.label not in labels:
            raise ClickError(f"{where}: class {click.label} is not a label of the dataset "
                             f"({', '.join(str(v) for v in sorted(labels))})")


def preprocessed_spatial_shape(properties: dict, plans_manager,
                               configuration_manager) -> Tuple[int, ...]:
    """The spatial shape nnU-Net's DefaultPreprocessor resamples a case to.

    nnU-Net does not store it in ``properties``; it is recomputed here exactly as
    ``run_case_npy`` computes it, from the cropped shape and the transposed spacings.
    """
    from nnunetv2.preprocessing.resampling.default_resampling import compute_new_shape
    old_spacing = [properties["spacing"][i] for i in plans_manager.transpose_forward]
    target = list(configuration_manager.spacing)
    if len(target) < len(old_spacing):  # 2D configuration: the slice axis keeps its spacing
        target = [old_spacing[0]] + target
    cropped = properties["shape_after_cropping_and_before_resampling"]
    return tuple(int(s) for s in compute_new_shape(cropped, old_spacing, target))


def to_preprocessed(click: Click, properties: dict, plans_manager, configuration_manager,
                    preprocessed_shape: Optional[Sequence[int]] = None) -> Tuple[int, int, int]:
    """The voxel of the preprocessed array's spatial part that the click's raw voxel lands on.

    ``properties`` are those the preprocessor returned for the case (they hold the spacing,
    the crop box in transposed axes and the cropped shape). ``preprocessed_shape`` is the
    spatial shape of the preprocessed data (a full (C, ...) data shape also works); without it
    it is computed like nnU-Net does (:func:`preprocessed_spatial_shape`), which only holds for
    preprocessors that resample like DefaultPreprocessor.

    Each axis maps voxel centres: cropped index c of an axis of size n lands on
    ``floor((c + 0.5) * m / n)`` of new size m (the centre-aligned grid of nnU-Net's resampling).
    A click outside the nonzero crop box is clipped to the nearest voxel of the box.
    """
    new_shape = _spatial(preprocessed_shape if preprocessed_shape is not None
                         else preprocessed_spatial_shape(properties, plans_manager,
                                                         configuration_manager))
    raw = (click.z, click.y, click.x)
    bbox = properties["bbox_used_for_cropping"]
    cropped = properties["shape_after_cropping_and_before_resampling"]
    out = []
    for axis, raw_axis in enumerate(plans_manager.transpose_forward):
        c = min(max(raw[raw_axis] - int(bbox[axis][0]), 0), int(cropped[axis]) - 1)
        n, m = int(cropped[axis]), new_shape[axis]
        out.append(min(max(math.floor((c + 0.5) * m / n), 0), m - 1))
    return tuple(out)


def _spatial(shape: Sequence[int]) -> Tuple[int, int, int]:
    # nnU-Net's arrays are (C, z, y, x) in every configuration, 2D included: drop the channel axis
    shape = tuple(int(s) for s in shape)
    if len(shape) == 4:
        shape = shape[1:]
    if len(shape) != 3:
        raise ValueError(f"expected a spatial shape of 3 entries (or 4 with channels), got {shape}")
    return shape


def click_map(clicks: Sequence[Click], properties: dict, plans_manager, configuration_manager,
              preprocessed_shape: Sequence[int]) -> np.ndarray:
    """An int16 map of the preprocessed spatial shape: 0, and ``label + 1`` at each click's voxel
    (a later click on the same voxel wins), to append as an input channel."""
    shape = _spatial(preprocessed_shape)
    out = np.zeros(shape, dtype=np.int16)
    for click in clicks:
        out[to_preprocessed(click, properties, plans_manager, configuration_manager, shape)] = \
            click.label + 1
    return out

