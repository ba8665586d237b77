"""Prompt -> T5 embedding for DeepFloyd IF: from the text encoder when one is loaded, else a file.

T5-XXL barely fits a free GPU next to the UNet, so the course shipped the embeddings it needed
precomputed: a `torch.load`-able dict {prompt: tensor (1, 77, 4096)}. Without such a file the
T5 encoder saved with stage I's weights encodes every prompt (diffusers' own default for IF);
with one, the file is consulted first and an encoder, when loaded too, extends it to any prompt.
Either way an embedding is cached per (text-encoder model, prompt), in memory and, if asked, on disk.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable

import torch

from diffusion_lab.backends.base import UnknownPrompt

UNCONDITIONAL_PROMPT = ""

# The prompts of the course's precomputed embeddings file (and of the write-up's figures).
COURSE_PROMPTS: tuple[str, ...] = (
    "",
    "a high quality photo",
    "an oil painting of a snowy mountain village",
    "a man wearing a hat",
    "a rocket ship",
    "a pencil",
    "a photo of the amalfi cost",
    "a photo of a man",
    "a photo of a hipster barista",
    "a photo of a dog",
    "an oil painting of people around a campfire",
    "an oil painting of an old man",
    "a lithograph of waterfalls",
    "a lithograph of a skull",
)

Encoder = Callable[[str], torch.Tensor]


def _as_batch_of_one(prompt: str, embedding: torch.Tensor) -> torch.Tensor:
    if not isinstance(embedding, torch.Tensor):
        raise TypeError(f"the embedding of {prompt!r} is a {type(embedding).__name__}, not a tensor")
    if embedding.dim() == 2:
        embedding = embedding.unsqueeze(0)
    if embedding.dim() != 3 or embedding.shape[0] != 1:
        raise ValueError(f"the embedding of {prompt!r} has shape {tuple(embedding.shape)}, expected (1, tokens, dim)")
    return embedding


def load_prompt_embeddings_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The course's file form: a dict prompt -> (1, tokens, dim) tensor ((tokens, dim) accepted)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prompt-embeddings file {path} does not exist")
    # weights_only: the file is plain tensors, so refuse to unpickle anything else.
    table = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(table, dict) or not all(isinstance(key, str) for key in table):
        raise ValueError(f"{path} is not a dict prompt -> tensor")
    return {prompt: _as_batch_of_one(prompt, embedding) for prompt, embedding in table.items()}


def save_prompt_embeddings_file(path: str | os.PathLike, table: dict[str, torch.Tensor]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save({prompt: _as_batch_of_one(prompt, e).detach().cpu() for prompt, e in table.items()}, partial)
    os.replace(partial, path)
    return path


class PromptEmbeddings:
    """Turns prompts into embeddings for one text-encoder model, caching every answer.

    model_key: identifies the text encoder (the stage-I id or folder), part of every cache key.
    table: precomputed embeddings (the prompt-embeddings file), consulted first.
    encoder: prompt -> (1, 77, dim) tensor, or None when no T5 is loaded.
    disk_cache: a folder for embeddings the encoder computed, so the next build skips T5.
    """

    def __init__(
        self,
        model_key: str,
        table: dict[str, torch.Tensor] | None = None,
        encoder: Encoder | None = None,
        disk_cache: str | os.PathLike | None = None,
        source: str = "",
    ):
        self.model_key = model_key
        self.table = {prompt: _as_batch_of_one(prompt, e) for prompt, e in (table or {}).items()}
        self.encoder = encoder
        self.disk_cache = Path(disk_cache) if disk_cache else None
        self.source = source
        self._memory: dict[tuple[str, str], torch.Tensor] = {}

    def known_prompts(self) -> list[str]:
        return sorted(self.table)

    def __call__(self, prompt: str) -> torch.Tensor:
        key = (self.model_key, prompt)
        if key not in self._memory:
            self._memory[key] = self._lookup(prompt)
        return self._memory[key]

    def _lookup(self, prompt: str) -> torch.Tensor:
        if prompt in self.table:
            return self.table[prompt]
        cached = self._disk_path(prompt)
        if cached is not None and cached.is_file():
            return _as_batch_of_one(prompt, torch.load(cached, map_location="cpu", weights_only=True))
        if self.encoder is None:
            raise UnknownPrompt(self._unknown_message(prompt))
        embedding = _as_batch_of_one(prompt, self.encoder(prompt)).detach().cpu()
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            partial = cached.with_name(cached.name + ".partial")
            torch.save(embedding, partial)
            os.replace(partial, cached)
        return embedding

    def _disk_path(self, prompt: str) -> Path | None:
        if self.disk_cache is None:
            return None
        digest = hashlib.sha256(f"{self.model_key}\0{prompt}".encode()).hexdigest()[:32]
        return self.disk_cache / f"{digest}.pt"

    def _unknown_message(self, prompt: str) -> str:
        where = f" in {self.source}" if self.source else ""
        known = "\n".join(f"  - {p!r}" for p in self.known_prompts()) or "  (none)"
        return (
            f"no embedding for prompt {prompt!r}: no T5 text encoder is loaded and the prompt is not"
            f" among the {len(self.table)} precomputed prompts{where}:\n{known}\n"
            "Use one of these, add the prompt to the file, or load the T5 text encoder of stage I's"
            " weights beside the file (text_encoder='t5' or 't5-8bit', env DIFFUSION_LAB_IF_TEXT_ENCODER)."
        )
