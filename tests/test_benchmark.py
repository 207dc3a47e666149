"""nnsam2_benchmark on the toy size: everything is measured and written (no timing asserted)."""
import json
import os

import pytest

from nnsam2.benchmark import benchmark
from nnsam2.benchmark.analysis import compare_pairs, compute_ratios, extra_fp32_ops
from nnsam2.benchmark import jobs
from nnsam2.benchmark.jobs import make_jobs, resolve_settings
from nnsam2.benchmark.nnunet_ref import unet_from_planner
from nnsam2.benchmark.variants import SAM2_VARIANTS
from nnsam2.cli.benchmark import main

PATCH = (64, 64)


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("benchmark")
    paths = {k: str(out / f"bench.{k}") for k in ("json", "md", "png")}
    # sam_vit_b (1024x1024, minutes on a CPU) is left out even where segment-anything is installed
    res = benchmark(sizes=["toy"], patches=[PATCH], classes=3, warmup=0, repeats=1,
                    variants=[*SAM2_VARIANTS, "nnunet_unet"],
                    threads=1, progress=False, json_path=paths["json"],
                    markdown_path=paths["md"], plot_path=paths["png"])
    return res, paths


def test_every_variant_and_the_unet_are_measured(result):
    res, _ = result
    rows = {r["variant"]: r for r in res["rows"]}
    assert set(SAM2_VARIANTS) | {"nnunet_unet"} <= set(rows)
    for name, row in rows.items():
        assert not row.get("error"), (name, row.get("error"))
        assert row["params"] > 0 and row["gflops"] > 0
        assert row["latency_bs1"]["n"] == 1 and row["latency_bsN"]["median_ms"] > 0
        assert row["peak_infer_mib"] > 0 and row["isolated"]
    for name in ("none", "hp", "lw", "lora", "nnunet_unet"):
        assert rows[name]["train_step"]["median_ms"] > 0 and rows[name]["peak_train_mib"] > 0
    for name in ("lw_reparam", "lora_merged"):
        assert rows[name]["inference_only"] and rows[name]["train_step"] is None
    assert rows["nnunet_unet"]["trainable_pct"] == 100.0
    assert rows["lw_reparam"]["params"] < rows["lw"]["params"]  # three branches -> one conv
    assert rows["lora"]["trainable"] < rows["lora"]["params"]


def test_ratios_compared_pairs_and_machine(result):
    res, _ = result
    none_ratios = [r["vs_none"] for r in res["ratios"] if r["variant"] == "none"]
    assert none_ratios and none_ratios[0]["gflops"] == pytest.approx(1.0)
    assert all(r["vs_unet"]["latency_bs1"] is not None for r in res["ratios"])
    pairs = {(p["variant"], p["reference"]): p for p in res["paired"]}
    assert set(pairs) == {("lw_reparam", "lw"), ("lw_reparam", "none"), ("lora_merged", "lora"),
                          ("hp", "none")}
    assert pairs["hp", "none"]["train_bsN"]["n"] >= 2 and "bs1" not in pairs["hp", "none"]
    assert all(p["bs1"]["median"] > 0 and p["bsN"]["n"] >= 2 for k, p in pairs.items()
               if k != ("hp", "none"))
    # every compared pair is reported with its paired ratio and the separate-process ratio
    compared = {c["comparison"]: c for c in res["comparisons"]}
    assert set(compared) == {f"{a} / {b} latency, batch {n}" for n in ("1", "N") for a, b in
                             (("lw_reparam", "lw"), ("lw_reparam", "none"),
                              ("lora_merged", "lora"))} | {"hp / none training step, batch N"}
    assert (compared["lw_reparam / none latency, batch 1"]["paired"]
            == pairs["lw_reparam", "none"]["bs1"])
    assert (compared["hp / none training step, batch N"]["paired"]
            == pairs["hp", "none"]["train_bsN"])
    rows = {r["variant"]: r for r in res["rows"]}
    assert compared["lora_merged / lora latency, batch N"]["separate"] == pytest.approx(
        rows["lora_merged"]["latency_bsN"]["median_ms"] / rows["lora"]["latency_bsN"]["median_ms"])
    assert "targets" not in res and all("status" not in c for c in res["comparisons"])
    found = {f["variant"]: f for f in res["extra_fp32_ops"]}
    assert set(found) == set(SAM2_VARIANTS) - {"none"}
    assert all(f["ops"] is not None or f["error"] for f in found.values())
    assert res["machine"]["cpu"] and res["machine"]["versions"]["torch"]


def test_files_are_written(result):
    res, paths = result
    with open(paths["json"]) as f:
        assert len(json.load(f)["rows"]) == len(res["rows"])
    with open(paths["md"]) as f:
        text = f.read()
    assert "| lw_reparam | toy | 64x64 |" in text and "nnunet_unet" in text
    paired = res["comparisons"][0]["paired"]
    assert (f"| {res['comparisons'][0]['comparison']} | toy | 64x64 | {paired['median']:.3f} "
            f"[{paired['q1']:.3f}-{paired['q3']:.3f}] |") in text
    assert "Targets" not in text and "PASS" not in text and "threshold" not in text
    with open(paths["png"], "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("installed", [True, False])
def test_sam_vit_b_measured_when_installed_else_skipped_with_a_note(monkeypatch, installed):
    monkeypatch.setattr(jobs, "sam_vit_b_available", lambda: installed)
    notes = []
    chosen = jobs._choose_variants(["none", "sam_vit_b"], notes)
    assert ("sam_vit_b" in chosen) == installed
    assert any("segment-anything" in n for n in notes) != installed


def test_settings_from_plans(tmp_path, monkeypatch):
    folder = tmp_path / "Dataset998_Bench"
    folder.mkdir()
    raw_before = os.environ.get("nnUNet_raw")
    spec = unet_from_planner((96, 128), 2, 4)  # nnU-Net's planner on a scratch dataset
    assert os.environ.get("nnUNet_raw") == raw_before and spec.patch == (96, 128)
    arch = dict(network_class_name=spec.class_name, arch_kwargs=spec.kwargs,
                _kw_requires_import=list(spec.requires_import))
    configuration = dict(data_identifier="x", preprocessor_name="DefaultPreprocessor",
                         batch_size=5, patch_size=[96, 128], spacing=[1.0, 1.0],
                         architecture=arch, sam2=dict(size="toy"))
    plans = dict(dataset_name=folder.name, plans_name="nnSAM2Plans",
                 configurations={"2d": configuration})
    dataset = dict(channel_names={"0": "a", "1": "b"}, file_ending=".png",
                   labels={"background": 0, "x": 1, "y": 2, "z": 3})
    (folder / "nnSAM2Plans.json").write_text(json.dumps(plans))
    (folder / "dataset.json").write_text(json.dumps(dataset))
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path))
    settings = resolve_settings(dataset=folder.name, variants=["none", "nnunet_unet"])
    assert (settings.patches, settings.batch_size, settings.sizes) == ([(96, 128)], 5, ["toy"])
    assert (settings.channels, settings.classes) == (2, 4)
    unet_job = make_jobs(settings)[0]
    assert unet_job.variant == "nnunet_unet" and unet_job.unet.source.startswith("plans")


def test_analysis_on_synthetic_rows():
    def row(variant, latency, size="toy", fp32=()):
        ops = {f"{op}@float32": 1 for op in fp32} | {"convolution@bfloat16": 2}
        return dict(variant=variant, size=size, patch=(64, 64), gflops=1.0, params=1,
                    trainable=1, latency_bs1=dict(median_ms=latency),
                    latency_bsN=dict(median_ms=latency), autocast_bf16_ops=dict(ops=ops))

    rows = [row("none", 10.0, fp32=["linear"]), row("lw", 12.0, fp32=["linear", "mm"]),
            row("lw_reparam", 10.4), row("nnunet_unet", 20.0, size=None)]
    rows[2]["autocast_bf16_ops"] = dict(ops={}, error="no bf16 kernel")
    ratios = {r["variant"]: r for r in compute_ratios(rows)}
    assert ratios["lw_reparam"]["vs_none"]["latency_bs1"] == pytest.approx(1.04)
    assert ratios["lw"]["vs_unet"]["latency_bs1"] == pytest.approx(0.6)
    pair = dict(median=1.02, q1=0.98, q3=1.06, n=5)
    paired = [dict(variant="lw_reparam", reference="none", size="toy", patch=[64, 64], bs1=pair)]
    compared = {c["comparison"]: c for c in compare_pairs(rows, paired)}
    assert set(compared) == {f"lw_reparam / {b} latency, batch {n}" for b in ("lw", "none")
                             for n in ("1", "N")}  # no hp row: no training-step pair
    assert compared["lw_reparam / none latency, batch 1"]["paired"] == pair
    assert compared["lw_reparam / none latency, batch 1"]["separate"] == pytest.approx(1.04)
    assert compared["lw_reparam / none latency, batch N"]["paired"] is None  # not measured
    assert compared["lw_reparam / lw latency, batch N"]["separate"] == pytest.approx(10.4 / 12)
    found = {f["variant"]: f for f in extra_fp32_ops(rows)}
    assert found["lw"]["ops"] == ["mm"] and found["lw"]["error"] is None
    assert found["lw_reparam"]["ops"] is None and found["lw_reparam"]["error"] == "no bf16 kernel"
    assert set(found) == {"lw", "lw_reparam"}


def test_cli_rejects_missing_patch_and_bad_patch(capsys):
    with pytest.raises(SystemExit):
        main(["--sizes", "toy"])
    assert "--patch H W" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--patch", "60", "64", "--sizes", "toy"])
    assert "multiples of 32" in capsys.readouterr().err
