"""nnsam2_report MODEL_FOLDER [-o REPORT_FOLDER]: a static HTML report of a trained model folder.

One self-contained file (figures embedded), opened from disk in any browser: model card, per-fold
validation metrics, per-case table (worst first), training curves, worst/median/best example
overlays per class, the postprocessing find_best_configuration chose, thin-structure metrics.
Pieces that do not exist yet show as "not available".
"""
import argparse

from nnsam2.cli.common import run_cli


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nnsam2_report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_folder", help="nnUNet_results/DatasetXXX_Name/TRAINER__PLANS__CONFIG")
    p.add_argument("-o", "--output", default="report",
                   help="folder for the report's index.html (default: ./report)")
    p.add_argument("--allow-pickle", action="store_true",
                   help="read the training logs of trusted legacy checkpoints that the safe "
                        "loader refuses (full unpickling runs code inside them)")
    return p


def run(args: argparse.Namespace) -> None:
    from nnsam2.model_report.layout import open_model_folder
    open_model_folder(args.model_folder)  # a wrong path fails before the heavy imports below
    from nnsam2.model_report.build import write_report
    path = write_report(args.model_folder, args.output, args.allow_pickle or None)
    print(f"report written to {path}")


def main(argv=None) -> None:
    args = parser().parse_args(argv)
    run_cli("nnsam2_report", lambda: run(args))
