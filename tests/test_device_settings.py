"""Settings that differ on a GPU, checked on the CPU: threads per training process, and
nnUNet_compile honoured by nnsam2_predict."""
import torch

from nnsam2.inference.predictor import SAM2Predictor
from nnsam2.network import build_network
from nnsam2.training import run_training


def test_training_threads_follow_nnunet(monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", lambda n: calls.append(("threads", n)))
    monkeypatch.setattr(torch, "set_num_interop_threads", lambda n: calls.append(("interop", n)))
    monkeypatch.setattr(run_training.multiprocessing, "cpu_count", lambda: 6)
    run_training.set_threads("cuda")
    assert calls == [("threads", 1), ("interop", 1)]  # data augmentation has the cores
    calls.clear()
    run_training.set_threads("cpu")
    assert calls == [("threads", 6)]


def test_predict_compiles_when_asked(monkeypatch):
    predictor = SAM2Predictor(device=torch.device("cpu"), perform_everything_on_device=False,
                              allow_tqdm=False)
    net = build_network(1, 2, size="toy")
    predictor.network = net
    predictor.compile_if_asked()
    assert predictor.network is net
    monkeypatch.setenv("nnUNet_compile", "t")
    predictor.compile_if_asked()  # lazy: nothing compiles before the first forward pass
    assert isinstance(predictor.network, torch._dynamo.eval_frame.OptimizedModule)
    assert predictor.network._orig_mod is net
