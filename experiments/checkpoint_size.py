"""Model-folder size of a 5-fold training, full checkpoints versus lean ones (measured on disk).

    python -m experiments.checkpoint_size --sizes tiny large

For each SAM2 size the default trainer's network (HP adapter, 4 classes) gets an AdamW state for
its trainable parameters (one step), then one checkpoint is written both ways: the whole state
dict (what nnU-Net writes) and the lean form (trainable tensors + a reference to the folder's
frozen-weight store). A finished fold keeps ``checkpoint_best.pth`` and ``checkpoint_final.pth``.
"""
import argparse
import os
import tempfile

import torch

from nnsam2.network import build_network, frozen_store

FOLDS, CHECKPOINTS_PER_FOLD = 5, 2


def _saved_bytes(obj, folder: str, name: str) -> int:
    path = os.path.join(folder, name)
    torch.save(obj, path)
    return os.path.getsize(path)


def measure(size: str, classes: int = 4) -> dict:
    from nnsam2.training.trainers.method_trainers import SAM2DualAdapterTrainer
    net = build_network(1, classes, size=size, adapter=SAM2DualAdapterTrainer.adapter_cfg())
    trainable = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable)
    for p in trainable:
        p.grad = torch.zeros_like(p)
    optimizer.step()
    with tempfile.TemporaryDirectory() as folder:
        full = _saved_bytes({"network_weights": net.state_dict(),
                             "optimizer_state": optimizer.state_dict()}, folder, "full.pth")
        lean = _saved_bytes({"network_weights": frozen_store.split_state_dict(net, folder),
                             "optimizer_state": optimizer.state_dict()}, folder, "lean.pth")
        store = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder)
                    if f.startswith(frozen_store.FILE_PREFIX))
    n = FOLDS * CHECKPOINTS_PER_FOLD
    return dict(size=size, full_checkpoint=full, lean_checkpoint=lean, store=store,
                folder_before=n * full, folder_after=n * lean + store)


def markdown(rows) -> str:
    def gb(b):
        return f"{b / 1e9:.3f} GB"

    lines = ["| SAM2 size | checkpoint before | checkpoint after | frozen store (once) | "
             "5 folds before | 5 folds after |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['size']} | {gb(r['full_checkpoint'])} | {gb(r['lean_checkpoint'])} | "
              f"{gb(r['store'])} | {gb(r['folder_before'])} | {gb(r['folder_after'])} |"
              for r in rows]
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", nargs="+", default=["tiny", "large"])
    print(markdown([measure(s) for s in p.parse_args(argv).sizes]))


if __name__ == "__main__":
    main()
