"""The plans the planner writes (``nnsam2/experiment_planning/planner.py``, through
nnsam2_plan_and_preprocess): they describe SAM2, --clean drops earlier configurations, and a GPU
memory target too small for one sample is refused in one line."""
import json


def test_plans_describe_sam2_and_clean_means_clean(tmp_path):
    from dataset_conversion.demo_dataset import generate_demo_dataset
    from tests.helpers.commands import run
    from tests.helpers.workspaces import workspace_env
    root, env = workspace_env(tmp_path)
    folder = generate_demo_dataset(root / "nnUNet_raw", dataset_id=993, dim=3, num_train=2,
                                   num_test=0)
    plans_file = root / "nnUNet_preprocessed" / folder.name / "nnSAM2Plans.json"
    plans_file.parent.mkdir()
    plans_file.write_text(json.dumps({"configurations": {"stale": {"data_identifier": "old"}}}))
    out = run("nnsam2_plan_and_preprocess", "-d", "993", "--sam2-size", "toy", "-npfp", "1",
              "--no_pp", "--clean", env=env)
    assert "3D fullres U-Net configuration" not in out.stdout + out.stderr
    plans = json.loads(plans_file.read_text())
    # a 3D dataset: no 3D U-Net planned (2d, and 2d_mem on 2d's data); --clean dropped the
    # earlier file's configuration (without it nnU-Net merges earlier configurations in)
    assert list(plans["configurations"]) == ["2d", "2d_mem"]
    assert plans["configurations"]["2d_mem"]["inherits_from"] == "2d"
    arch = plans["configurations"]["2d"]["architecture"]
    assert arch["network_class_name"] == "nnsam2.network.sam2_net.SAM2SegNet"
    assert arch["arch_kwargs"]["sam2_size"] == "toy"
    assert "memory_warning" not in plans["configurations"]["2d"]["sam2"]  # batch 2 fits 8 GB
    refused = run("nnsam2_plan_and_preprocess", "-d", "993", "--sam2-size", "toy", "-npfp", "1",
                  "--no_pp", "-gpu_memory_target", "0.001", env=env, ok=False)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines()[-1].startswith(
        "nnsam2_plan_and_preprocess: error: SAM2 toy, 2d patch")
    assert "one sample needs about" in refused.stderr and "-gpu_memory_target" in refused.stderr
