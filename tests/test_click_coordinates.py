"""Clicks file I/O and click coordinates from raw voxels to nnU-Net's preprocessed grid.

The coordinate tests run nnU-Net's own DefaultPreprocessor on a case that it transposes, crops
and resamples, and check where a click's raw voxel lands against what the preprocessor did
to a marked segmentation block and to coordinate ramps in the image channels.
"""
import json

import numpy as np
import pytest
import SimpleITK as sitk

from nnsam2.interactive.click_coordinates import (
    Click, ClickError, check_clicks, click_map, preprocessed_spatial_shape,
    read_clicks_file, to_preprocessed, write_clicks_file)
from nnsam2.utils.nnunet_env import UsageError

DATASET_JSON = {"channel_names": {"0": "z", "1": "y", "2": "x"},
                "labels": {"background": 0, "box": 1, "marker": 2}, "file_ending": ".nii.gz"}


# ---------------------------------------------------------------- clicks file

def test_clicks_file_round_trip(tmp_path):
    clicks = {"case_b": [Click(1, 3, 40, 17), Click(0, 0, 2, 5)], "case_a": []}
    path = tmp_path / "clicks.json"
    write_clicks_file(str(path), clicks)
    assert read_clicks_file(str(path)) == clicks
    text = path.read_text()
    assert list(json.loads(text)) == ["case_a", "case_b"]  # sorted case keys
    assert json.loads(text)["case_b"][0] == {"class": 1, "z": 3, "y": 40, "x": 17}
    assert not [p for p in tmp_path.iterdir() if p.name != "clicks.json"]  # no temp file left


@pytest.mark.parametrize("content, words", [
    (None, ["does not exist"]),
    ("{not json", ["not valid JSON"]),
    ("[1, 2]", ["JSON object"]),
    ('{"c1": {"class": 1}}', ["JSON object"]),
    ('{"c1": [{"class": 1, "z": 0, "y": 0}]}', ["'c1'", "click 0", "keys"]),
    ('{"c1": [], "c2": [{"class": 1, "z": 0, "y": 0, "x": 0}, 5]}', ["'c2'", "click 1"]),
    ('{"c1": [{"class": 1, "z": 0.5, "y": 0, "x": 0}]}', ["'c1'", "click 0", "z must be integers"]),
    ('{"c1": [{"class": true, "z": 0, "y": 0, "x": 0}]}', ["'c1'", "click 0", "class"]),
    ('{"c1": [{"class": 1, "z": 0, "y": 0, "x": 0, "q": 1}]}', ["'c1'", "click 0", "keys"]),
])
def test_bad_clicks_file(tmp_path, content, words):
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ClickError) as info:
        read_clicks_file(str(path))
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    for word in words:
        assert word in message
    assert isinstance(info.value, UsageError)  # the CLIs print it as one line


def test_check_clicks():
    check_clicks("c1", [Click(0, 0, 0, 0), Click(2, 19, 23, 29)], (20, 24, 30), [0, 1, 2], "k.json")
    for bad in (Click(1, 20, 0, 0), Click(1, 0, -1, 0), Click(1, 0, 0, 30)):
        with pytest.raises(ClickError, match=r"k\.json: case 'c1', click 1 .*outside"):
            check_clicks("c1", [Click(0, 0, 0, 0), bad], (20, 24, 30), [0, 1, 2], "k.json")
    with pytest.raises(ClickError, match=r"case 'c1', click 0 .*class 3 is not a label"):
        check_clicks("c1", [Click(3, 0, 0, 0)], (20, 24, 30), [0, 1, 2], "k.json")
    with pytest.raises(ClickError, match="outside"):  # a 2D image has a single z slice
        check_clicks("c1", [Click(1, 1, 0, 0)], (1, 24, 30), [0, 1], "k.json")


# ---------------------------------------------------------------- coordinates

def _plans(transpose_forward, configurations):
    """The parts of an nnU-Net plans file that DefaultPreprocessor reads."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
    backward = [int(i) for i in np.argsort(transpose_forward)]
    config_defaults = {
        "normalization_schemes": ["NoNormalization"] * 3, "use_mask_for_norm": [False] * 3,
        "resampling_fn_data": "resample_data_or_seg_to_shape",
        "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0,
                                      "force_separate_z": None},
        "resampling_fn_seg": "resample_data_or_seg_to_shape",
        "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0,
                                     "force_separate_z": None},
        "architecture": {"network_class_name": "unused", "arch_kwargs": {},
                         "_kw_requires_import": []},
    }
    return PlansManager({
        "dataset_name": "Dataset999_Clicks", "plans_name": "nnUNetPlans",
        "transpose_forward": list(transpose_forward), "transpose_backward": backward,
        "image_reader_writer": "SimpleITKIO", "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {str(c): {} for c in range(3)},
        "configurations": {name: {**config_defaults, "spacing": spacing}
                           for name, spacing in configurations.items()},
    })


def _preprocess(data, seg, properties, plans_manager, configuration):
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
    configuration_manager = plans_manager.get_configuration(configuration)
    data, seg, properties = DefaultPreprocessor(verbose=False).run_case_npy(
        data, seg, properties, plans_manager, configuration_manager, DATASET_JSON)
    return data, seg, properties, configuration_manager


def _raw_case(shape, box, marker):
    """Three channels holding each voxel's raw (z, y, x) index + 1 inside ``box`` and 0 outside
    (so nnU-Net crops to the box); seg 1 in the box and 2 in a 3x3x3 block around ``marker``."""
    inside = tuple(slice(*b) for b in box)
    grid = np.indices(shape).astype(np.float32) + 1
    data = np.zeros((3, *shape), np.float32)
    data[(slice(None), *inside)] = grid[(slice(None), *inside)]
    seg = np.zeros((1, *shape), np.int16)
    seg[(0, *inside)] = 1
    seg[(0, *(slice(m - 1, m + 2) for m in marker))] = 2
    return data, seg


def _check_landing(clicks, data, seg, properties, plans_manager, configuration_manager, marker,
                   n_over_m):
    shape = data.shape[1:]
    assert preprocessed_spatial_shape(properties, plans_manager, configuration_manager) == shape
    marker_click = Click(2, *marker)
    p = to_preprocessed(marker_click, properties, plans_manager, configuration_manager, shape)
    assert seg[(0, *p)] == 2, (p, np.argwhere(seg[0] == 2))
    # without the shape it is computed as nnU-Net does
    assert to_preprocessed(marker_click, properties, plans_manager, configuration_manager) == p
    # the image channels hold each raw voxel's index + 1 (in raw axis order, untransposed), so the
    # preprocessed voxel must hold the click's raw index to within half a resampled voxel
    for click in clicks:
        q = to_preprocessed(click, properties, plans_manager, configuration_manager, shape)
        raw = np.array([click.z, click.y, click.x])
        landed = data[(slice(None), *q)] - 1
        tolerance = 0.5 * n_over_m + 0.15
        assert np.all(np.abs(landed - raw) <= tolerance), (click, q, landed, tolerance)

    first = clicks[0]
    cmap = click_map([Click(0, first.z, first.y, first.x), marker_click],
                     properties, plans_manager, configuration_manager, data.shape)
    assert cmap.dtype == np.int16 and cmap.shape == shape
    assert cmap[p] == 3 and seg[(0, *np.argwhere(cmap == 3)[0])] == 2
    assert sorted(np.unique(cmap).tolist()) == [0, 1, 3]
    return p


@pytest.mark.parametrize("spacing, target", [
    # (z, y, x) raw spacing; target in transposed axes (x, z, y): x and z up-, y downsampled
    ((3.0, 1.0, 1.5), [1.0, 2.0, 1.6]),  # anisotropic: nnU-Net resamples z separately
    ((1.2, 1.0, 1.5), [1.1, 0.9, 1.3]),
])
def test_3d_case_transposed_cropped_resampled(tmp_path, spacing, target):
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
    shape, box, marker = (20, 24, 30), ((3, 17), (4, 21), (5, 27)), (9, 11, 15)
    data, seg = _raw_case(shape, box, marker)
    files = []
    for c in range(3):  # written and read back so spacing and axis order are the reader's
        image = sitk.GetImageFromArray(data[c])
        image.SetSpacing(spacing[::-1])  # SimpleITK spacing is (x, y, z)
        files.append(str(tmp_path / f"case_{c:04d}.nii.gz"))
        sitk.WriteImage(image, files[-1])
    data, properties = SimpleITKIO().read_images(files)
    assert data.shape == (3, *shape) and np.allclose(properties["spacing"], spacing)

    plans_manager = _plans([2, 0, 1], {"3d_fullres": target})
    pre, pre_seg, properties, cm = _preprocess(data, seg, properties, plans_manager, "3d_fullres")
    # it did transpose, crop and resample
    assert properties["shape_after_cropping_and_before_resampling"] == (22, 14, 17)
    assert pre.shape[1:] != (22, 14, 17)
    cropped = np.array([22, 14, 17])
    n_over_m = np.array([cropped[i] / pre.shape[1 + i] for i in (1, 2, 0)])  # raw (z, y, x) order

    interior = [Click(1, z, y, x) for z in (5, 9, 14) for y in (7, 12, 18) for x in (8, 15, 24)]
    _check_landing(interior, pre, pre_seg, properties, plans_manager, cm, marker, n_over_m)

    # a click outside the crop box lands on the box's nearest edge voxel
    edge = to_preprocessed(Click(0, 0, 11, 29), properties, plans_manager, cm, pre.shape[1:])
    assert edge[0] == pre.shape[1] - 1 and edge[1] == 0


def test_2d_case_no_transpose():
    """A (C, 1, Y, X) image as nnU-Net's 2D readers return it; the 2d configuration resamples
    in-plane only."""
    shape, box, marker = (1, 40, 50), ((0, 1), (5, 33), (7, 44)), (0, 20, 30)
    data, seg = _raw_case(shape, box, marker)
    seg[0, 0] = 0
    seg[0, 0, 5:33, 7:44] = 1
    seg[0, 0, 19:22, 29:32] = 2  # the 3x3 block in-plane only (there is one slice)
    properties = {"spacing": (999, 1, 1)}  # what NaturalImage2DIO reports
    plans_manager = _plans([0, 1, 2], {"2d": [0.8, 1.25]})
    pre, pre_seg, properties, cm = _preprocess(data, seg, properties, plans_manager, "2d")
    assert pre.shape[1:] == (1, 35, 30)  # cropped (1, 28, 37), resampled in-plane
    interior = [Click(1, 0, y, x) for y in (8, 20, 29) for x in (10, 25, 40)]
    n_over_m = np.array([1.0, 28 / 35, 37 / 30])
    _check_landing(interior, pre, pre_seg, properties, plans_manager, cm, marker, n_over_m)
