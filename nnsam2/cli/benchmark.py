"""nnsam2_benchmark: costs of the SAM2 variants vs frozen SAM2, nnU-Net's U-Net and SAM ViT-B;
with --whole_case, seconds per raw volume of nnsam2 models against nnU-Net 2D; with --acceptance,
a PASS/FAIL table of the first-GPU checks."""
import argparse
import logging
import shlex
import sys
from typing import Optional, Sequence

from nnsam2.utils.progress import show_progress
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
    p.add_argument("--batch_size", "--batch-size", type=int, help="batch size N (default: plans', else 2)")
    p.add_argument("--variants", nargs="+", choices=ALL_VARIANTS,
                   help="subset of variants (default: all but none_peg)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--warmup", type=int, help="untimed runs per measurement (default 3; "
                   "--whole_case: untimed predictions per model, default 1)")
    p.add_argument("--repeats", type=int, help="timed runs per measurement (default 10; "
                   "--whole_case: repetitions of every case, default 3)")
    p.add_argument("--threads", type=int, help="torch threads per job (default: torch's)")
    p.add_argument("--no_train", "--no-train", action="store_true", help="skip the training-step timing")
    p.add_argument("--no_paired", "--no-paired", action="store_true",
                   help="skip the paired (alternating, one process) latency comparisons")
    p.add_argument("--in_process", "--in-process", action="store_true",
                   help="no process per model (faster start; no per-model CPU peak RSS)")
    p.add_argument("--json", help="write the full result as JSON")
    p.add_argument("--markdown", help="write the tables as Markdown")
    p.add_argument("--plot", help="write a PNG plot (latency vs GFLOPs and parameters)")
    p.add_argument("--disable_progress_bar", action="store_true",
                   help="no progress bar (it is also off when the output is not a terminal)")
    p.add_argument("-v", "--verbose", action="store_true")
    whole = p.add_argument_group(
        "whole-case mode (--whole_case): a temporary nnU-Net workspace, ACDC-like raw volumes (or "
        "--raw_dataset), nnsam2 models (--variants lw hp lora, --sizes: one SAM2 size) and an "
        "nnU-Net 2D model trained a few iterations, then seconds per case with the same TTA")
    whole.add_argument("--whole_case", action="store_true", help="run the whole-case mode")
    whole.add_argument("--cases", type=int, default=2, help="volumes to predict (default 2)")
    whole.add_argument("--train_cases", type=int, default=2,
                       help="generated training volumes (default 2)")
    whole.add_argument("--slices", type=int, default=10, help="slices per volume (default 10)")
    whole.add_argument("--shape", nargs=2, type=int, default=[256, 216], metavar=("H", "W"),
                       help="in-plane shape (default 256 216)")
    whole.add_argument("--spacing", nargs=3, type=float, default=[10.0, 1.5, 1.5],
                       metavar=("Z", "Y", "X"), help="voxel spacing in mm (default 10 1.5 1.5)")
    whole.add_argument("--raw_dataset", help="an nnU-Net raw dataset (folder, or name in "
                       "nnUNet_raw) instead of the generated one; imagesTs is predicted "
                       "(imagesTr without it); it is copied, never written to")
    whole.add_argument("--patchwise", nargs="*", default=["lw"],
                       help="nnsam2 variants also predicted by nnU-Net's patch-at-a-time "
                            "predictor (default lw; none: empty)")
    whole.add_argument("--iterations", type=int, default=2,
                       help="training iterations per model (default 2)")
    whole.add_argument("--folds", type=int, default=1,
                       help="train every nnsam2 model on N folds and predict with fold 0 and "
                            "with all N (a fold table); default 1: fold 'all'")
    whole.add_argument("--step_size", type=float, default=0.5, help="sliding-window step size")
    whole.add_argument("--disable_tta", action="store_true", help="no mirroring (any model)")
    whole.add_argument("--workdir", help="keep the workspace here (default: a temporary folder)")
    accept = p.add_argument_group(
        "acceptance (--acceptance): every first-GPU check on --device, a PASS/FAIL/SKIP row each, "
        "printed and written to --markdown; exit code 1 if any check fails")
    accept.add_argument("--acceptance", action="store_true", help="run the acceptance checks")
    accept.add_argument("--quick", "--acceptance_quick", action="store_true",
                        help="toy sizes and tiny patches (the CPU dry run)")
    accept.add_argument("--acceptance_skip", nargs="+", default=[], metavar="CHECK",
                        help="check groups not to run: environment dcn precision memory_plan "
                             "dcn_speed train_step prediction end_to_end 2d_mem compile")
    return p


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.acceptance:
            if run_acceptance(args, argv):
                sys.exit(1)
            return
        if args.whole_case:
            from nnsam2.benchmark.whole_case.tables import format_text as whole_case_text
            print(whole_case_text(run_whole_case(args, argv)))
            return
        result = run(args)
    except ValueError as err:  # bad patch, size or variant: a usage error, not a crash
        parser.error(str(err))
    print(format_text(result))


def run_whole_case(args: argparse.Namespace, argv: Optional[Sequence[str]] = None) -> dict:
    from nnsam2.benchmark.whole_case.run import whole_case_benchmark

    if args.sizes and len(args.sizes) != 1:
        raise ValueError("--whole_case takes one SAM2 size")
    argv = sys.argv[1:] if argv is None else argv
    return whole_case_benchmark(
        variants=args.variants or ["lw", "hp"], patchwise=args.patchwise,
        sam2_size=(args.sizes or ["tiny"])[0], cases=args.cases, train_cases=args.train_cases,
        slices=args.slices, shape=args.shape, spacing=args.spacing, raw_dataset=args.raw_dataset,
        iterations=args.iterations, folds=args.folds, device=args.device, step_size=args.step_size,
        mirroring=not args.disable_tta, warmup=1 if args.warmup is None else args.warmup,
        repeats=3 if args.repeats is None else args.repeats, threads=args.threads,
        workdir=args.workdir, progress=show_progress(args.disable_progress_bar),
        command=shlex.join(["nnsam2_benchmark", *argv]), json_path=args.json,
        markdown_path=args.markdown)


def run_acceptance(args: argparse.Namespace, argv: Optional[Sequence[str]] = None) -> bool:
    """Print the acceptance table; whether any check failed."""
    from nnsam2.benchmark.acceptance import failed, run_acceptance as acceptance

    argv = sys.argv[1:] if argv is None else argv
    rows, table = acceptance(device=args.device, quick=args.quick, skip=args.acceptance_skip,
                             markdown_path=args.markdown,
                             command=shlex.join(["nnsam2_benchmark", *argv]))
    print(table)
    return failed(rows)


def run(args: argparse.Namespace) -> dict:
    return benchmark(
        sizes=args.sizes, patches=args.patch, dataset=args.dataset, plans=args.plans,
        configuration=args.configuration, channels=args.channels, classes=args.classes,
        batch_size=args.batch_size, variants=args.variants, device=args.device,
        warmup=3 if args.warmup is None else args.warmup,
        repeats=10 if args.repeats is None else args.repeats, train=not args.no_train,
        threads=args.threads, paired=not args.no_paired, isolate=not args.in_process,
        json_path=args.json, markdown_path=args.markdown, plot_path=args.plot,
        progress=show_progress(args.disable_progress_bar))


if __name__ == "__main__":
    main()
