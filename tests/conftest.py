import os

import pytest

# Keep nnU-Net's worker pools small on CI machines (read when nnunetv2 is imported).
os.environ.setdefault("nnUNet_def_n_proc", "2")
os.environ.setdefault("nnUNet_n_proc_DA", "2")
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture
def nnunet_env(tmp_path, monkeypatch):
    """Fresh nnUNet_raw / _preprocessed / _results folders for one test."""
    paths = {}
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        paths[var] = tmp_path / var
        paths[var].mkdir()
        monkeypatch.setenv(var, str(paths[var]))
    return paths
