"""``nnsam2_benchmark --acceptance --quick`` on the CPU (the dry run of the first-GPU command):
every check that applies on a CPU passes, the CUDA-only ones are SKIP rows, and a check that
crashes or misses its threshold is a FAIL row and a non-zero exit, the other checks still run."""
import pytest

from nnsam2.benchmark.acceptance import GROUPS, deform, environment
from nnsam2.cli.benchmark import main

QUICK = ["--acceptance", "--quick", "--device", "cpu"]


pytestmark = pytest.mark.usefixtures("one_thread")


def table_rows(text: str) -> dict:
    """{check name: (result, figure, note)} of an acceptance table."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if line.startswith("| ") and cells[0].isdigit():
            rows[cells[1]] = tuple(cells[2:5])
    return rows


def only(*groups: str) -> list:
    return ["--acceptance_skip", *[g for g in GROUPS if g not in groups]]


def test_quick_cpu_run_writes_pass_and_skip_rows(tmp_path, capsys):
    markdown = tmp_path / "acceptance.md"
    # the end-to-end check runs five commands in fresh processes (minutes on a loaded CPU)
    main([*QUICK, "--markdown", str(markdown), "--acceptance_skip", "end_to_end"])  # exit 0
    text = markdown.read_text()
    assert text.strip() in capsys.readouterr().out
    rows = table_rows(text)
    skipped = {"memory plan toy": "SKIP (cpu)", "torch.compile training": "SKIP (cpu)",
               "end to end": "SKIP (asked)"}
    expected = ["environment", "DCN embedding_bag parity", "DCN torchvision parity",
                "precision audit", "DCN embedding_bag speed", "DCN torchvision speed",
                *[f"training step {v}" for v in ("none", "none_peg", "hp", "lw")],
                "batched vs patch-at-a-time", "2d_mem fwd + bwd", *skipped]
    assert sorted(rows) == sorted(expected)
    for name, (result, figure, note) in rows.items():
        assert result == skipped.get(name, "PASS"), (name, result, figure, note)
        assert figure or name in skipped, name
    assert "policy fp32" in rows["environment"][1]
    assert "float32" in rows["precision audit"][1] and "float16" not in rows["precision audit"][1]
    assert "agreement 100.000%" in rows["batched vs patch-at-a-time"][1]


def test_failing_and_crashing_checks_are_fail_rows_and_exit_nonzero(tmp_path, monkeypatch):
    def crash(ctx):
        raise RuntimeError("simulated crash\nsecond line of the message")

    monkeypatch.setattr(environment, "check_environment", crash)
    monkeypatch.setitem(deform.TOLERANCE, "fp32", 0.0)  # embedding_bag's rounding now fails
    markdown = tmp_path / "acceptance.md"
    with pytest.raises(SystemExit) as exit_info:
        main([*QUICK, "--markdown", str(markdown), *only("environment", "dcn")])
    assert exit_info.value.code == 1
    rows = table_rows(markdown.read_text())
    assert rows["environment"] == ("FAIL", "", "RuntimeError: simulated crash")
    assert rows["DCN embedding_bag parity"][0] == "FAIL"
    assert rows["DCN torchvision parity"][0] == "PASS"  # the reference itself: exact
    assert rows["precision audit"][0] == "SKIP (asked)"


def test_unknown_check_name_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*QUICK, "--acceptance_skip", "no_such_check"])
    assert exit_info.value.code == 2
    assert "unknown acceptance checks" in capsys.readouterr().err
