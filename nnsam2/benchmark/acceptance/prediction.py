"""Check 7: batched sliding-window prediction against nnU-Net's patch-at-a-time prediction on
the same network and image: the same argmax, and the speed-up batching exists for."""
import time
from types import SimpleNamespace

import torch
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

from nnsam2.benchmark.acceptance.core import Context, Outcome
from nnsam2.benchmark.measure import synchronize
from nnsam2.inference.batched_prediction import BatchedPredictor
from nnsam2.network import AdapterCfg, build_network

CLASSES = 3
MIN_AGREEMENT = 0.999  # fraction of voxels with the same argmax
MIN_SPEEDUP = 3.0  # CUDA only: the CPU gains little from batches


def make_predictor(cls, net, ctx: Context):
    """A predictor of ``cls`` on ``net`` as nnU-Net's model-folder loading leaves it: Gaussian
    weighting, step 0.5, mirroring on both in-plane axes."""
    predictor = cls(tile_step_size=0.5, use_gaussian=True, use_mirroring=True,
                    perform_everything_on_device=ctx.device.type == "cuda", device=ctx.device,
                    allow_tqdm=False)
    labels = SimpleNamespace(num_segmentation_heads=CLASSES)
    predictor.manual_initialization(  # nnU-Net reads only these fields of the plans here
        net, SimpleNamespace(get_label_manager=lambda _: labels),
        SimpleNamespace(patch_size=list(ctx.settings.prediction_patch)), None, {},
        "acceptance", (0, 1))
    return predictor


def timed_prediction(predictor, image: torch.Tensor, device: torch.device):
    """(logits, seconds) of one sliding-window prediction, after one untimed slice."""
    predictor.predict_sliding_window_return_logits(image[:, :1])  # warm-up: kernels, probes
    synchronize(device)
    start = time.perf_counter()
    logits = predictor.predict_sliding_window_return_logits(image)
    synchronize(device)
    return logits, time.perf_counter() - start


def check_prediction(ctx: Context) -> Outcome:
    torch.manual_seed(0)
    net = build_network(1, CLASSES, size=ctx.settings.size, adapter=AdapterCfg("hp")).eval()
    net.autocast_dtype = ctx.policy.autocast_dtype  # as SAM2Predictor sets it
    image = torch.randn(ctx.settings.prediction_image, generator=torch.Generator().manual_seed(1))
    single, single_s = timed_prediction(make_predictor(nnUNetPredictor, net, ctx), image,
                                        ctx.device)
    batched, batched_s = timed_prediction(make_predictor(BatchedPredictor, net, ctx), image,
                                          ctx.device)
    agreement = float((single.argmax(0).cpu() == batched.argmax(0).cpu()).float().mean())
    speedup = single_s / batched_s
    needs_speed = ctx.device.type == "cuda"
    passed = agreement >= MIN_AGREEMENT and (speedup >= MIN_SPEEDUP or not needs_speed)
    figure = (f"argmax agreement {100 * agreement:.3f}%; {single_s:.2f} s patch-at-a-time, "
              f"{batched_s:.2f} s batched ({speedup:.1f}x)")
    return Outcome(passed, figure,
                   f"hp {ctx.settings.size}, image {tuple(ctx.settings.prediction_image)}, "
                   f"patch {tuple(ctx.settings.prediction_patch)}, mirrored; pass: agreement >= "
                   f"{100 * MIN_AGREEMENT:g}%" + (f" and >= {MIN_SPEEDUP:g}x" if needs_speed else
                                                   " (CPU: the speed-up is reported only)"))
