"""A static HTML report of a trained model folder (``nnsam2_report``)."""
from nnsam2.report.build import REPORT_FILE, collect_report, write_report

__all__ = ["REPORT_FILE", "collect_report", "write_report"]
