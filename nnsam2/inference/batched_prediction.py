"""Batched sliding-window prediction for nnU-Net's predictor.

nnU-Net runs the network on one patch at a time and on every test-time mirror of it separately:
a 2D configuration on a 3D volume makes (slices x window positions x mirrors) forward passes of
batch 1. :class:`BatchedPredictionMixin` stacks several window positions, each with all its
mirrors, into one forward pass, up to a memory budget. nnU-Net's slicers, padding, Gaussian,
fp16 accumulation (in the same order), normalisation and fallback to CPU result arrays are kept,
so the output equals the patch-at-a-time one up to the network's own batch-size rounding
(``tests/test_batched_prediction.py``). Any number of spatial dimensions: 2D patches of 2D or 3D
data, 3D patches.

Memory budget (forward-pass activations): the ``prediction_memory_gb`` argument
(``nnsam2_predict --prediction_memory_gb``), else the ``nnSAM2_prediction_memory_gb`` environment
variable (also read by the validation at the end of training, whichever command trains; plain
``nnUNetv2_predict`` builds nnU-Net's own predictor and stays patch-at-a-time), else

* CUDA: 25% of the device's total memory, at most half of what is free (2 GB on an 8 GB card);
* CPU (and MPS): 25% of the available RAM (``MemAvailable`` of ``/proc/meminfo``), and at most
  :data:`CPU_DEFAULT_MAX_IMAGES` images per pass.

Images per forward pass = floor(budget / bytes per image), at least 1; window positions per
forward pass = images per forward pass // mirrors, at least 1 (a smaller budget splits one
position's mirrors over several passes; budget 0 is nnU-Net's one image per pass). Bytes per image:
on CUDA measured once per patch size (peak allocated memory of a batch-1 probe forward); on the CPU
voxels per patch x :data:`CPU_BYTES_PER_VOXEL` of the SAM2 size. A CUDA out-of-memory error halves
the images per forward pass and retries.
"""
import contextlib
import itertools
import logging
import math
import os
from typing import List, Optional, Tuple

import torch
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from nnunetv2.inference.sliding_window_prediction import compute_gaussian
from nnunetv2.utilities.helpers import empty_cache
from tqdm import tqdm

from nnsam2.utils.wrappers import unwrap

logger = logging.getLogger(__name__)

ENV_MEMORY_GB = "nnSAM2_prediction_memory_gb"
GB = 2 ** 30
CUDA_SHARE_OF_TOTAL, CUDA_SHARE_OF_FREE, CPU_SHARE_OF_AVAILABLE = 0.25, 0.5, 0.25
# Without an explicit budget the CPU gets at most this many images per pass: CPU kernels gain
# nothing from large batches (no launch overhead to amortise), and a whole-case benchmark measured
# 40 images per pass 1.19x slower than one (documentation/benchmarks.md, whole-case table).
CPU_DEFAULT_MAX_IMAGES = 8
# Peak RSS growth per input voxel of one fp32 forward pass (4 output classes), rounded up from the
# largest measured value (toy 100-162, tiny 283-582: 256x256 and 512x512 patches, batch pairs 4/8
# and 8/16); each batch size in a fresh process, the difference of the two divided out:
#   for b in 8 16; do PYTHONPATH=. OMP_NUM_THREADS=2 python -c "import resource, torch
#   from nnsam2.network import build_network; net = build_network(1, 4, size='tiny').eval()
#   torch.inference_mode().__enter__(); net(torch.zeros($b, 1, 256, 256))
#   print($b, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"; done   # kB
# Other sizes and other networks: the largest value of the table.
CPU_BYTES_PER_VOXEL = {"toy": 170, "tiny": 600}


def parse_memory_gb(value, source: str = "prediction_memory_gb") -> float:
    """A budget in GB (2^30 bytes), a finite number >= 0; ValueError naming ``source`` else."""
    try:
        gb = float(value)
    except (TypeError, ValueError):
        gb = math.nan
    if not math.isfinite(gb) or gb < 0:
        raise ValueError(f"{source} must be a number of GB >= 0 (0: one image per forward "
                         f"pass), got {value!r}")
    return gb


def chunk_size(remaining: int, most: int) -> int:
    """The next forward pass's size: ``most``, or for a smaller rest the largest power of two
    in it (a rest of 13 at most 16 runs as 8 + 4 + 1): at most log2(most) + 2 sizes in a run."""
    if remaining >= most:
        return most
    return 1 << (remaining.bit_length() - 1)


def available_ram_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            kb = next(int(line.split()[1]) for line in f if line.startswith("MemAvailable:"))
        return kb * 1024
    except (OSError, StopIteration):
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def default_budget_bytes(device: torch.device) -> int:
    """The default budget of the module docstring."""
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        return int(min(CUDA_SHARE_OF_TOTAL * total, CUDA_SHARE_OF_FREE * free))
    return int(CPU_SHARE_OF_AVAILABLE * available_ram_bytes())


class BatchedPredictionMixin:
    """nnU-Net predictor hooks that run several patches, and their mirrors, per forward pass.

    Args:
        prediction_memory_gb: activation budget of one forward pass in GB; None: the
            ``nnSAM2_prediction_memory_gb`` environment variable, else the device default (see the
            module docstring).
        *args, **kwargs: nnU-Net's predictor arguments.
    """

    def __init__(self, *args, prediction_memory_gb: Optional[float] = None, **kwargs):
        super().__init__(*args, **kwargs)
        if prediction_memory_gb is None and os.environ.get(ENV_MEMORY_GB):
            prediction_memory_gb = parse_memory_gb(os.environ[ENV_MEMORY_GB], ENV_MEMORY_GB)
        self.prediction_memory_gb = (None if prediction_memory_gb is None
                                     else parse_memory_gb(prediction_memory_gb))
        self._images_per_forward = {}  # (device type, (C, *patch)) -> images per forward pass
        # cudnn.benchmark tunes every convolution again for each new batch size: on CUDA a
        # case's last, smaller chunk is split into powers of two, so that a run sees few sizes
        self.fixed_chunk_sizes = self.device.type == "cuda"

    def _mirror_flips(self, ndim: int) -> List[Tuple[int, ...]]:
        """Flip axes of each test-time mirror of a (B, C, *patch) batch; () is the batch itself."""
        axes = self.allowed_mirroring_axes if self.use_mirroring else None
        if not axes:
            return [()]
        assert max(axes) <= ndim - 3, "mirror axes do not match the dimension of the input"
        spatial = [a + 2 for a in axes]
        return [()] + [c for k in range(1, len(spatial) + 1)
                       for c in itertools.combinations(spatial, k)]

    def bytes_per_image(self, image: torch.Tensor) -> Tuple[int, str]:
        """Forward-pass memory of one (1, C, *patch) image on ``self.device`` and how it was got."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            before = torch.cuda.memory_allocated(self.device)
            self.network(image)
            return max(1, torch.cuda.max_memory_allocated(self.device) - before), "measured"
        config = getattr(unwrap(self.network), "config", None)
        size = config.get("size") if isinstance(config, dict) else None
        factor = CPU_BYTES_PER_VOXEL.get(size, max(CPU_BYTES_PER_VOXEL.values()))
        return factor * image[0, 0].numel(), f"estimated at {factor} B/voxel"

    def images_per_forward(self, image: torch.Tensor) -> int:
        """Images of this (1, C, *patch) shape per forward pass; decided (and logged) once."""
        key = (self.device.type, tuple(image.shape[1:]))
        if key not in self._images_per_forward:
            budget = (default_budget_bytes(self.device) if self.prediction_memory_gb is None
                      else int(self.prediction_memory_gb * GB))
            per_image, how = self.bytes_per_image(image[:1])
            images = max(1, budget // per_image)
            if self.prediction_memory_gb is None and self.device.type != "cuda":
                images = min(images, CPU_DEFAULT_MAX_IMAGES)
            mirrors = len(self._mirror_flips(image.ndim))
            self._images_per_forward[key] = images
            logger.info("nnsam2: up to %d patch(es) per forward pass (%d image(s) with %d "
                        "mirror(s) each; budget %.2f GB, %.1f MB per image, %s)",
                        max(1, images // mirrors), images, mirrors, budget / GB,
                        per_image / 2 ** 20, how)
        return self._images_per_forward[key]

    def _forward_in_chunks(self, images: torch.Tensor) -> torch.Tensor:
        """Network outputs of (N, C, *patch) images, in forward passes of the budgeted size."""
        key, outputs, start = (self.device.type, tuple(images.shape[1:])), [], 0
        while start < len(images):
            n = self.images_per_forward(images[:1])
            if self.fixed_chunk_sizes:
                n = chunk_size(len(images) - start, n)
            try:
                outputs.append(self.network(images[start:start + n]))
            except torch.OutOfMemoryError:
                if n == 1:
                    raise
                self._images_per_forward[key] = n // 2
                empty_cache(self.device)
                logger.warning("nnsam2: out of memory at %d images per forward pass, now %d",
                               n, n // 2)
                continue
            start += n
        return torch.cat(outputs)

    @torch.inference_mode()
    def _internal_maybe_mirror_and_predict(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, *patch) -> (B, K, *patch) logits averaged over the mirrors, all mirrors of the
        batch run together."""
        flips = self._mirror_flips(x.ndim)
        views = torch.cat([torch.flip(x, f) if f else x for f in flips])  # (M * B, C, *patch)
        outputs = self._forward_in_chunks(views).split(len(x))  # M x (B, K, *patch)
        prediction = outputs[0]
        for f, output in zip(flips[1:], outputs[1:]):
            prediction += torch.flip(output, f)
        if len(flips) > 1:
            prediction /= len(flips)
        return prediction

    @torch.inference_mode()
    def _internal_predict_sliding_window_return_logits(self, data: torch.Tensor, slicers,
                                                       do_on_device: bool = True) -> torch.Tensor:
        """nnU-Net's Gaussian-weighted sliding window over ``slicers`` of (C, *spatial) ``data``,
        several window positions per forward pass; returns (K, *spatial) fp16 logits."""
        results_device = self.device if do_on_device else torch.device("cpu")
        logits = weights = batch = None
        try:
            empty_cache(self.device)
            data = data.to(results_device)
            logits = torch.zeros((self.label_manager.num_segmentation_heads, *data.shape[1:]),
                                 dtype=torch.half, device=results_device)
            weights = torch.zeros(data.shape[1:], dtype=torch.half, device=results_device)
            gaussian = compute_gaussian(tuple(self.configuration_manager.patch_size),
                                        sigma_scale=1. / 8, value_scaling_factor=10,
                                        device=results_device) if self.use_gaussian else 1
            first = data[slicers[0]][None].to(self.device)  # (1, C, *patch)
            mirrors = len(self._mirror_flips(first.ndim))
            positions = max(1, self.images_per_forward(first) // mirrors)
            with tqdm(total=len(slicers), disable=not self.allow_tqdm) as bar:
                for start in range(0, len(slicers), positions):
                    group = slicers[start:start + positions]
                    batch = torch.stack([data[s] for s in group]).to(self.device)  # (B, C, *patch)
                    predictions = self._internal_maybe_mirror_and_predict(batch).to(results_device)
                    for s, prediction in zip(group, predictions):  # nnU-Net's order and dtypes
                        if self.use_gaussian:
                            prediction *= gaussian
                        logits[s] += prediction
                        weights[s[1:]] += gaussian
                    bar.update(len(group))
            torch.div(logits, weights, out=logits)
            if torch.any(torch.isinf(logits)):
                raise RuntimeError("inf in the predicted logits (fp16 accumulation overflowed)")
            return logits
        except Exception:
            # the traceback keeps this frame alive: free its device arrays before nnU-Net retries
            # with the result arrays on the CPU
            logits = weights = batch = None  # noqa: F841
            empty_cache(self.device)
            raise


class BatchedPredictor(BatchedPredictionMixin, nnUNetPredictor):
    """nnU-Net's predictor with batched sliding-window prediction."""


@contextlib.contextmanager
def predictor_class_injected(module, predictor_class: type = BatchedPredictor):
    """Within the block ``module.nnUNetPredictor`` is ``predictor_class``: nnU-Net's trainer builds
    its end-of-training validation predictor inline under that name."""
    original = module.nnUNetPredictor
    module.nnUNetPredictor = predictor_class
    try:
        yield
    finally:
        module.nnUNetPredictor = original
