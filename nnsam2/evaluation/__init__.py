"""Evaluation beyond nnU-Net's Dice/IoU: sensitivity, specificity, pixel AUC, clDice, FOV masks."""
from nnsam2.evaluation.files import EvaluationInputError
from nnsam2.evaluation.folders import evaluate_folders
from nnsam2.evaluation.summary_file import format_table, write_json_atomic
from nnsam2.evaluation.thin_structures import (accuracy, case_metrics, cl_dice, confusion_counts, dice,
                                               label_metrics, pixel_auc, sensitivity, skeleton,
                                               specificity)

__all__ = ["EvaluationInputError", "evaluate_folders", "format_table", "write_json_atomic",
           "accuracy", "case_metrics", "cl_dice", "confusion_counts", "dice", "label_metrics",
           "pixel_auc", "sensitivity", "skeleton", "specificity"]
