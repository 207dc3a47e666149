"""nnsam2_report MODEL_FOLDER [-o REPORT_FOLDER]: a static HTML report of a trained model folder.

One self-contained file (figures embedded), opened from disk in any browser: model card, per-fold
validation metrics, per-case table (worst first), training curves, worst/median/best example
overlays per class, the postprocessing find_best_configuration chose, thin-structure metrics.
Pieces that do not exist yet show as "not available".
"""
import argparse
import os

from nnsam2.cli.common import run_cli
from nnsam2.nnunet.safe_load import ENV_ALLOW_PICKLE


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


def report(a) -> None:
    from nnsam2.report.layout import open_model_folder
    open_model_folder(a.model_folder)  # a wrong path fails before the heavy imports below
    from nnsam2.report.build import write_report
    if a.allow_pickle:
        os.environ[ENV_ALLOW_PICKLE] = "1"
    print(f"report written to {write_report(a.model_folder, a.output)}")


def main(argv=None) -> None:
    a = parser().parse_args(argv)
    run_cli("nnsam2_report", lambda: report(a))
