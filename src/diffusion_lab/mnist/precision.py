"""Numeric precision for Part B's networks: what a recipe's "auto" means on a given device, and
the autocast context and memory layout that go with the resolved precision.

The rule for "auto", one device type at a time (`bf16_is_fast`):

- CPU: bf16 autocast where oneDNN reports native bf16 (AVX-512 BF16 or AMX), else fp32: oneDNN
  emulates bf16 elsewhere, slower than fp32.
- CUDA: bf16 autocast where torch reports bf16 on the card (natively from compute capability 8,
  Ampere), else fp32. No fp16: it would need a gradient scaler in training and a second numeric
  path to test, for the pre-Ampere cards only, which no one here can measure. Caveat: the check
  below, `torch.cuda.is_bf16_supported()`, also says yes on pre-Ampere cards where torch emulates
  bf16 (slowly), and asks about the current card, not `device`; `including_emulation=False` and
  `device` would fix both, but editing this code changes every Part B run's cache key (a retrain),
  so it waits for a change that retrains anyway.
- MPS (Apple silicon): fp32. bf16 autocast on MPS is partial (operators fall back or lack bf16
  kernels depending on the macOS and torch versions); fp32 until it is measured on Apple hardware.
  `autocast` is then a null context and `memory_format` the contiguous layout, on MPS as anywhere.

A recipe that names "bf16" or "fp32" gets it on any device. A build may decide what "auto" means for
everything it computes (`auto_means`: the run cache does, so that the precision in a run's cache key
is the one its networks ran at; a build that reads a shared store adopts the store's precision).
The Build page says the rule in words
(`runcache.context.PRECISION_RULES`, held to this code by tests/test_devices.py).
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from typing import Iterator

import torch

PRECISIONS = ("bf16", "fp32")

# What "auto" resolves to inside `auto_means` (None: the device's rule).
_AUTO_MEANS: ContextVar[str | None] = ContextVar("auto_means", default=None)


@contextlib.contextmanager
def auto_means(precision: str | None) -> Iterator[None]:
    """Inside this block a recipe's "auto" resolves to `precision` ("bf16" or "fp32") on every
    device; None keeps the device's rule."""
    if precision is not None and precision not in PRECISIONS:
        raise ValueError(f"precision must be 'bf16' or 'fp32', not {precision!r}")
    token = _AUTO_MEANS.set(precision)
    try:
        yield
    finally:
        _AUTO_MEANS.reset(token)


def bf16_is_fast(device: torch.device | str) -> bool:
    """bf16 autocast pays off on CUDA cards with bf16 and on CPUs with AVX-512 BF16 / AMX;
    elsewhere oneDNN emulates bf16 and it is slower than fp32. False on MPS and any other device:
    fp32 until bf16 is measured there (see the module's rule)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def device_precision(device: torch.device | str) -> str:
    """What "auto" means on `device` by the device's rule: "bf16" where it is fast, else "fp32"."""
    return "bf16" if bf16_is_fast(device) else "fp32"


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """"bf16" or "fp32": `precision` itself, or for "auto" what `auto_means` set, else the device's rule."""
    if precision == "auto":
        return _AUTO_MEANS.get() or device_precision(device)
    if precision not in PRECISIONS:
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
