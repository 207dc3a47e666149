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


@pytest.fixture(scope="session")
def official_tiny(tmp_path_factory):
    """A SAM2.1 tiny checkpoint in the official format, built by sam2 itself (random init, every
    tensor made distinctive); returns (path, state dict)."""
    import torch
    from sam2.build_sam import build_sam2
    torch.manual_seed(1)
    model = build_sam2("configs/sam2.1/sam2.1_hiera_t.yaml", None, device="cpu")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    path = tmp_path_factory.mktemp("ckpt") / "sam2.1_hiera_tiny.pt"
    state = model.state_dict()
    torch.save({"model": state}, path)
    return path, state


@pytest.fixture(scope="session")
def demo_planned(tmp_path_factory):
    """The demo dataset (6 training, 2 test cases) planned and preprocessed for the toy SAM2 size,
    with the test-only trainers of tests/helpers/trainers; once per session: (root, env). A template:
    tests that write into a workspace take a copy (``copy_workspace``), which is far cheaper than
    planning again."""
    from tests.helpers.workspaces import planned_workspace
    return planned_workspace(tmp_path_factory.mktemp("demo_planned"))


@pytest.fixture(scope="session")
def demo_trained(demo_planned, tmp_path_factory):
    """A copy of ``demo_planned`` with fold 0 of SAM2SmokeTrainer trained through nnsam2_train
    (``train_demo_model``: random init, every parameter trained, final validation); once per
    session, for the tests that need a trained model: read it, or copy it before changing it."""
    from tests.helpers.workspaces import copy_workspace, train_demo_model
    root, env = copy_workspace(demo_planned, tmp_path_factory.mktemp("demo_trained"))
    train_demo_model(env)
    return root, env


@pytest.fixture(scope="session")
def context_planned(tmp_path_factory):
    """The slice-context 3D dataset (5 training, 1 test case, 10-12 slices of 64 x 64) planned
    and preprocessed for ``2d`` and ``2d_mem`` with the toy SAM2 size; once per session, a
    template as ``demo_planned``: (root, env)."""
    from dataset_conversion.context_dataset import generate_context_dataset
    from tests.helpers.commands import run
    from tests.helpers.workspaces import workspace_env
    root, env = workspace_env(tmp_path_factory.mktemp("context_planned"))
    generate_context_dataset(root / "nnUNet_raw", num_train=5, num_test=1, slices=(10, 12),
                             in_plane=(64, 64))
    run("nnsam2_plan_and_preprocess", "-d", "992", "--sam2-size", "toy", "--patch-size", "64",
        "64", "-c", "2d", "2d_mem", "-np", "1", "-npfp", "1", env=env)
    return root, env


@pytest.fixture
def one_thread():
    """Small forward passes in the test process: a second thread only spins when the machine is
    shared (tens of times slower). Modules use it with ``pytestmark``."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
