"""nnsam2_benchmark --whole_case end to end at its smallest (toy SAM2, one tiny volume, one
training iteration; once more with --folds 2), and its statistics on synthetic timings (no
timing asserted)."""
import json
import statistics

import pytest

from nnsam2.benchmark.whole_case.stats import summarise
from nnsam2.cli.benchmark import main

MODELS = ("nnunet_2d", "lw", "lw_patchwise")
SMALLEST = ["--whole_case", "--sizes", "toy", "--variants", "lw", "--cases", "1",
            "--train_cases", "2", "--slices", "2", "--shape", "64", "64", "--iterations", "1",
            "--warmup", "0", "--repeats", "1", "--threads", "1", "--disable_progress_bar"]


def _run(out, *extra):
    main([*SMALLEST, *extra, "--workdir", str(out / "work"), "--json", str(out / "wc.json"),
          "--markdown", str(out / "wc.md")])
    return out, json.loads((out / "wc.json").read_text())


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("whole_case"), "--patchwise", "lw")


def test_every_model_has_seconds_per_case_and_wrote_its_segmentation(run):
    out, result = run
    rows = {r["model"]: r for r in result["rows"]}
    assert set(rows) == set(MODELS)
    for name, row in rows.items():
        assert row["seconds"]["n"] == 1 and row["seconds"]["median"] > 0
        assert 0 < row["network_seconds"]["median"] < row["seconds"]["median"]
        assert list(row["per_case"]) == ["case_002"]
        assert (out / "work" / "predictions" / name / "case_002.nii.gz").is_file()
    models = result["models"]
    assert models["lw"]["predictor"] == "SAM2Predictor"
    assert models["lw_patchwise"]["predictor"] == models["nnunet_2d"]["predictor"] == "nnUNetPredictor"
    assert models["lw"]["trainer"] == models["lw_patchwise"]["trainer"]
    assert {m["step_size"] for m in models.values()} == {0.5}
    assert len({tuple(m["mirroring_axes"]) for m in models.values()}) == 1  # same TTA


def test_ratios_are_the_ratios_of_the_measured_seconds(run):
    out, result = run
    seconds = {r["model"]: r["seconds"]["median"] for r in result["rows"]}
    ratios = {(c["model"], c["reference"]): c["ratio"] for c in result["ratios"]}
    assert set(ratios) == {("lw", "nnunet_2d"), ("lw_patchwise", "nnunet_2d"),
                           ("lw_patchwise", "lw")}
    for (model, reference), value in ratios.items():
        assert value == pytest.approx(seconds[model] / seconds[reference])
    assert "targets" not in result  # the documentation compares with targets, not the command
    markdown = (out / "wc.md").read_text()
    assert f"| lw | SAM2Predictor (WholeCaseBench_LW) | 64x64 | {seconds['lw']:.2f}" in markdown
    lw = next(c for c in result["ratios"] if (c["model"], c["reference"]) == ("lw", "nnunet_2d"))
    assert f"| {lw['ratio']:.3f} (paired {lw['paired']['median']:.3f} [" in markdown
    assert f"| lw_patchwise | lw | {ratios['lw_patchwise', 'lw']:.3f}" in markdown
    assert "folds" not in result and "fold 0" not in markdown  # --folds 1: fold 'all' only
    assert "Targets" not in markdown and "PASS" not in markdown
    assert "Command: `nnsam2_benchmark --whole_case --sizes toy" in markdown
    assert result["settings"]["threads"] == 1 and result["machine"]["cpu"]


def test_two_folds_are_timed_against_fold_0(tmp_path):
    out, result = _run(tmp_path, "--patchwise", "--folds", "2")
    seconds = {r["model"]: r["seconds"]["median"] for r in result["rows"]}
    network = {r["model"]: r["network_seconds"]["median"] for r in result["rows"]}
    assert set(seconds) == {"nnunet_2d", "lw", "lw_2folds"}
    models = result["models"]
    assert models["lw"]["folds"] == [0] and models["lw_2folds"]["folds"] == [0, 1]
    assert models["nnunet_2d"]["folds"] == ["all"]
    assert models["lw_2folds"]["predictor"] == "SAM2Predictor"
    [folds] = result["folds"]
    assert (folds["model"], folds["ensemble"], folds["folds"]) == ("lw", "lw_2folds", 2)
    assert folds["one_fold"] == dict(seconds=seconds["lw"], network_seconds=network["lw"])
    assert folds["all_folds"] == dict(seconds=seconds["lw_2folds"],
                                      network_seconds=network["lw_2folds"])
    assert folds["ratio"] == pytest.approx(seconds["lw_2folds"] / seconds["lw"])
    assert folds["network_ratio"] == pytest.approx(network["lw_2folds"] / network["lw"])
    overhead = seconds["lw"] - network["lw"]
    assert folds["network_equivalents"] == pytest.approx(
        (seconds["lw_2folds"] - overhead) / network["lw"])
    markdown = (out / "wc.md").read_text()
    assert "2 folds vs fold 0" in markdown
    assert (f"| lw | {seconds['lw']:.2f} | {seconds['lw_2folds']:.2f} | "
            f"{folds['ratio']:.3f} (paired ") in markdown
    assert "| lw_2folds | SAM2Predictor, folds 0,1 (WholeCaseBench_LW) |" in markdown
    # the benchmark's split, and both folds share one frozen SAM2 (as folds from one checkpoint)
    work = out / "work"
    [split] = work.glob("nnUNet_preprocessed/*/splits_final.json")
    assert len(json.loads(split.read_text())) == 2
    [model] = work.glob("nnUNet_results/*/WholeCaseBench_LW__*")
    assert len(list(model.glob("sam2_frozen_*.pt"))) == 1
    assert (model / "fold_0").is_dir() and (model / "fold_1").is_dir()


def test_statistics_and_paired_ratios():
    records = [dict(model=m, case=c, repeat=r, seconds=s * (1 + r))
               for r in range(3) for c in ("a", "b")
               for m, s in (("nnunet_2d", 10.0), ("lw", 7.0), ("hp", 11.0),
                            ("lw_patchwise", 28.0))]
    summary = summarise(records, "nnunet_2d")
    assert set(summary) == {"rows", "ratios"}
    ratios = {(c["model"], c["reference"]): c for c in summary["ratios"]}
    assert set(ratios) == {("lw", "nnunet_2d"), ("hp", "nnunet_2d"),
                           ("lw_patchwise", "nnunet_2d"), ("lw_patchwise", "lw")}
    assert ratios["lw", "nnunet_2d"]["ratio"] == pytest.approx(0.7)
    assert ratios["lw", "nnunet_2d"]["paired"]["median"] == pytest.approx(0.7)
    assert ratios["hp", "nnunet_2d"]["ratio"] == pytest.approx(1.1)
    assert ratios["hp", "nnunet_2d"]["paired"]["n"] == 6
    assert ratios["lw_patchwise", "lw"]["ratio"] == pytest.approx(4.0)
    rows = {r["model"]: r for r in summary["rows"]}
    assert rows["hp"]["seconds"]["median"] == pytest.approx(statistics.median([11, 22, 33] * 2))
    assert rows["hp"]["per_case"] == {"a": pytest.approx(22.0), "b": pytest.approx(22.0)}
