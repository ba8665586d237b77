"""Every random draw in the project flows through a CPU generator derived from (seed, name).

Deriving the generator from a name, not from call order, means adding a run never shifts the
random numbers another run sees, and drawing on the CPU keeps CPU builds bit-for-bit repeatable
(diffusers recommends the same).
"""

from __future__ import annotations

import hashlib

import torch


def derived_seed(seed: int, name: str) -> int:
    digest = hashlib.sha256(f"{int(seed)}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def make_generator(seed: int, name: str) -> torch.Generator:
    """A fresh CPU generator for the draw called `name` under the global `seed`."""
    generator = torch.Generator(device="cpu")
    generator.manual_seed(derived_seed(seed, name))
    return generator


def randn(shape, generator: torch.Generator, device="cpu", dtype=torch.float32) -> torch.Tensor:
    """Standard normal noise drawn on the CPU from `generator` in `dtype`, then moved to `device`.

    Drawing in the target dtype (not float32 then cast) is what diffusers' randn_tensor does, so a
    float16 run sees the very numbers IFPipeline would."""
    return torch.randn(tuple(shape), generator=generator, dtype=dtype).to(device=device)
