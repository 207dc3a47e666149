"""Deployment: a trained model's inference network as ONNX, with its preprocessing recorded."""
from nnsam2.export.exporter import export_model_folder, sidecar_path

__all__ = ["export_model_folder", "sidecar_path"]
