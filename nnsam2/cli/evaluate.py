"""``nnsam2_evaluate``: thin-structure metrics (sensitivity, specificity, AUC, clDice) per case.

Example (DRIVE in the nnU-Net raw layout, predictions made with ``--save_probabilities``)::

    nnsam2_evaluate -ref nnUNet_raw/Dataset114_DRIVE/labelsTs -pred predictions \
        -fov nnUNet_raw/Dataset114_DRIVE/fovTs --cldice -o predictions/summary_thin_structures.json
"""
import argparse
import logging
import os
import sys
from typing import List, Optional

from nnsam2.evaluation import EvaluationInputError, evaluate_folders, format_table, write_json_atomic
from nnsam2.evaluation.summary_file import SUMMARY_FILE
from nnsam2.utils.nnunet_env import UsageError
from nnsam2.utils.output_paths import check_output_file

DEFAULT_OUTPUT = SUMMARY_FILE


def _ignore_label(value: str):
    if value.lower() in ("auto", "none"):
        return None if value.lower() == "none" else "auto"
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nnsam2_evaluate", description=__doc__.splitlines()[0])
    p.add_argument("-ref", required=True, help="folder of reference segmentations (e.g. labelsTs)")
    p.add_argument("-pred", required=True, help="folder of predictions (+ CASE.npz for the AUC)")
    p.add_argument("-fov", default=None, help="folder of field-of-view masks, nonzero = inside")
    p.add_argument("-l", "--labels", type=int, nargs="+", default=None,
                   help="labels to evaluate (default: all foreground labels of the references)")
    p.add_argument("--file-ending", default=None, help="e.g. .nii.gz or .png (default: detected)")
    p.add_argument("-o", "--output", default=None,
                   help=f"summary JSON (default: PRED/{DEFAULT_OUTPUT})")
    p.add_argument("--cldice", type=int, nargs="*", default=None, metavar="LABEL",
                   help="also compute clDice, for the given labels or (no value) all evaluated labels")
    p.add_argument("--cldice-3d", action="store_true",
                   help="skeletonize in 3D instead of per 2D slice")
    p.add_argument("--ignore-label", type=_ignore_label, default="auto",
                   help="reference label excluded from all metrics; 'auto' (default): the 'ignore' "
                        "label of nnU-Net's dataset.json near -ref or in -pred; 'none': no ignore label")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    cldice = True if args.cldice == [] else (args.cldice or False)
    output = args.output or os.path.join(args.pred, DEFAULT_OUTPUT)
    try:
        if args.output or os.path.isdir(args.pred):  # a missing -pred is reported below
            check_output_file(output)  # before any file is read
        summary = evaluate_folders(args.ref, args.pred, args.fov, args.labels, args.file_ending,
                                   cldice, not args.cldice_3d, args.ignore_label)
    except (EvaluationInputError, UsageError) as err:
        print(f"nnsam2_evaluate: error: {err}", file=sys.stderr)
        return 1
    print(format_table(summary))
    for note in summary["notes"]:
        print(f"note: {note}")
    write_json_atomic(summary, output)
    print(f"summary written to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
