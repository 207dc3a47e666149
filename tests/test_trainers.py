"""The trainers (``nnsam2/training/trainers``): what each trainer trains, its explicit and
findable schedule variants, the methods table generated from them."""
import inspect
import os

import pytest

from nnsam2.network import build_network
from nnsam2.network.summary import component_of
from nnsam2.training.pretrained_weights import is_class_part
from nnsam2.training.trainers.interactive import INTERACTIVE_TRAINERS
from nnsam2.training.trainers.method_trainers import BASE_TRAINERS

NEW_MODULES = ("stem", "peg", "adapters")  # components that SAM2 does not have


def trainable_groups(trainer, size="toy", classes=4, channels=2):
    net = build_network(channels, classes, size=size, adapter=trainer.adapter_cfg())
    groups = {}
    for name, p in net.named_parameters():
        if p.requires_grad:
            group = "class parts" if is_class_part(name) else component_of(name)
            groups.setdefault(group, []).append(name)
    return net, groups


@pytest.mark.parametrize("trainer", BASE_TRAINERS, ids=lambda t: t.__name__)
def test_what_each_trainer_trains(trainer):
    net, groups = trainable_groups(trainer)
    full_decoder = trainer.sam2_train_decoder == "full"
    allowed = {*NEW_MODULES, "class parts"} | ({"decoder"} if full_decoder else set())
    assert set(groups) <= allowed, f"{trainer.__name__} trains SAM2 parts: {set(groups) - allowed}"
    assert "class parts" in groups and "stem" in groups
    has_peg = any("peg" in n or n.startswith("image_pe.") for n, _ in net.named_parameters())
    assert has_peg == (trainer.adapter_kind in ("hp", "lw"))  # SAM2LoRA and vanilla: SAM2's PE
    if trainer.adapter_kind in ("hp", "lw", "lora"):
        assert "adapters" in groups
    if full_decoder:
        assert any(".transformer." in n for n in groups["decoder"])


def test_trainer_names_are_explicit_and_findable():
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
    from nnsam2.training.trainer_lookup import use_nnsam2_trainers
    from nnsam2.training.trainers.variants import training_length
    use_nnsam2_trainers()
    source = open(training_length.__file__).read()
    for base in BASE_TRAINERS + INTERACTIVE_TRAINERS:
        for epochs in training_length.SCHEDULES:
            name = f"{base.__name__}_{epochs}epochs"
            assert f"class {name}({base.__name__})" in source  # greppable
            cls = getattr(training_length, name)
            assert issubclass(cls, base) and cls.sam2_num_epochs == epochs
    assert recursive_find_trainer_class_by_name("SAM2LoRATrainer_50epochs").sam2_num_epochs == 50
    demo = recursive_find_trainer_class_by_name("SAM2DualAdapterTrainer_CPUDemo")
    assert demo.__module__ == "nnsam2.training.trainers.variants.benchmarking"
    assert "CPUDemo" not in inspect.getsource(inspect.getmodule(BASE_TRAINERS[0]))


def test_methods_table_is_generated_from_the_code():
    from experiments.trainable_table import BEGIN, END, table
    methods = open(os.path.join(os.path.dirname(__file__), "..", "documentation",
                                "methods.md")).read()
    documented = methods[methods.index(BEGIN):methods.index(END)].splitlines()
    for row in table(BASE_TRAINERS, sizes=("tiny",)).splitlines()[2:]:  # the tiny column
        assert any(line.startswith(row[:-1]) for line in documented), row
