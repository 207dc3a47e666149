"""The planner's training-memory estimate (``nnsam2/experiment_planning/training_footprint.py``)
against the CPU allocator's peak during real fp32 training steps of the planned network."""
import pytest
import torch
from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
from torch.profiler import ProfilerActivity, profile

from nnsam2.experiment_planning.training_footprint import estimate_training_memory
from nnsam2.network import build_network

SIZE, CHANNELS, CLASSES = "tiny", 1, 3
PATCHES = ((128, 128), (320, 320))  # measured at the patch itself; scaled from 256x256
TOLERANCE = 0.3
MB = 1e6


def allocator_peak(fn) -> tuple:
    """(peak, end) of the bytes that ``fn`` holds through torch's CPU allocator: the profiler's
    allocation and free events (``profile_memory``) summed in time order. Frees of blocks
    allocated before ``fn`` are not reported, so ``fn`` must free only what it allocated."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e.start_ns(), i, e.nbytes()) for i, e in
                    enumerate(prof.profiler.kineto_results.events()) if e.name() == "[memory]")
    held = peak = 0
    for _, _, nbytes in events:
        held += nbytes
        peak = max(peak, held)
    return peak, held


pytestmark = pytest.mark.usefixtures("one_thread")


def test_allocator_peak_follows_allocations_and_frees():
    def allocate():
        a = torch.empty(10_000_000, dtype=torch.uint8)
        b = torch.empty(20_000_000, dtype=torch.uint8)
        del a
        c = torch.empty(5_000_000, dtype=torch.uint8)
        del b, c
        return torch.ones(1_000_000, dtype=torch.uint8)  # freed when dropped, inside the profile

    assert allocator_peak(allocate) == (30_000_000, 0)


class TrainingSteps:
    """nnU-Net's training step (Dice + CE, clipping, AdamW) of the adapted SAM2 in fp32."""

    def __init__(self):
        torch.manual_seed(0)
        self.net = build_network(CHANNELS, CLASSES, size=SIZE)
        params = [p for p in self.net.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=1e-4)
        self.loss = DC_and_CE_loss({"batch_dice": False, "smooth": 1e-5, "do_bg": False,
                                    "ddp": False}, {}, weight_ce=1, weight_dice=1,
                                   ignore_label=None, dice_class=MemoryEfficientSoftDiceLoss)

    def step(self, batch: int, patch) -> None:
        data = torch.randn(batch, CHANNELS, *patch)
        target = torch.randint(0, CLASSES, (batch, 1, *patch)).float()
        self.loss(self.net(data), target).backward()
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), 12)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)  # here, so that the step frees what it made


@pytest.fixture(scope="module")
def measured():
    """Bytes held between steps (weights, buffers, AdamW state: built and one step taken under
    the profiler) and the peak above that during a step, per (patch, batch)."""
    torch.set_num_threads(1)
    built = []
    _, held = allocator_peak(lambda: built.append(warmed_up_steps()))
    peaks = {(patch, batch): allocator_peak(lambda: built[0].step(batch, patch))[0]
             for patch in PATCHES for batch in (1, 2)}
    return held, peaks


def warmed_up_steps() -> TrainingSteps:
    steps = TrainingSteps()
    steps.step(1, (64, 64))  # AdamW allocates its moments in the first step
    return steps


def assert_close(estimated: float, measured: float, what: str) -> None:
    assert abs(estimated / measured - 1) <= TOLERANCE, \
        f"{what}: estimated {estimated / MB:.1f} MB, measured {measured / MB:.1f} MB"


@pytest.mark.parametrize("patch", PATCHES, ids=lambda p: f"{p[0]}x{p[1]}")
def test_estimate_matches_the_measured_training_step(measured, patch):
    held, peaks = measured
    mem = estimate_training_memory(SIZE, CHANNELS, CLASSES, patch)
    per_sample, fixed = mem["fp32_per_sample_bytes"], mem["fp32_fixed_bytes"]
    one, two = peaks[patch, 1], peaks[patch, 2]
    print(f"{SIZE} {patch}: held {held / MB:.1f} MB, step peaks {one / MB:.1f} / {two / MB:.1f} "
          f"MB; estimate fixed {fixed / MB:.1f} MB + {per_sample / MB:.1f} MB per sample")
    assert_close(per_sample, two - one, "activations per sample (batch 2 - batch 1)")
    for batch, peak in ((1, one), (2, two)):
        assert_close(fixed + batch * per_sample, held + peak, f"whole step, batch {batch}")
