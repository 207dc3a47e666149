"""nnsam2_evaluate_interactive: Dice after 0..N simulated clicks (NoC@85/90, a table, a plot)
for a model trained with clicks, on a fold's validation cases or a test folder."""
import argparse
import os

import torch

from nnsam2.cli.common import run_cli
from nnsam2.experiment_planning.planner import PLANS_NAME


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nnsam2_evaluate_interactive", description=__doc__)
    p.add_argument("-d", required=True, help="dataset name or id")
    p.add_argument("-c", default="2d", help="configuration (default 2d)")
    p.add_argument("-tr", default="SAM2DualAdapterTrainer_Interactive", help="trainer class name")
    p.add_argument("-p", default=PLANS_NAME, help=f"plans identifier (default {PLANS_NAME})")
    p.add_argument("-f", nargs="+", default=["0"],
                   help="fold(s) of the model (default 0); its validation cases unless -i is given")
    p.add_argument("-chk", default="checkpoint_final.pth", help="checkpoint file name")
    p.add_argument("--clicks", type=int, default=5, help="clicks simulated per case (default 5)")
    p.add_argument("-i", help="test images (CASE_XXXX files) instead of the validation cases")
    p.add_argument("-ref", help="references of -i (CASE files)")
    p.add_argument("-o", help="output folder (default: MODEL/fold_F/interactive for validation "
                              "cases, required with -i)")
    p.add_argument("--save_clicks", metavar="FILE",
                   help="also write the simulated clicks here (nnsam2_predict --clicks replays "
                        "them); always written to the output folder as clicks.json")
    p.add_argument("--disable_tta", action="store_true", help="no mirroring test-time augmentation")
    p.add_argument("-device", default="cuda", choices=["cuda", "cpu", "mps"])
    return p


def run(args) -> None:
    from nnsam2.interactive.evaluate_api import evaluate_model
    summary, output = evaluate_model(
        args.d, args.c, args.tr, args.p, args.f, args.chk, args.clicks, images=args.i,
        references=args.ref, output=args.o, save_clicks=args.save_clicks, device=args.device,
        mirroring=not args.disable_tta)
    print(open(os.path.join(output, "interactive.md")).read())
    print(f"written to {output}")


def main(argv=None) -> None:
    args = parser().parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser().error("-device cuda requested but no CUDA device is available; use -device cpu")
    run_cli("nnsam2_evaluate_interactive", lambda: run(args))
