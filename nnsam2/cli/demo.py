"""nnsam2_demo: the whole pipeline on a generated dataset, on a CPU, in a few minutes.

Generates a small 2D NIfTI dataset (organ + lesion), then plans, preprocesses, trains the ``toy``
SAM2 from random weights (every parameter trains: there are no pretrained weights here), predicts
the held-out cases from raw NIfTI, prints Dice per class and writes the model's HTML report.
"""
import argparse

from nnsam2.cli.common import run_cli


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="nnsam2_demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--output", default="nnsam2_demo_output",
                   help="folder for the demo's nnUNet_raw/preprocessed/results and predictions")
    p.add_argument("-device", default="cpu", choices=["cpu", "cuda", "mps"])
    args = p.parse_args(argv)
    from nnsam2.demo import run_demo
    run_cli("nnsam2_demo", lambda: run_demo(args.output, args.device))
