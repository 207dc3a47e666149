"""What to measure: settings resolved from plans or arguments, expanded into one job per model."""
from dataclasses import asdict, dataclass, field
from typing import List, Optional, Sequence, Tuple

from nnsam2.benchmark.nnunet_ref import PlansInfo, UNetSpec, read_plans, unet_from_planner
from nnsam2.benchmark.paired import PAIRS, TRAIN_PAIRS, PairJob
from nnsam2.benchmark.variants import (ALL_VARIANTS, REFERENCE_VARIANTS, SAM2_VARIANTS,
                                       SAM_VIT_B_PATCH, sam_vit_b_available)
from nnsam2.network.configs import get_size
from nnsam2.network.sam2_net import SIZE_MULTIPLE

DEFAULT_BATCH_SIZE = 2  # nnU-Net's minimum batch size, used when no plans are given


@dataclass(frozen=True)
class Job:
    """One model at one size and patch; measured in its own process."""

    variant: str
    size: Optional[str]
    patch: Tuple[int, int]  # the requested patch (the row's group)
    input_patch: Tuple[int, int]  # what the model runs at (differs for padded U-Nets, SAM ViT-B)
    channels: int
    classes: int
    batch_size: int
    device: str
    warmup: int
    repeats: int
    train: bool
    threads: Optional[int] = None  # torch intra-op threads in the job (None: torch's default)
    unet: Optional[UNetSpec] = None


@dataclass
class Settings:
    """Resolved benchmark settings (JSON-able through :meth:`as_dict`)."""

    sizes: List[str]
    patches: List[Tuple[int, int]]
    channels: int
    classes: int
    batch_size: int
    variants: List[str]
    device: str
    warmup: int
    repeats: int
    train: bool
    threads: Optional[int] = None
    paired: bool = True
    plans: Optional[PlansInfo] = None
    notes: List[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        out = asdict(self)
        out["plans"] = None if self.plans is None else {
            k: v for k, v in asdict(self.plans).items() if k != "unet"}
        return out


def check_patch(patch: Sequence[int]) -> Tuple[int, int]:
    if len(patch) != 2 or any(p <= 0 or p % SIZE_MULTIPLE for p in patch):
        raise ValueError(f"patch must be two positive multiples of {SIZE_MULTIPLE}, got {patch}")
    return int(patch[0]), int(patch[1])


def _choose_variants(variants: Optional[Sequence[str]], notes: List[str]) -> List[str]:
    chosen = list(variants) if variants else [*SAM2_VARIANTS, *REFERENCE_VARIANTS]
    unknown = [v for v in chosen if v not in ALL_VARIANTS]
    if unknown:
        raise ValueError(f"unknown variants {unknown}; choose from {ALL_VARIANTS}")
    if "sam_vit_b" in chosen and not sam_vit_b_available():
        chosen.remove("sam_vit_b")
        notes.append("SAM ViT-B reference skipped: the segment-anything package is not importable.")
    return chosen


def resolve_settings(*, sizes: Optional[Sequence[str]] = None,
                     patches: Optional[Sequence[Sequence[int]]] = None,
                     dataset: Optional[str] = None, plans: str = "nnSAM2Plans",
                     configuration: str = "2d", channels: Optional[int] = None,
                     classes: Optional[int] = None, batch_size: Optional[int] = None,
                     variants: Optional[Sequence[str]] = None, device: str = "cpu",
                     warmup: int = 3, repeats: int = 10, train: bool = True,
                     threads: Optional[int] = None, paired: bool = True) -> Settings:
    """What to measure, as the command's options (documentation/benchmarks.md): the plans of
    ``dataset`` (read through nnU-Net's PlansManager) give patch, batch size, channels, classes
    and SAM2 size, explicit arguments override them (without plans: sizes ``tiny``, 1 channel,
    2 classes, batch size 2). ``paired``: also time the compared pairs alternately in one
    process each; ``train``: also time one training step at the batch size."""
    info = read_plans(dataset, plans, configuration) if dataset is not None else None
    if info is None and not patches:
        raise ValueError("give a dataset with plans (-d) or at least one patch size (--patch H W)")
    notes: List[str] = []
    sizes = list(sizes) if sizes else [(info and info.sam2_size) or "tiny"]
    for size in sizes:
        get_size(size)
    settings = Settings(
        sizes=sizes, patches=[check_patch(p) for p in (patches or [info.patch])],
        channels=channels or (info.channels if info else 1),
        classes=classes or (info.classes if info else 2),
        batch_size=batch_size or (info.batch_size if info else DEFAULT_BATCH_SIZE),
        variants=_choose_variants(variants, notes), device=device, warmup=warmup,
        repeats=repeats, train=train, threads=threads, paired=paired, plans=info, notes=notes)
    if info is not None:
        notes.append(f"Plans: {info.dataset_name}/{info.plans_name}.json, configuration "
                     f"{info.configuration!r} (patch {info.patch}, batch size {info.batch_size}, "
                     f"{info.channels} channels, {info.classes} classes).")
    return settings


def unet_spec(settings: Settings, patch: Tuple[int, int]) -> UNetSpec:
    """The plans' U-Net at the plans' patch, nnU-Net's planner for any other patch."""
    info = settings.plans
    if info is not None and tuple(patch) == tuple(info.patch):
        return info.unet
    spacing = info.spacing if info is not None else (1.0, 1.0)
    return unet_from_planner(patch, settings.channels, settings.classes, spacing)


def _job_args(settings: Settings) -> dict:
    """What every job, single or paired, takes from the settings."""
    return dict(channels=settings.channels, classes=settings.classes, device=settings.device,
                warmup=settings.warmup, repeats=settings.repeats, threads=settings.threads)


def make_jobs(settings: Settings) -> List[Job]:
    """Per patch: the U-Net, then every SAM2 variant per size; SAM ViT-B once at the end."""
    common = dict(_job_args(settings), train=settings.train)
    sam2 = [v for v in settings.variants if v not in REFERENCE_VARIANTS]
    jobs = []
    for patch in settings.patches:
        if "nnunet_unet" in settings.variants:
            spec = unet_spec(settings, patch)
            jobs.append(Job("nnunet_unet", None, patch, spec.patch,
                            batch_size=settings.batch_size, unet=spec, **common))
        jobs += [Job(v, size, patch, patch, batch_size=settings.batch_size, **common)
                 for size in settings.sizes for v in sam2]
    if "sam_vit_b" in settings.variants:
        jobs.append(Job("sam_vit_b", None, SAM_VIT_B_PATCH, SAM_VIT_B_PATCH,
                        **{**common, "channels": 3}, batch_size=1))
    return jobs


def make_pair_jobs(settings: Settings) -> List[PairJob]:
    """The alternating pair measurements (latency; training step with training), none when
    ``settings.paired`` is off."""
    if not settings.paired:
        return []
    common = dict(_job_args(settings), batch_size=settings.batch_size)
    return [PairJob(a, b, size, patch, **common, train=train)
            for train, pairs in ((False, PAIRS), (True, TRAIN_PAIRS if settings.train else ()))
            for patch in settings.patches for size in settings.sizes for a, b in pairs
            if a in settings.variants and b in settings.variants]
