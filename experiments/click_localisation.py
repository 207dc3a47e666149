"""Can the decoder put a mask where a click is, from random weights? (documentation/methods.md,
"Clicks": why clicks also have a dense part.)

    python -m experiments.click_localisation [--steps 1000]

A toy SAM2 (adapter ``none``, every parameter trained, AdamW 2e-3, CE + soft Dice) learns to draw a
disk of radius 12 around one class-1 click on pure-noise 64 x 64 images: only the click says where
the disk is. Modes: ``tokens`` (the click as decoder tokens only: the dense part switched off),
``dense`` (tokens and the dense part, as nnsam2 builds it), ``visible`` (no click, the disk drawn
into the image: the control that the network localises what it sees). Prints the Dice of a fresh
batch of 16 every 200 steps.
"""
import argparse
import time

import torch
import torch.nn.functional as F

from nnsam2.network import AdapterCfg, build_network
from nnsam2.network.click_prompts import ClickPrompts

SIZE, RADIUS = 64, 12


def batch(mode: str, n: int = 8):
    yy, xx = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    x, click, target = (torch.randn(n, 1, SIZE, SIZE), torch.zeros(n, 1, SIZE, SIZE),
                        torch.zeros(n, SIZE, SIZE, dtype=torch.long))
    for b in range(n):
        cy, cx = torch.randint(RADIUS, SIZE - RADIUS, (2,))
        click[b, 0, cy, cx] = 2  # class 1
        target[b] = ((yy - cy) ** 2 + (xx - cx) ** 2 < RADIUS ** 2).long()
    if mode == "visible":
        return x + 3 * target[:, None].float(), target
    return torch.cat([x, click], 1), target


def dice(net, mode: str) -> float:
    net.eval()
    with torch.no_grad():
        x, t = batch(mode, 16)
        p = net(x).argmax(1) == 1
    net.train()
    return float(2 * (p & (t == 1)).sum() / (p.sum() + (t == 1).sum()).clamp(min=1))


def run(mode: str, steps: int) -> None:
    torch.manual_seed(0)
    if mode == "tokens":  # the dense part contributes nothing
        ClickPrompts.dense = lambda self, clicks, h, w, level, grid: torch.zeros(())
    net = build_network(1, 2, size="toy", adapter=AdapterCfg(kind="none", train_all=True),
                        clicks=True)
    optimiser = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=2e-3)
    start = time.time()
    for step in range(steps + 1):
        x, t = batch(mode)
        out = net(x)
        fg, tt = out.softmax(1)[:, 1], (t == 1).float()
        loss = F.cross_entropy(out, t) + 1 - (2 * (fg * tt).sum() + 1) / (fg.sum() + tt.sum() + 1)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % 200 == 0:
            print(f"{mode:8s} step {step:5d}  Dice {dice(net, mode):.3f}  "
                  f"({time.time() - start:.0f} s)", flush=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--modes", nargs="+", default=["visible", "dense", "tokens"])
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    for mode in args.modes:
        run(mode, args.steps)


if __name__ == "__main__":
    main()
