"""Option parity with nnU-Net 2.8.1: every option an nnUNetv2_* command has, the matching nnsam2
command supports or refuses with a message (a user's habitual flag never meets "unrecognized")."""
import re
import sys
from importlib.metadata import entry_points

import pytest

from nnsam2.cli import find_best_configuration, plan_and_preprocess, predict, train
from nnsam2.experiment_planning import plan_and_preprocess_api
from nnsam2.utils.nnunet_env import UsageError

PAIRS = {  # nnU-Net command -> our parser
    "nnUNetv2_predict": predict.parser,
    "nnUNetv2_predict_from_modelfolder": predict.parser,
    "nnUNetv2_plan_and_preprocess": plan_and_preprocess.parser,
    "nnUNetv2_train": train.parser,
    "nnUNetv2_find_best_configuration": find_best_configuration.parser,
}


def options(help_text: str) -> set:
    """The option strings of an argparse ``--help`` (its usage lines list every one)."""
    usage = help_text[help_text.index("usage:"):].split("\n\n")[0]
    return set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", usage)) - {"-h"}


def nnunet_help(command: str, monkeypatch, capsys) -> str:
    """``command -h`` of nnU-Net's console script, run in-process (its parsers are built inside
    the entry functions)."""
    entry = next(e for e in entry_points(group="console_scripts") if e.name == command)
    monkeypatch.setattr(sys, "argv", [command, "-h"])
    with pytest.raises(SystemExit):
        entry.load()()
    return capsys.readouterr().out


@pytest.mark.parametrize("command", PAIRS)
def test_every_nnunet_option_is_supported_or_refused(command, monkeypatch, capsys):
    help_text = nnunet_help(command, monkeypatch, capsys)
    theirs = options(help_text)
    assert len(theirs) >= 4, help_text  # the help was parsed
    ours = options(PAIRS[command]().format_help())
    assert not theirs - ours, f"{command} options missing from our command: {theirs - ours}"


def test_refused_options_say_why(tmp_path, nnunet_env):
    a = predict.parser().parse_args(["-i", "x", "-o", "y", "-d", "1", "-prev_stage_predictions",
                                     str(tmp_path)])
    with pytest.raises(UsageError, match="no cascade"):
        predict._check_parity_options(a)
    a = predict.parser().parse_args(["-i", "x", "-o", "y", "-d", "1", "-num_parts", "2",
                                     "-part_id", "2"])
    with pytest.raises(UsageError, match="part_id must be in 0..1"):
        predict._check_parity_options(a)
    with pytest.raises(UsageError, match="nnSAM2Planner only"):
        plan_and_preprocess_api.plan_and_preprocess(["1"], planner="nnUNetPlannerResEncL")
