"""nnsam2_export: one fold of a trained model folder as an ONNX file (Lightweight adapters fused,
LoRA merged; dynamic batch, H and W multiples of 32) plus a JSON sidecar with nnU-Net's
preprocessing and postprocessing (model.onnx -> model.json). Needs: pip install "nnsam2[onnx]"."""
import argparse

from nnsam2.cli.common import run_cli


def run(args) -> None:
    from nnsam2.export import export_model_folder, sidecar_path
    meta = export_model_folder(args.model_folder, args.o, args.f, args.chk)
    check = meta["check"]
    print(f"nnsam2_export: wrote {args.o} and {sidecar_path(args.o)} (fold {meta['model']['fold']}, "
          f"{meta['model']['trainer']}); ONNX Runtime vs PyTorch: max |difference| "
          f"{check['max_abs_difference']:.2e} <= {check['tolerance']:g} on {check['shapes']}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nnsam2_export", description=__doc__)
    p.add_argument("model_folder", help="trained model folder (TRAINER__PLANS__CONFIGURATION)")
    p.add_argument("-o", required=True, help="output ONNX file (*.onnx); the sidecar *.json is "
                                             "written next to it")
    p.add_argument("-f", default=None, help="fold to export (a number or 'all'; default: the "
                                            "only trained fold)")
    p.add_argument("-chk", default="checkpoint_final.pth", help="checkpoint file name")
    return p


def main(argv=None) -> None:
    args = parser().parse_args(argv)
    run_cli("nnsam2_export", lambda: run(args))
