"""A 5-fold ensemble in nnsam2_predict: the frozen SAM2 is loaded once, each case swaps only the
tensors that differ per fold, and every fold still predicts with its own weights."""
import torch
from torch import nn

from nnsam2.inference.predictor import SAM2Predictor
from nnsam2.network import AdapterCfg, build_network, frozen_store

FOLDS = 3


def fold_weights(kind: str):
    """A network and per-fold state dicts that share the frozen part and differ where training
    changes them (trainable tensors perturbed per fold)."""
    torch.manual_seed(0)
    net = build_network(1, 2, size="toy", adapter=AdapterCfg(kind=kind)).eval()
    folds = []
    for fold in range(FOLDS):
        torch.manual_seed(10 + fold)
        state = {k: v.clone() for k, v in net.state_dict().items()}
        for name, p in net.named_parameters():
            if p.requires_grad:
                state[name] = p.detach() + 0.05 * torch.randn_like(p)
        folds.append(state)
    return net, folds


def fold_outputs(net: nn.Module, folds, x):
    outputs = []
    for state in folds:
        fold_net = build_network(1, 2, size="toy", adapter=AdapterCfg(**net.config["adapter"]))
        fold_net.load_state_dict(state)
        fold_net.prepare_for_inference()
        with torch.no_grad():
            outputs.append(fold_net(x))
    return outputs


def test_folds_share_the_frozen_weights_and_keep_their_own():
    for kind in ("lw", "hp"):
        net, folds = fold_weights(kind)
        predictor = SAM2Predictor(device=torch.device("cpu"), perform_everything_on_device=False,
                                  allow_tqdm=False)
        predictor.network, predictor.list_of_parameters = net, folds
        predictor.prepare_network_for_inference()
        deltas = predictor.list_of_parameters
        assert all(isinstance(d, frozen_store.FoldDelta) for d in deltas)
        frozen = [n for n, p in net.named_parameters() if not p.requires_grad]
        assert frozen and not any(n in d for d in deltas for n in frozen)
        trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
        moved = sum(v.numel() for v in deltas[0].values())
        assert 0 < moved <= 2 * trainable < sum(p.numel() for p in net.parameters())
        x = torch.randn(2, 1, 64, 64, generator=torch.Generator().manual_seed(1))
        expected = fold_outputs(net, folds, x)
        for _ in range(2):  # nnU-Net's loop, case after case: every fold predicts as itself
            for delta, want in zip(deltas, expected):
                predictor.network.load_state_dict(delta)
                with torch.no_grad():
                    torch.testing.assert_close(predictor.network(x), want, rtol=1e-4,
                                               atol=1e-5)
        assert (expected[0] - expected[-1]).abs().max() > 1e-3  # the folds do differ
