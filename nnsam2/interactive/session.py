"""Refining one case with clicks, in memory: the Python call behind interactive use.

:class:`InteractiveSession` preprocesses a case once, predicts it prompt-free, and then, for each
call of :meth:`~InteractiveSession.refine`, re-predicts only the slices (2D images: the image)
that hold a new click, with every click given so far on them (``2d_mem``: the whole volume, whose
slices the memory links). The image encoder's features of
those slices are kept (:attr:`SAM2SegNet.feature_cache`), so a further click on the same slice
runs the mask decoder only. Coordinates are voxels of the raw image as nnU-Net's reader returns
it (:mod:`nnsam2.interactive.click_coordinates`).
"""
import copy
from typing import List, Optional, Sequence

import numpy as np
import torch
from nnunetv2.inference.export_prediction import \
    convert_predicted_logits_to_segmentation_with_correct_shape

from nnsam2.inference.click_prediction import check_model_takes_clicks
from nnsam2.interactive.click_coordinates import Click, check_clicks, click_map, to_preprocessed
from nnsam2.utils.wrappers import unwrap


class InteractiveSession:
    """One case of a model trained with clicks, held in memory.

    Args:
        predictor: an initialised :class:`nnsam2.inference.predictor.SAM2Predictor` (any folds).
        image: (C, *spatial) array as nnU-Net's reader returns it for the raw image.
        properties: the reader's properties (at least ``spacing``).
        name: the case's name in messages.
    """

    def __init__(self, predictor, image: np.ndarray, properties: dict, name: str = "case"):
        self.predictor, self.name = predictor, name
        check_model_takes_clicks(predictor.network, "this model", predictor.trainer_name)
        self.raw_shape = tuple(image.shape[1:])
        preprocessor = predictor.configuration_manager.preprocessor_class(verbose=False)
        data, _, self.properties = preprocessor.run_case_npy(
            image, None, copy.deepcopy(properties), predictor.plans_manager,
            predictor.configuration_manager, predictor.dataset_json)
        self.data = torch.from_numpy(np.ascontiguousarray(data)).float()  # (C, Z, Y, X)
        self.clicks: List[Click] = []
        self.labels = [int(v) for v in predictor.label_manager.all_labels]
        self.logits = self._logits(self.data)  # (K, Z, Y, X), prompt-free
        self.segmentation = self._to_raw(self.logits)

    def refine(self, clicks: Sequence[Click],
               previous: Optional[np.ndarray] = None) -> np.ndarray:
        """The segmentation after ``clicks`` (added to those of earlier calls), in raw voxels.

        Only the slices that hold one of the new clicks are predicted again; everything else is
        ``previous`` (e.g. a segmentation the user edited), or this session's last result."""
        check_clicks(self.name, clicks, self.raw_shape, self.labels, "refine()")
        self.clicks += list(clicks)
        grid = self.data.shape[1:]
        if len(self.predictor.configuration_manager.patch_size) == 3:  # 2d_mem: the memory
            touched = list(range(grid[0]))  # carries clicks to every slice of the patch
            self.logits = self._logits(torch.cat([self.data, torch.from_numpy(click_map(
                self.clicks, self.properties, self.predictor.plans_manager,
                self.predictor.configuration_manager, grid))[None].float()]))
        else:
            touched = sorted({self._slice_of(c) for c in clicks})
            for z in touched:
                self.logits[:, z] = self._slice_logits(z, grid)
        mask = torch.zeros_like(self.logits)  # where the result changes, mapped to raw voxels
        mask[1, touched] = 1  # as the logits are: class 1 there, 0 elsewhere
        changed = self._to_raw(mask).astype(bool)
        base = self.segmentation if previous is None else np.asarray(previous)
        result = np.where(changed, self._to_raw(self.logits), base)
        self.segmentation = result
        return result

    def _slice_of(self, click: Click) -> int:
        """The network grid's slice a raw-voxel click lands on (axis 0 of the 2D configuration)."""
        return to_preprocessed(click, self.properties, self.predictor.plans_manager,
                               self.predictor.configuration_manager, self.data.shape)[0]

    def _slice_logits(self, z: int, grid) -> torch.Tensor:
        """(K, Y, X) logits of slice ``z`` with every click of the session on it."""
        on_slice = [c for c in self.clicks if self._slice_of(c) == z]
        positions = click_map(on_slice, self.properties, self.predictor.plans_manager,
                              self.predictor.configuration_manager, grid)[z:z + 1]
        data = torch.cat([self.data[:, z:z + 1], torch.from_numpy(positions)[None].float()])
        return self._logits(data, cache=True)[:, 0]

    def _logits(self, data: torch.Tensor, cache: bool = False) -> torch.Tensor:
        """The folds' mean logits (as nnU-Net's predictor), image features kept per fold."""
        net, predictor = unwrap(self.predictor.network), self.predictor
        if cache and net.feature_cache is None:
            net.feature_cache = {}
        total = None
        for fold, params in enumerate(predictor.list_of_parameters):
            net.load_state_dict(params)
            net.feature_cache_key = (id(self), fold)
            logits = predictor.predict_sliding_window_return_logits(data).float().cpu()
            total = logits if total is None else total + logits
        return total / len(predictor.list_of_parameters)

    def _to_raw(self, logits: torch.Tensor) -> np.ndarray:
        p = self.predictor
        return convert_predicted_logits_to_segmentation_with_correct_shape(
            logits, p.plans_manager, p.configuration_manager, p.label_manager, self.properties)

    def close(self) -> None:
        """Forget this session's kept image features."""
        net = unwrap(self.predictor.network)
        if net.feature_cache:
            for key in [k for k in net.feature_cache if k[0] and k[0][0] == id(self)]:
                del net.feature_cache[key]
