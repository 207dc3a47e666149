"""Clicks in the network and the trainer (issue 20): without clicks the network is the plain one bit
for bit, a click is SAM2's point encoding plus class vectors, the memory carries it to other
slices, training clicks name the reference class. The commands: test_interactive_commands.py and
test_interactive_2d_mem.py."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from nnsam2.inference.click_prediction import check_model_takes_clicks
from nnsam2.network import AdapterCfg, build_memory_network, build_network, load_sam2_checkpoint
from nnsam2.network.click_prompts import NEGATIVE, POSITIVE, clicks_from_map
from nnsam2.training.trainers.interactive import INTERACTIVE_TRAINERS, InteractiveTraining
from nnsam2.utils.nnunet_env import UsageError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("kind", ["hp", "lora"])
def test_without_clicks_the_network_is_the_plain_one_bit_for_bit(official_tiny, kind):
    path, _ = official_tiny
    torch.manual_seed(0)
    plain = build_network(1, 3, size="tiny", adapter=AdapterCfg(kind=kind))
    load_sam2_checkpoint(plain, str(path))
    clicks = build_network(1, 3, size="tiny", adapter=AdapterCfg(kind=kind), clicks=True)
    missing = clicks.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all(k.startswith("click_prompts.") for k in missing)
    plain.eval(), clicks.eval()
    x = torch.randn(2, 1, 64, 64)
    empty = torch.zeros(2, 1, 64, 64)
    with torch.no_grad():
        reference = plain(x)
        assert torch.equal(clicks(x), reference)
        assert torch.equal(clicks(torch.cat([x, empty], 1)), reference)  # an empty click map
        one = empty.clone()
        one[1, 0, 20, 30] = 2  # a class-1 click on sample 1 only
        clicked = clicks(torch.cat([x, one], 1))
    # the other sample is decoded without clicks (alone now: equal up to batch rounding)
    torch.testing.assert_close(clicked[0], reference[0], rtol=1e-4, atol=1e-5)
    assert (clicked[1] - reference[1]).abs().max() > 1e-3  # SAM2's point prompt acts at once


def test_click_tokens_are_sam2_point_encodings_plus_a_class_embedding():
    net = build_network(1, 3, size="toy", clicks=True)
    prompts, encoder = net.click_prompts, net.sam_prompt_encoder
    with torch.no_grad():
        prompts.class_embed.weight.normal_()
    click_map = torch.zeros(1, 32, 64)
    click_map[0, 5, 9], click_map[0, 20, 40] = 1, 3  # background at (5, 9), class 2 at (20, 40)
    clicks = clicks_from_map(click_map)[0]
    assert clicks.tolist() == [[0, 5, 9], [2, 20, 40]]
    tokens = prompts.tokens(clicks[None], 32, 64)[0]
    pe = encoder.pe_layer.forward_with_coords(torch.tensor([[[9.5, 5.5], [40.5, 20.5]]]),
                                              (32, 64))[0]
    points = encoder.point_embeddings
    torch.testing.assert_close(tokens[0], pe[0] + points[NEGATIVE].weight[0]
                               + prompts.class_embed.weight[0])
    torch.testing.assert_close(tokens[1], pe[1] + points[POSITIVE].weight[0]
                               + prompts.class_embed.weight[2])
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert "click_prompts.class_embed.weight" in trainable
    assert not any(n.startswith("sam_prompt_encoder.point") for n in trainable)


def test_a_training_batch_without_clicks_gives_the_click_parameters_a_zero_gradient():
    """DDP wants a gradient for every trainable parameter in every step; the values stay."""
    net = build_network(1, 3, size="toy", clicks=True).train()
    x = torch.cat([torch.randn(2, 1, 64, 64), torch.zeros(2, 1, 64, 64)], 1)  # no click
    net(x).sum().backward()
    grads = {n: p.grad for n, p in net.named_parameters() if n.startswith("click_prompts.")}
    assert len(grads) == 4 and all(g is not None and not g.any() for g in grads.values())
    net.eval()
    with torch.no_grad():
        torch.testing.assert_close(net.train()(x), net.eval()(x[:, :1]), rtol=0, atol=0)


def test_the_dense_part_adds_each_class_vector_around_its_click():
    net = build_network(1, 3, size="toy", clicks=True)
    with torch.no_grad():
        for embedding in net.click_prompts.dense_embed:
            embedding.weight.normal_()
    clicks = torch.tensor([[[2.0, 40.0, 8.0]]])  # class 2 at y 40, x 8
    for level, (grid, channels) in enumerate((((4, 4), 64), ((8, 8), 16), ((16, 16), 8))):
        dense = net.click_prompts.dense(clicks, 64, 64, level, grid)
        assert dense.shape == (1, channels, *grid)
        strength = dense[0].norm(dim=0)
        peak = divmod(int(strength.argmax()), grid[1])
        assert peak == (40 * grid[0] // 64, 8 * grid[1] // 64)  # the cell holding the click
        direction = dense[0, :, peak[0], peak[1]]
        torch.testing.assert_close(direction / direction.norm(),
                                   net.click_prompts.dense_embed[level].weight[2]
                                   / net.click_prompts.dense_embed[level].weight[2].norm())


def test_the_memory_carries_a_click_to_the_other_slices():
    """2d_mem: with its gate closed (the 2D network) a click changes its own slice only; open,
    SAM2's memory of the clicked slice reaches the others, forward and backward."""
    torch.manual_seed(0)
    net = build_memory_network(1, 3, size="toy", clicks=True).eval()
    with torch.no_grad():
        for p in net.click_prompts.parameters():
            p.normal_()
    x = torch.randn(1, 1, 5, 64, 64)
    click = torch.zeros(1, 1, 5, 64, 64)
    click[0, 0, 2, 30, 30] = 2
    for gate in ("closed", "open"):
        if gate == "open":
            net.open_gate()
        with torch.no_grad():
            change = (net(torch.cat([x, click], 1)) - net(x)).abs().amax((0, 1, 3, 4))
        assert change[2] > 1e-2
        others = change[[0, 1, 3, 4]]
        assert (others == 0).all() if gate == "closed" else (others > 0).all(), (gate, change)


def test_training_clicks_name_the_reference_class_and_leave_half_prompt_free():
    target = torch.zeros(64, 1, 48, 48, dtype=torch.long)
    target[:, 0, 10:30, 10:30] = 1
    target[:, 0, 34:44, 30:44] = 2

    class Network:  # a first pass that finds nothing: the error round clicks on missed classes
        training = True

        def __call__(self, x):
            return torch.zeros((len(x), 3, *x.shape[2:])).index_fill_(1, torch.tensor([0]), 1.)

        def eval(self):
            return self

        def train(self, mode=True):
            return self

    trainer = SimpleNamespace(_click_rng=np.random.default_rng(0), sam2_click_share=0.5,
                              sam2_max_clicks=3, sam2_error_round_share=1.0,
                              label_manager=SimpleNamespace(ignore_label=None),
                              network=Network(), device=torch.device("cpu"))
    trainer._add_error_clicks = lambda *a: InteractiveTraining._add_error_clicks(trainer, *a)
    trainer._clicked_slice = lambda t: InteractiveTraining._clicked_slice(trainer, t)
    data = torch.randn(64, 1, 48, 48)
    out = InteractiveTraining.with_click_map(trainer, data, target)
    assert out.shape == (64, 2, 48, 48) and torch.equal(out[:, :1], data)
    click_map = out[:, 1]
    clicked = (click_map > 0).flatten(1).any(1)
    assert 20 <= int(clicked.sum()) <= 44  # about half the samples
    b, y, x = torch.nonzero(click_map, as_tuple=True)
    assert torch.equal(click_map[b, y, x] - 1, target[b, 0, y, x].float())  # each names its class
    # with every clicked sample in the error round, each has a click on a missed class
    for sample in torch.nonzero(clicked).flatten():
        assert (click_map[sample] >= 2).any()


@pytest.mark.parametrize("trainer", INTERACTIVE_TRAINERS, ids=lambda t: t.__name__)
def test_each_interactive_trainer_builds_a_network_that_takes_clicks(trainer):
    net = build_network(1, 3, size="toy", adapter=trainer.adapter_cfg(),
                        clicks=trainer.sam2_clicks).eval()
    x = torch.randn(1, 1, 64, 64)
    click = torch.zeros(1, 1, 64, 64)
    click[0, 0, 10, 10] = 1
    with torch.no_grad():
        for p in net.click_prompts.parameters():
            p.normal_()
        free, clicked = net(x), net(torch.cat([x, click], 1))
    assert (free - clicked).abs().max() > 1e-3
    net.prepare_for_inference()  # LW fused, LoRA merged: clicks still taken
    with torch.no_grad():
        assert (net(x) - net(torch.cat([x, click], 1))).abs().max() > 1e-3


def test_a_model_trained_without_clicks_is_refused():
    with pytest.raises(UsageError, match="MODEL was trained without clicks \\(SAM2DualAdapter"
                       "Trainer\\): clicks need a model trained by an _Interactive trainer"):
        check_model_takes_clicks(build_network(1, 3, size="toy"), "MODEL",
                                 "SAM2DualAdapterTrainer")


def test_in_training_clicked_samples_also_return_their_prompt_free_prediction():
    net = build_network(1, 3, size="toy", clicks=True)
    net.train_both_modes = True
    with torch.no_grad():
        for p in net.click_prompts.parameters():
            p.normal_()
    x = torch.randn(3, 1, 64, 64)
    click = torch.zeros(3, 1, 64, 64)
    click[2, 0, 30, 30] = 2
    net.eval()
    with torch.no_grad():
        free, clicked = net(x), net(torch.cat([x, click], 1))
    net.train()
    with torch.no_grad():
        both = net(torch.cat([x, click], 1))
    assert both.shape == (4, 3, 64, 64)  # 3 prompt-free, then the clicked sample 2
    torch.testing.assert_close(both[:3], free, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(both[3], clicked[2], rtol=1e-4, atol=1e-5)
