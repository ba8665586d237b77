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
#
# Every pixel format is converted by what its numbers mean, never by clipping: 8-bit /255, 16-bit
# /65535, float as is (it must already lie in [0, 1]). Transparency is composited over black, the
# background of MNIST's white-on-black digits, with one exception: a drawing whose visible pixels
# all have one colour (a canvas export: black ink on a transparent background) carries its picture
# in the alpha channel alone, so its opacity is the ink, read as white strokes on black.

# The most pixels an input may have (4096 x 4096, 64 MiB as float32 RGB after conversion): far
# above any model's size, far below what would exhaust memory (PIL itself stops at ~179 million).
MAX_PIXELS = 4096 * 4096

SUPPORTED_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr",
                   "I;16", "I;16B", "I;16L", "I;16N", "I", "F")
SUPPORTED_TEXT = ("8-bit grey or colour with or without alpha (1, L, LA, P, PA, RGB, RGBA, RGBX, CMYK, "
                  "YCbCr), 16-bit grey (I;16, I up to 65535) and float grey in [0, 1] (F)")
_SIXTEEN_BIT = 65535.0
# ITU-R 601 luma, the weights PIL's convert("L") uses.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
# Canvas exports un-premultiply their colours, which perturbs the faint edge pixels by a few
# levels: a drawing counts as one colour when its half-opaque and more opaque pixels agree this well.
_ONE_COLOUR_TOLERANCE = 2.0 / 255.0


def read_picture(path: str | Path, channels: int) -> torch.Tensor:
    """A picture file as (channels, H, W) float32 in [0, 1] (channels 1: grayscale, 3: RGB).

    Any of SUPPORTED_MODES is converted by its bit depth (see above for transparency). Raises
    InputError with a one-line reason for a missing, unreadable, too large or unsupported file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
    colour, alpha = _open_and_decode(path, channels)
    array = _composite(colour, alpha)
    array = _to_channels(array, channels)
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    return tensor.permute(2, 0, 1).contiguous()


def _open_and_decode(path: Path, channels: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(colour (H, W, 1 or 3), alpha (H, W) or None) in [0, 1] from the file, size-checked first."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # The size is judged below against MAX_PIXELS, before any pixel is decoded.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as picture:
                _check_size(path, picture)
                return _decode(path, picture, channels)
    except Image.DecompressionBombError as error:
        raise InputError(_too_large(path, _pixels_in(str(error)))) from None
    except InputError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise InputError(f"cannot read {path} as an image: {reason}") from None


def _pixels_in(message: str) -> int | None:
    """The pixel count PIL's DecompressionBombError names ("Image size (400000000 pixels) ...")."""
    import re

    found = re.search(r"\((\d+) pixels\)", message)
    return int(found.group(1)) if found else None


def _too_large(path: Path, size: tuple[int, int] | int | None) -> str:
    if isinstance(size, tuple):
        what = f"is {size[0]}x{size[1]} ({size[0] * size[1]:,} pixels)"
    else:
        what = f"has {size:,} pixels" if size else "has far too many pixels"
    return f"{path} {what}; inputs may have at most {MAX_PIXELS:,} pixels (4096x4096): scale it down first"


def _check_size(path: Path, picture) -> None:
    """Refuse a picture too large to convert, or one with several frames, before decoding it."""
    width, height = picture.size
    if width * height > MAX_PIXELS:
        raise InputError(_too_large(path, (width, height)))
    frames = getattr(picture, "n_frames", 1)
    if frames > 1:
        raise InputError(f"{path} has {frames} frames (an animation or multi-page file); save the one "
                         "frame to use as a PNG")


def _decode(path: Path, picture, channels: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Pixels of an opened picture by its mode: (colour (H, W, C), alpha (H, W) or None) in [0, 1]."""
    mode = picture.mode
    if mode not in SUPPORTED_MODES:
        raise InputError(f"{path} has pixel mode {mode}, which is not supported; use {SUPPORTED_TEXT}")
    if mode.startswith("I"):
        return _sixteen_bit(path, np.asarray(picture)), None
    if mode == "F":
        return _unit_float(path, np.asarray(picture)), None
    if mode in ("P", "PA", "RGBa") or "transparency" in picture.info:
        picture = picture.convert("RGBA")  # a palette or a tRNS chunk may hold transparency
    if picture.mode not in ("LA", "RGBA"):
        # Opaque 8 bits: PIL's own conversion, so the site's inputs read exactly as they always have.
        array = np.asarray(picture.convert("L" if channels == 1 else "RGB"), dtype=np.float32) / 255.0
        return (array[..., None] if array.ndim == 2 else array), None
    array = np.asarray(picture, dtype=np.float32) / 255.0
    return array[..., :-1], array[..., -1]


def _sixteen_bit(path: Path, values: np.ndarray) -> np.ndarray:
    """Integer grey levels 0..65535 -> [0, 1]; 32-bit integers beyond that range are refused."""
    low, high = int(values.min()), int(values.max())
    if low < 0 or high > _SIXTEEN_BIT:
        raise InputError(f"{path} holds integer grey levels {low}..{high}; integer pictures are read as "
                         "16-bit (0..65535): rescale it, or save it as 8-bit or float in [0, 1]")
    return (values.astype(np.float32) / _SIXTEEN_BIT)[..., None]


def _unit_float(path: Path, values: np.ndarray) -> np.ndarray:
    """A float picture, read as is: it must already lie in [0, 1] (clipping would hide an error)."""
    values = values.astype(np.float32)
    if not np.isfinite(values).all():
        raise InputError(f"{path} holds NaN or infinite values; a float picture must lie in [0, 1]")
    low, high = float(values.min()), float(values.max())
    if low < 0.0 or high > 1.0:
        raise InputError(f"{path} holds values {low:g}..{high:g}; a float picture must lie in [0, 1]: "
                         "rescale it first")
    return values[..., None]


def _composite(colour: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """Flatten transparency onto black, or read a one-colour drawing from its alpha (see above)."""
    if alpha is None or alpha.min() >= 1.0:
        return colour
    if is_alpha_drawing(colour, alpha):
        return np.repeat(alpha[..., None], colour.shape[-1], axis=-1)
    return colour * alpha[..., None]


def is_alpha_drawing(colour: np.ndarray, alpha: np.ndarray) -> bool:
    """True when every at least half-opaque pixel has the same colour: the picture is its alpha."""
    solid = colour[alpha >= 0.5]
    if solid.size == 0:
        return True  # nothing drawn: all transparent reads as all black either way
    return float((solid.max(axis=0) - solid.min(axis=0)).max()) <= _ONE_COLOUR_TOLERANCE


def _to_channels(array: np.ndarray, channels: int) -> np.ndarray:
    """(H, W, 1 or 3) -> (H, W, channels): luma for grey, repeated grey for colour."""
    if array.shape[-1] == channels:
        return array
    if channels == 1:
        return (array @ _LUMA)[..., None]
    return np.repeat(array, channels, axis=-1)


def require_binary_mask(mask: torch.Tensor) -> None:
    """Refuse a mask with grey pixels: inpainting regenerates or keeps each pixel, nothing between,
    and thresholding a soft mask silently would move its edge."""
    soft = (mask > 0) & (mask < 1)
    count = int(soft.sum())
    if count:
        example = float(mask[soft][0])
        raise InputError(f"the mask has {count} grey pixels (e.g. {example:.3f}); a mask must be pure black "
                         "(keep) and white (regenerate): threshold it first")


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
