"""Check 1: the machine, the library versions and the precision policy chosen for it."""
import torch

from nnsam2.benchmark.acceptance.core import Context, Outcome
from nnsam2.benchmark.machine import machine_info
from nnsam2.network.precision import BF16, FP16, FP32, device_facts, native_bf16


def expected_policy(device: torch.device):
    """What :func:`~nnsam2.network.precision.policy_for` must choose: fp32 off CUDA, bf16 with
    native bf16, fp16 (with a GradScaler) without."""
    if device.type != "cuda":
        return FP32
    return BF16 if native_bf16(device) else FP16


def check_environment(ctx: Context) -> Outcome:
    facts = device_facts(ctx.device)
    info = machine_info(str(ctx.device))
    versions = info["versions"]
    name = facts["device_name"] if ctx.device.type == "cuda" else info["cpu"]
    bf16 = native_bf16(ctx.device) if ctx.device.type == "cuda" else None
    figure = (f"{name}, compute capability {facts['compute_capability'] or '-'}, "
              f"bf16 native {'-' if bf16 is None else ('yes' if bf16 else 'no')}, policy "
              f"{ctx.policy.name}{' + GradScaler' if ctx.policy.grad_scaler else ''}; "
              + ", ".join(f"{k} {v}" for k, v in versions.items()
                          if k != "dynamic_network_architectures"))
    missing = [k for k in ("torch", "torchvision", "nnunetv2", "sam2") if versions.get(k) is None]
    expected = expected_policy(ctx.device)
    problems = ([f"not installed: {', '.join(missing)}"] if missing else []) + (
        [f"policy {ctx.policy.name}, expected {expected.name}"] if ctx.policy != expected else [])
    return Outcome(not problems, figure, "; ".join(problems) or
                   "policy: bf16 where native, fp16 + GradScaler on other GPUs, fp32 on CPU")
