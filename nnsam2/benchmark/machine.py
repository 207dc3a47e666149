"""Names the machine and software a benchmark ran on."""
import os
import platform
from importlib import metadata
from typing import Dict, Optional

import torch

PACKAGES = ("torch", "torchvision", "nnunetv2", "sam2", "dynamic_network_architectures")


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (falls back to ``platform.processor()``)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _version(package: str) -> Optional[str]:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine_info(device: str, threads: Optional[int] = None) -> Dict[str, object]:
    """CPU model, logical cores, torch threads (``threads`` if the jobs set them), GPU name,
    library versions and the 1-minute load average now."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info = dict(cpu=cpu_model(), logical_cpus=cpus,
                torch_threads=threads or torch.get_num_threads(), loadavg_1min=os.getloadavg()[0],
                python=platform.python_version(), platform=platform.platform(), device=device,
                gpu=None, cuda=None)
    if device.startswith("cuda") and torch.cuda.is_available():
        index = torch.device(device).index or 0
        info["gpu"] = torch.cuda.get_device_name(index)
        info["cuda"] = torch.version.cuda
    info["versions"] = {p: _version(p.replace("_", "-")) or _version(p) for p in PACKAGES}
    return info


def describe(info: Dict[str, object]) -> str:
    """One line naming the machine, e.g. for a table header."""
    versions = info["versions"]
    where = f"GPU {info['gpu']} (CUDA {info['cuda']})" if info.get("gpu") else "CPU only"
    return (f"{info['cpu']}, {info['logical_cpus']} logical CPUs, torch threads "
            f"{info['torch_threads']}; {where}; torch {versions.get('torch')}, "
            f"torchvision {versions.get('torchvision')}, nnunetv2 {versions.get('nnunetv2')}, "
            f"sam2 {versions.get('sam2')}; Python {info['python']}")
