"""What each trainer trains, generated from the code (``documentation/methods.md`` embeds it).

    python -m experiments.trainable_table --write documentation/methods.md

builds every base trainer's network for every official SAM2 size (4 classes, 1 input channel, as
for ACDC) and counts the parameters that train, per component.
"""
import argparse
import re
from typing import Dict, List, Sequence

from nnsam2.network import build_network
from nnsam2.network.summary import component_of
from nnsam2.training.pretrained_weights import is_class_part

SIZES = ("tiny", "small", "base_plus", "large")
BEGIN, END = "<!-- trainable-table:begin -->", "<!-- trainable-table:end -->"
GROUP_NAMES = {"peg": "PEGs", "adapters": "adapters/LoRA", "stem": "stem",
               "class parts": "class tokens + hypernetwork MLPs",
               "decoder": "rest of the mask decoder"}


def trainable_by_group(trainer, size: str, classes: int = 4, channels: int = 1) -> Dict[str, int]:
    net = build_network(channels, classes, size=size, adapter=trainer.adapter_cfg())
    counts = {"all": 0, "trainable": 0}
    for name, p in net.named_parameters():
        counts["all"] += p.numel()
        if p.requires_grad:
            group = "class parts" if is_class_part(name) else component_of(name)
            counts[group] = counts.get(group, 0) + p.numel()
            counts["trainable"] += p.numel()
    return counts


def table(trainers: Sequence[type], sizes: Sequence[str] = SIZES) -> str:
    rows: List[str] = []
    header = "| trainer | position encoding | trains | " + " | ".join(
        f"{s}: trainable / total (%)" for s in sizes) + " |"
    rows += [header, "|" + "---|" * (3 + len(sizes))]
    for trainer in trainers:
        counts = [trainable_by_group(trainer, s) for s in sizes]
        groups = [GROUP_NAMES[g] for g in GROUP_NAMES if g in counts[0] and g != "stem"]
        pos = "PEG" if trainer.adapter_cfg().kind in ("hp", "lw") else "SAM2's own"
        cells = [f"{c['trainable'] / 1e6:.3f} M / {c['all'] / 1e6:.2f} M "
                 f"({100 * c['trainable'] / c['all']:.2f}%)" for c in counts]
        rows.append(f"| `{trainer.__name__}` | {pos} | {', '.join(groups)} | "
                    + " | ".join(cells) + " |")
    return "\n".join(rows)


def embed(markdown: str, generated: str) -> str:
    """``markdown`` with the text between the table markers replaced by ``generated``."""
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pattern.search(markdown):
        raise ValueError(f"no {BEGIN} ... {END} markers in the file")
    return pattern.sub(lambda _: f"{BEGIN}\n{generated}\n{END}", markdown)


def main(argv=None) -> None:
    from nnsam2.training.trainers.method_trainers import BASE_TRAINERS
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--write", help="markdown file whose marked table is replaced")
    p.add_argument("--sizes", nargs="+", default=list(SIZES), choices=SIZES)
    a = p.parse_args(argv)
    generated = table(BASE_TRAINERS, a.sizes)
    if a.write:
        with open(a.write) as f:
            text = embed(f.read(), generated)
        with open(a.write, "w") as f:
            f.write(text)
    print(generated)


if __name__ == "__main__":
    main()
