"""Numeric precision for Part B's networks: what a recipe's "auto" means on a given device, and
the autocast context and memory layout that go with the resolved precision."""

from __future__ import annotations

import contextlib

import torch


def bf16_is_fast(device: torch.device | str) -> bool:
    """bf16 autocast pays off on CUDA cards with bf16 and on CPUs with AVX-512 BF16 / AMX;
    elsewhere oneDNN emulates bf16 and it is slower than fp32."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def resolve_precision(precision: str, device: torch.device | str) -> str:
    if precision == "auto":
        return "bf16" if bf16_is_fast(device) else "fp32"
    if precision not in ("bf16", "fp32"):
        raise ValueError(f"precision must be 'auto', 'bf16' or 'fp32', not {precision!r}")
    return precision


def autocast(device: torch.device | str, precision: str):
    """A context running the forward pass in `precision` ("bf16" or "fp32", already resolved)."""
    device = torch.device(device)
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def memory_format(precision: str) -> torch.memory_format:
    """channels_last is what makes bf16 convolutions fast in oneDNN and on tensor cores."""
    return torch.channels_last if precision == "bf16" else torch.contiguous_format
