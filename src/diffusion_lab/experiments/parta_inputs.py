"""Part A's input pictures: MNIST test digits, the PNGs in docs/inputs, matplotlib's sample photo.

Every input has an identity (its id, where it comes from and the sha256 of its bytes) that goes
into the parameters of the runs that use it, so editing an input invalidates those runs.
Pictures are loaded as float tensors (C, H, W) in [0, 1], then mapped into a model's data space.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import diffusion_lab
from diffusion_lab.experiments.parta_plan import (
    FILE,
    MNIST_TEST,
    SAMPLE_DATA,
    InputImage,
)
from diffusion_lab.hashing import file_sha256
from diffusion_lab.mnist.data import MNIST_SHA256, load_mnist

# The checkout this package sits in (src/diffusion_lab -> repo): where docs/inputs lives when the
# working directory is elsewhere (pytest from a subfolder, the CLI).
REPO_ROOT = Path(diffusion_lab.__file__).resolve().parents[2]


class InputError(ValueError):
    """An input picture that cannot be used; the message is one line that says why."""


def resolve_path(ref: str | Path) -> Path:
    """A repo-relative path from the working directory (the page scripts' cwd is the repo), else
    from the checkout this package sits in."""
    path = Path(ref)
    if path.is_absolute():
        return path
    for base in (Path.cwd(), REPO_ROOT):
        if (base / path).is_file():
            return base / path
    raise InputError(f"input file {ref} not found (looked in {Path.cwd()} and {REPO_ROOT})")


def sample_data_path(name: str) -> Path:
    import matplotlib.cbook

    return Path(matplotlib.cbook.get_sample_data(name, asfileobj=False))


def _path_of(image: InputImage) -> Path:
    if image.source == FILE:
        return resolve_path(image.ref)
    if image.source == SAMPLE_DATA:
        return sample_data_path(image.ref)
    raise ValueError(f"{image.id} is not a file")


def input_identity(image: InputImage) -> dict:
    """What run parameters record about an input: its id and source, and its bytes' sha256."""
    sha = MNIST_SHA256 if image.source == MNIST_TEST else file_sha256(_path_of(image))
    return {**image.to_dict(), "sha256": sha}


# --- reading pictures ----------------------------------------------------------------------------


def read_picture(path: str | Path, channels: int) -> torch.Tensor:
    """A PNG/JPEG as (channels, H, W) float32 in [0, 1] (channels 1: grayscale, 3: RGB).
    Raises InputError with a one-line reason for a missing or unreadable file."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
    try:
        with Image.open(path) as picture:
            picture = picture.convert("L" if channels == 1 else "RGB")
            array = np.asarray(picture, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, ValueError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise InputError(f"cannot read {path} as an image: {reason}") from None
    tensor = torch.from_numpy(array)
    return tensor.unsqueeze(0) if tensor.dim() == 2 else tensor.permute(2, 0, 1).contiguous()


def center_square(picture: torch.Tensor, size: int) -> torch.Tensor:
    """Crop (C, H, W) to its central square and resize it to size x size (antialiased)."""
    _, height, width = picture.shape
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = picture[:, top : top + side, left : left + side]
    return F.interpolate(square[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]


def load_input(image: InputImage, channels: int, photo_size: int = 64) -> tuple[torch.Tensor, dict]:
    """(C, H, W) in [0, 1] and facts about it (the true digit of an MNIST test image)."""
    if image.source == MNIST_TEST:
        data = load_mnist()
        index = int(image.ref)
        picture = data.test_images[index]
        info = {"label": int(data.test_labels[index])}
        return (picture.expand(channels, -1, -1).clone() if channels != 1 else picture.clone()), info
    picture = read_picture(_path_of(image), channels)
    if image.source == SAMPLE_DATA:
        picture = center_square(picture, photo_size)
    return picture, {}


# --- into a model's data space ---------------------------------------------------------------


def to_model_space(
    picture: torch.Tensor, sample_shape: tuple[int, int, int], data_range: tuple[float, float]
) -> torch.Tensor:
    """(C, H, W) in [0, 1] -> (1, *sample_shape) in `data_range`, resized when the sizes differ."""
    channels, height, width = sample_shape
    x = picture.float()
    if x.shape[0] != channels:
        x = x.mean(0, keepdim=True).expand(channels, -1, -1) if channels in (1, 3) else x
    if tuple(x.shape[-2:]) != (height, width):
        x = F.interpolate(x[None], size=(height, width), mode="bilinear", antialias=True, align_corners=False)[0]
    low, high = data_range
    return (low + (high - low) * x.clamp(0, 1)).unsqueeze(0)


def mask_to_model_space(mask: torch.Tensor, sample_shape: tuple[int, int, int]) -> torch.Tensor:
    """A mask picture (1, H, W) in [0, 1] -> (1, C, H, W) of exact 0s and 1s (1 = regenerate)."""
    channels, height, width = sample_shape
    m = (mask.float().mean(0, keepdim=True) > 0.5).float()
    if tuple(m.shape[-2:]) != (height, width):
        m = F.interpolate(m[None], size=(height, width), mode="nearest")[0]
    return m.expand(channels, -1, -1).unsqueeze(0).clone()


def to_unit_range(x: torch.Tensor, data_range: tuple[float, float]) -> torch.Tensor:
    """Data space -> [0, 1], clamped: how a result is saved or judged."""
    low, high = data_range
    return ((x.float() - low) / (high - low)).clamp(0, 1)
