"""nnsam2_train DATASET CONFIGURATION FOLD -tr TRAINER: nnU-Net training of the adapted SAM2."""
import argparse

import torch

from nnsam2.cli.common import run_cli
from nnsam2.utils.progress import show_progress
from nnsam2.experiment_planning.planner import PLANS_NAME
from nnsam2.training.run_settings import ENV_CHECKPOINT_DIR


def run(args: argparse.Namespace) -> None:
    from nnsam2.training.run_training import train
    train(args.dataset, args.configuration, args.fold, trainer=args.tr, plans=args.p,
          sam2_checkpoint=args.sam2_checkpoint, random_init=args.random_init,
          train_all=args.train_all, pretrained_weights=args.pretrained_weights,
          allow_pickle=args.allow_pickle, num_gpus=args.num_gpus, npz=args.npz,
          continue_training=args.c, only_validation=args.val, validate_best=args.val_best,
          disable_checkpointing=args.disable_checkpointing, device=args.device,
          progress_bar=show_progress(args.disable_progress_bar), from_scratch=args.from_scratch,
          gate_open=args.sam2_gate_open)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nnsam2_train", description=__doc__)
    p.add_argument("dataset", help="dataset name or id")
    p.add_argument("configuration", help="configuration: 2d, or 2d_mem (3D datasets: runs of "
                                         "slices read by SAM2's memory)")
    p.add_argument("fold", help="fold 0-4 or 'all'")
    p.add_argument("-tr", default="SAM2DualAdapterTrainer", help="trainer class name")
    p.add_argument("-p", default=PLANS_NAME, help=f"plans identifier (default {PLANS_NAME})")
    p.add_argument("--sam2-checkpoint", help="official SAM2/SAM2.1 .pt file of the planned size "
                   f"(or set {ENV_CHECKPOINT_DIR} to a folder of them)")
    p.add_argument("--random-init", action="store_true",
                   help="train without pretrained SAM2 weights, on purpose (tests, demos)")
    p.add_argument("--train-all", action="store_true",
                   help="train every parameter, not only adapters/PEG/decoder (random-init demos)")
    p.add_argument("-pretrained_weights",
                   help="checkpoint of an nnsam2 model (any dataset, same SAM2 size) to start from: "
                        "every tensor that fits is loaded, the class parts only for the same labels")
    p.add_argument("--from-scratch", action="store_true",
                   help="2d_mem: do not start from the trained 2d model of the same fold (the "
                        "default, which needs that model)")
    p.add_argument("--sam2-gate-open", action="store_true",
                   help="2d_mem: the memory gate starts open, i.e. SAM2's memory path exactly "
                        "(default: closed, the network starts as the 2d model)")
    p.add_argument("--allow-pickle", action="store_true",
                   help="load checkpoints with full unpickling (runs code inside them): only for "
                        "trusted legacy files that the safe loader refuses")
    p.add_argument("-num_gpus", type=int, default=1)
    p.add_argument("--npz", action="store_true", help="save validation probabilities")
    p.add_argument("--c", action="store_true", help="continue from the latest checkpoint")
    p.add_argument("--val", action="store_true", help="only run the final validation")
    p.add_argument("--val_best", action="store_true", help="validate with checkpoint_best")
    p.add_argument("--disable_checkpointing", action="store_true")
    p.add_argument("-device", default="cuda", choices=["cuda", "cpu", "mps"])
    p.add_argument("--disable_progress_bar", action="store_true",
                   help="no per-iteration progress bar (it is also off when the output is not a "
                        "terminal)")
    return p


def main(argv=None) -> None:
    args = parser().parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser().error("-device cuda requested but no CUDA device is available; use -device cpu")
    run_cli("nnsam2_train", lambda: run(args))
