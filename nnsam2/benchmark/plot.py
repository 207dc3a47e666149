"""PNG plot of a benchmark: batch-1 latency against GFLOPs and against parameters."""
import logging

from nnsam2.benchmark.analysis import metric

logger = logging.getLogger(__name__)

MARKERS = "osD^v<>phX*P"


def write_plot(result: dict, path: str) -> None:
    """Two log-log panels (latency vs GFLOPs, latency vs parameters), one marker per variant."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["rows"] if metric(r, "latency_bs1") is not None]
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    for ax, (key, label) in zip(axes, (("gflops", "forward GFLOPs per patch (2 x MACs)"),
                                       ("params", "parameters (millions)"))):
        for i, variant in enumerate(variants):
            pts = [r for r in rows if r["variant"] == variant]
            xs = [metric(r, key) / (1e6 if key == "params" else 1.0) for r in pts]
            ys = [metric(r, "latency_bs1") for r in pts]
            ax.scatter(xs, ys, marker=MARKERS[i % len(MARKERS)], s=45, label=variant)
            for r, x, y in zip(pts, xs, ys):
                tag = f"{r['size'] or ''} {r['input_patch'][0]}x{r['input_patch'][1]}".strip()
                ax.annotate(tag, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("latency, batch 1, median (ms)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    machine = result["machine"]
    fig.suptitle(f"nnsam2_benchmark on {result['settings']['device']} "
                 f"({machine.get('gpu') or machine['cpu']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    logger.info("wrote %s", path)
