"""nnsam2_download_checkpoint SIZE [--sam2 2|2.1] [-o FOLDER]: an official SAM2 checkpoint by name.

Downloads sam2.1_hiera_<SIZE>.pt (or sam2_hiera_<SIZE>.pt with --sam2 2) from the address sam2's
own download script uses, or from --base-url, resumes an interrupted download, checks that the
file is the checkpoint of that size and version and only then puts it in place.
"""
import argparse

from nnsam2.cli.common import run_cli
from nnsam2.training.run_settings import ENV_CHECKPOINT_DIR
from nnsam2.training.sam2_download import (DEFAULT_FOLDER, NAME_PREFIXES, download_checkpoint,
                                           official_sizes)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nnsam2_download_checkpoint", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("size", choices=official_sizes(), help="SAM2 size")
    p.add_argument("--sam2", default="2.1", choices=tuple(NAME_PREFIXES),
                   help="SAM2 version: 2.1 (default, sam2.1_hiera_SIZE.pt) or 2 (sam2_hiera_SIZE.pt)")
    p.add_argument("-o", "--output", default=None,
                   help=f"folder for the file (default: ${ENV_CHECKPOINT_DIR}, else {DEFAULT_FOLDER})")
    p.add_argument("--base-url", default=None,
                   help="fetch BASE_URL/<official file name> instead, e.g. a mirror behind a firewall")
    p.add_argument("--force", action="store_true",
                   help="download again even if a verified file is there")
    p.add_argument("--disable_progress_bar", action="store_true",
                   help="no progress bar (it is also off when the output is not a terminal)")
    return p


def run(args: argparse.Namespace) -> None:
    path = download_checkpoint(args.size, args.sam2, args.output, base_url=args.base_url,
                               force=args.force, progress=False if args.disable_progress_bar else None)
    print(path)
    print(f"train with --sam2-checkpoint {path}, or set {ENV_CHECKPOINT_DIR} to its folder")


def main(argv=None) -> None:
    args = parser().parse_args(argv)
    run_cli("nnsam2_download_checkpoint", lambda: run(args))
