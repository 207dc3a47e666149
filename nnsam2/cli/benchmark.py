"""nnsam2_benchmark: costs of the SAM2 variants vs frozen SAM2, nnU-Net's U-Net and SAM ViT-B."""
import argparse
import logging
from typing import Optional, Sequence

from nnsam2.cli.common import show_progress
from nnsam2.benchmark import ALL_VARIANTS, benchmark, format_text


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nnsam2_benchmark", description=__doc__)
    p.add_argument("--sizes", nargs="+", help="SAM2 sizes (default: the plans' size, else tiny)")
    p.add_argument("--patch", nargs=2, type=int, action="append", metavar=("H", "W"),
                   help="patch size, multiples of 32; repeat for several (default: the plans')")
    p.add_argument("-d", "--dataset", help="dataset name or id in nnUNet_preprocessed")
    p.add_argument("-p", "--plans", default="nnSAM2Plans", help="plans identifier")
    p.add_argument("-c", "--configuration", default="2d", help="plans configuration")
    p.add_argument("--channels", type=int, help="input channels (default: plans', else 1)")
    p.add_argument("--classes", type=int, help="output classes (default: plans', else 2)")
    p.add_argument("--batch-size", type=int, help="batch size N (default: plans', else 2)")
    p.add_argument("--variants", nargs="+", choices=ALL_VARIANTS,
                   help="subset of variants (default: all but none_peg)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--warmup", type=int, default=3, help="untimed runs per measurement")
    p.add_argument("--repeats", type=int, default=10, help="timed runs per measurement")
    p.add_argument("--threads", type=int, help="torch threads per job (default: torch's)")
    p.add_argument("--no-train", action="store_true", help="skip the training-step timing")
    p.add_argument("--no-paired", action="store_true",
                   help="skip the paired (alternating, one process) latency comparisons")
    p.add_argument("--in-process", action="store_true",
                   help="no process per model (faster start; no per-model CPU peak RSS)")
    p.add_argument("--json", help="write the full result as JSON")
    p.add_argument("--markdown", help="write the tables as Markdown")
    p.add_argument("--plot", help="write a PNG plot (latency vs GFLOPs and parameters)")
    p.add_argument("--disable_progress_bar", action="store_true",
                   help="no progress bar (it is also off when the output is not a terminal)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        result = run(args)
    except ValueError as err:  # bad patch, size or variant: a usage error, not a crash
        parser.error(str(err))
    print(format_text(result))


def run(args: argparse.Namespace) -> dict:
    return benchmark(
        sizes=args.sizes, patches=args.patch, dataset=args.dataset, plans=args.plans,
        configuration=args.configuration, channels=args.channels, classes=args.classes,
        batch_size=args.batch_size, variants=args.variants, device=args.device,
        warmup=args.warmup, repeats=args.repeats, train=not args.no_train,
        threads=args.threads, paired=not args.no_paired, isolate=not args.in_process,
        json_path=args.json, markdown_path=args.markdown, plot_path=args.plot,
        progress=show_progress(args.disable_progress_bar))


if __name__ == "__main__":
    main()
