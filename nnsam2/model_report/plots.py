"""The report's figures as PNG bytes, drawn with matplotlib's object API on the Agg canvas.

``Figure`` objects (not pyplot) leave no global figure or backend state behind, so the report can
be written from inside training or the demo without touching their plotting.
"""
import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from nnsam2.model_report.overlays import CaseSlice

REFERENCE_COLOUR = "#00e000"
PREDICTION_COLOUR = "#ff2060"


def _png(fig: Figure, dpi: int) -> bytes:
    FigureCanvasAgg(fig)  # Agg renders PNG whatever backend pyplot may have chosen
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def training_curves(curves: dict, title: str) -> bytes:
    """Four panels: losses, pseudo Dice, learning rate, epoch time, against the epoch."""
    fig = Figure(figsize=(9, 5.5))  # fixed margins: a layout engine costs seconds per figure
    fig.subplots_adjust(left=0.09, right=0.98, bottom=0.09, top=0.91, wspace=0.28, hspace=0.1)
    fig.suptitle(f"{title} ({curves['epochs']} epochs, from {curves['checkpoint']})")
    epochs = range(curves["epochs"])
    panels = fig.subplots(2, 2, sharex=True)
    loss, dice, lr, time = panels.ravel()
    loss.plot(epochs, curves["train_losses"], label="train loss", color="tab:blue")
    loss.plot(epochs, curves["val_losses"], label="validation loss", color="tab:red")
    dice.plot(epochs, curves["mean_fg_dice"], ":", label="pseudo Dice", color="tab:green")
    dice.plot(epochs, curves["ema_fg_dice"], label="pseudo Dice (moving avg.)", color="tab:green")
    lr.plot(epochs, curves["lrs"], color="tab:purple")
    time.plot(epochs, curves["epoch_time"], color="tab:gray")
    for ax, ylabel in zip((loss, dice, lr, time), ("loss", "pseudo Dice", "learning rate",
                                                    "epoch time [s]")):
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    for ax in (loss, dice):
        ax.legend(fontsize="small")
    time.set_ylim(bottom=0)
    for ax in (lr, time):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return _png(fig, dpi=80)


def overlay(case: CaseSlice, title: str) -> bytes:
    """The image slice with the reference (green) and prediction (red) contours of one class."""
    fig = Figure(figsize=(2.6, 2.9))
    ax = fig.add_axes((0.02, 0.02, 0.96, 0.82))  # room above for the two-line title
    ax.imshow(case.image, cmap="gray", vmin=0.0, vmax=1.0, aspect=case.aspect,
              interpolation="nearest")
    for mask, colour in ((case.reference, REFERENCE_COLOUR), (case.prediction, PREDICTION_COLOUR)):
        if mask.any():
            ax.contour(mask.astype(float), levels=[0.5], colors=colour, linewidths=1.2)
    ax.set_title(title, fontsize=8)
    ax.set_axis_off()
    return _png(fig, dpi=90)


def dice_after_clicks(summary: dict) -> bytes:
    """Mean Dice per class (and over classes) against the number of simulated clicks."""
    fig = Figure(figsize=(5, 3.4))
    fig.subplots_adjust(left=0.13, right=0.97, bottom=0.14, top=0.9)
    ax = fig.subplots()
    clicks = range(summary["num_clicks"] + 1)
    for name, values in summary["dice_per_class"].items():
        ax.plot(clicks, values, marker="o", ms=3, label=name)
    ax.plot(clicks, summary["mean_dice"], "k--", marker="o", ms=3, label="mean")
    ax.set_xlabel("simulated clicks")
    ax.set_ylabel("Dice")
    ax.set_title(f"Dice after each click ({summary['num_cases']} case(s))", fontsize=10)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _png(fig, dpi=90)
