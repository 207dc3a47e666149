"""HTML from the collected report data, with a jinja2 template (``templates/report.html.j2``).

Autoescaping is on: case names, paths and instructions come from files, not from us.
"""
import base64
import math
from typing import Any

import jinja2

import nnsam2
from nnsam2.model_report.missing import is_missing

NOT_AVAILABLE = "not available"


def number(value: Any, digits: int = 4) -> str:
    """Fixed digits; "n/a" for None and NaN (a class absent from reference and prediction)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def dice_colour(value: Any) -> str:
    """A cell background from red (Dice 0) to green (Dice 1), so failures stand out."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "background:#eee"
    return f"background:hsl({120 * max(0.0, min(1.0, value)):.0f},70%,85%)"


def count(value: Any) -> str:
    return "n/a" if value is None else f"{int(value):,}"


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("nnsam2.model_report", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters.update(number=number, count=count, dice_colour=dice_colour, data_uri=data_uri)
    env.tests["missing"] = is_missing
    env.globals.update(NOT_AVAILABLE=NOT_AVAILABLE, version=nnsam2.__version__)
    return env


def render_html(report: dict) -> str:
    return _environment().get_template("report.html.j2").render(**report)
