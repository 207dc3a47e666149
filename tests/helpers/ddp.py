"""DDP on the CPU for the tests: a few processes joined in a gloo group, each running one
function of this package. Targets get (rank, *args) and report through files; the spawned
processes import only what their target imports, so nnU-Net reads the environment each target
sets before importing it."""
import functools
import os
import time
import traceback
from dataclasses import dataclass
from datetime import timedelta
from types import SimpleNamespace

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel as DDP

WORLD_SIZE = 2
COLLECTIVE_TIMEOUT = 120  # s; a rank left alone in a collective fails after this, not hangs


def run_in_gloo_group(target, args: tuple, folder: str, timeout: float,
                      world_size: int = WORLD_SIZE) -> None:
    """``target(rank, *args)`` in ``world_size`` spawned processes sharing a gloo group; raises
    when one fails (the others are ended, not left waiting in a collective) or after ``timeout``
    seconds."""
    init_file = os.path.join(folder, "gloo_init")  # a file rendezvous: no port to pick
    context = mp.start_processes(_entry, (world_size, init_file, target, args),
                                 nprocs=world_size, join=False, start_method="spawn")
    deadline = time.monotonic() + timeout
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.terminate()
            raise TimeoutError(f"{target.__name__} on {world_size} ranks took over {timeout} s")


def _entry(rank: int, world_size: int, init_file: str, target, args: tuple):
    torch.set_num_threads(1)  # one core per rank
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world_size, timeout=timedelta(seconds=COLLECTIVE_TIMEOUT))
    try:
        target(rank, *args)
    finally:
        dist.destroy_process_group()


def composite_loss_on_rank(rank: int, logits: torch.Tensor, target: torch.Tensor,
                           out_file: str) -> None:
    """CompositeLoss (ddp=True) on this rank's share of the batch; writes the terms, the
    rank-averaged loss and the gradient of this rank's logits to ``out_file % rank``."""
    from nnsam2.losses import CompositeLoss
    mine = torch.tensor_split(torch.arange(len(logits)), dist.get_world_size())[rank]
    logits = logits[mine].clone().requires_grad_()
    terms = CompositeLoss(ddp=True).terms(logits, target[mine])
    loss = terms["bce"] + terms["dice"] + terms["tversky"]
    loss.backward()
    mean_loss = loss.detach().clone()
    dist.all_reduce(mean_loss)  # what DDP's gradient averaging optimises: the mean over ranks
    torch.save({"terms": {k: v.detach() for k, v in terms.items()}, "grad": logits.grad,
                "mean_loss": mean_loss / dist.get_world_size(), "rows": mine}, out_file % rank)


@dataclass(frozen=True)
class TrainingRun:
    """One ``nnsam2_train -num_gpus 2`` run: fold 0, or fold "all" with ``--train-all`` (its own
    fold folder in the same model folder)."""
    name: str
    trainer: str
    configuration: str
    train_all: bool

    @property
    def fold(self) -> str:
        return "all" if self.train_all else "0"


def train_on_rank(rank: int, env: dict, dataset: str, runs: list, out_file: str) -> None:
    """Each of ``runs`` through nnsam2's ``train(num_gpus=2)`` with this process as one rank;
    writes per run the trainer's outcome on this rank (or the error) to ``out_file % rank``."""
    os.environ.update(env)  # before nnU-Net is imported: it reads its folders once
    spy = _patch_nnunet_ddp_for_cpu()
    if rank != 0:
        _leave_fold_lock_to_rank_0()
    from nnsam2.training.run_training import train
    results = {}
    for run in runs:
        spy.clear()
        start = time.monotonic()
        try:
            train(dataset, run.configuration, run.fold, trainer=run.trainer, random_init=True,
                  train_all=run.train_all, num_gpus=WORLD_SIZE,
                  device="cuda")  # passes nnU-Net's DDP check; the trainer runs on the CPU
            results[run.name] = _outcome(spy)
        except Exception:
            results[run.name] = {"error": traceback.format_exc()}
        results[run.name]["seconds"] = time.monotonic() - start
    torch.save(results, out_file % rank)


def _leave_fold_lock_to_rank_0() -> None:
    """In real DDP only the launching process runs ``train()`` and holds the fold's lock; here
    every rank runs it, so the other ranks neither lock nor clean the fold folder."""
    import contextlib
    from nnsam2.training import fold_lock
    fold_lock.check_free = lambda fold_folder: None
    fold_lock.held = lambda fold_folder: contextlib.nullcontext()
    fold_lock.remove_leftovers = lambda fold_folder: None


class _Spy:
    """What the product code did on this rank: the trainers it built, the checkpoints it wrote."""

    def __init__(self):
        self.trainers, self.writes = [], []

    def clear(self):
        self.trainers.clear()
        self.writes.clear()


def _patch_nnunet_ddp_for_cpu() -> _Spy:
    """nnU-Net's DDP path, with what is NCCL/CUDA-only replaced in this process: its workers are
    already up (this process is one) with their gloo group joined, and the trainer, which
    nnU-Net puts on ``cuda:<rank>`` under DDP, stays on the CPU. nnsam2's code is not touched;
    two spies only record what it did."""
    import nnunetv2.run.run_training as nnunet_run
    import nnunetv2.training.nnUNetTrainer.nnUNetTrainer as nnunet_trainer
    from nnsam2.training import checkpoint_files
    spy = _Spy()
    nnunet_run.setup_ddp = lambda rank, world_size: None  # the group exists (_entry)
    nnunet_run.cleanup_ddp = lambda: None  # kept for the next run
    # mp.spawn(run_ddp, ...): this process is already the rank's worker
    nnunet_run.mp = SimpleNamespace(spawn=lambda fn, args, nprocs, join: fn(dist.get_rank(), *args))
    torch.cuda.set_device = lambda device: None
    # CPU modules take no device_ids; find_unused_parameters stays nnU-Net's (False)
    nnunet_trainer.DDP = lambda module, device_ids=None, **kwargs: DDP(module, **kwargs)
    # SyncBatchNorm trains on GPUs only; the LW adapter's BatchNorm stays a BatchNorm here
    torch.nn.SyncBatchNorm.convert_sync_batchnorm = classmethod(lambda cls, module, *a: module)
    nnunet_trainer.nnUNetTrainer.__init__ = _on_cpu(nnunet_trainer.nnUNetTrainer.__init__)
    nnunet_run.get_trainer_from_args = _recorded(nnunet_run.get_trainer_from_args, spy.trainers)
    checkpoint_files.write = _write_recorded(checkpoint_files.write, spy.writes)
    return spy


def _on_cpu(init):
    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.device = torch.device("cpu")  # nnU-Net: cuda:<rank> whenever DDP runs
    return wrapper


def _recorded(get_trainer, trainers: list):
    @functools.wraps(get_trainer)
    def wrapper(*args, **kwargs):
        trainers.append(get_trainer(*args, **kwargs))
        return trainers[-1]
    return wrapper


def _write_recorded(write, writes: list):
    @functools.wraps(write)
    def wrapper(checkpoint, filename, *args, **kwargs):
        writes.append(os.path.basename(filename))
        return write(checkpoint, filename, *args, **kwargs)
    return wrapper


def _outcome(spy: _Spy) -> dict:
    """A digest of the trainable weights (equal on all ranks after DDP steps), the optimiser
    steps each trainable tensor took (AdamW skips tensors without a gradient), whether the loss
    parts gather their batch counts over the ranks, and the checkpoint files this rank wrote."""
    from nnsam2.network.frozen_store import content_hash
    from nnsam2.utils.wrappers import unwrap
    (trainer,) = spy.trainers
    net = unwrap(trainer.network)
    trainable = {n: p for n, p in net.named_parameters() if p.requires_grad}
    steps = [int(trainer.optimizer.state[p]["step"]) if p in trainer.optimizer.state else 0
             for p in trainable.values()]
    return {"trainable_sha256": content_hash(trainable), "num_trainable": len(trainable),
            "steps": sorted(set(steps)), "writes": list(spy.writes),
            "loss_ddp": [m.ddp for m in trainer.loss.modules() if hasattr(m, "ddp")]}
