"""Visual anagrams and hybrid images: noise estimates built from two guided estimates, plugged
into the one sampling loop (`sampling.sample(..., estimate=...)`).

Anagram (Geng et al.): eps = (eps_1(x) + view^-1(eps_2(view(x)))) / 2.
Hybrid (Factorized Diffusion): eps = lowpass(eps_1) + highpass(eps_2); prompt 1 is what one sees
from far away, prompt 2 up close.
For a learned variance the two variances are averaged (mapped back through the view likewise).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from diffusion_lab.backends.base import ModelOutput, NoiseModel
from diffusion_lab.blur import gaussian_blur, gaussian_blur_each
from diffusion_lab.sampling import NoiseEstimate, guided_estimate, sample

# --- views: orthogonal maps of NCHW images --------------------------------------------------------
#
# An anagram's second estimate is made on view(x_t), so view(x_t) must still look like a noisy image
# to the model: a view that is an orthogonal map of the pixels (a permutation, a sign flip) sends
# N(0, I) noise to N(0, I) noise (Geng et al., Visual Anagrams). A blur does not (see BLUR).


@dataclass(frozen=True)
class View:
    """apply / invert: (N, C, H, W) -> (N, C, H, W), exact inverses of each other."""

    name: str
    apply: Callable[[torch.Tensor], torch.Tensor]
    invert: Callable[[torch.Tensor], torch.Tensor]
    # What the view does to the model's data range [lo, hi]: None where it keeps it (a permutation
    # of the pixels); else the range the view's images lie in (negation: [-hi, -lo]).
    maps_range: Callable[[tuple[float, float]], tuple[float, float]] | None = None


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _flip(x: torch.Tensor) -> torch.Tensor:
    return x.flip(2)  # upside down: along height (NCHW dim 2), not width


def _rot180(x: torch.Tensor) -> torch.Tensor:
    return x.flip(2, 3)


def _rot90(x: torch.Tensor) -> torch.Tensor:
    return x.rot90(1, dims=(2, 3))


def _rot270(x: torch.Tensor) -> torch.Tensor:
    return x.rot90(-1, dims=(2, 3))


def _negate(x: torch.Tensor) -> torch.Tensor:
    return -x


# The patch view's grid and its order of the 16 patches: one fixed permutation with no patch left in
# place, drawn once (torch.randperm, generator seeded 0, redrawn until no fixed point) and written out so
# that it never depends on torch's generator across releases.
PATCH_GRID = 4
PATCH_ORDER = (12, 10, 9, 6, 11, 8, 13, 5, 2, 14, 15, 0, 4, 3, 7, 1)
_PATCH_INVERSE = tuple(sorted(range(len(PATCH_ORDER)), key=PATCH_ORDER.__getitem__))


def _permute_patches(x: torch.Tensor, order: Sequence[int]) -> torch.Tensor:
    """Cut (N, C, H, W) into PATCH_GRID x PATCH_GRID patches (H and W divisible by it) and put
    patch `order[i]` at place i (row-major)."""
    n, c, h, w = x.shape
    g = PATCH_GRID
    if h % g or w % g:
        raise ValueError(f"the patch view cuts images into {g} x {g} patches: {h} x {w} is not divisible by {g}")
    patches = x.reshape(n, c, g, h // g, g, w // g).permute(0, 1, 2, 4, 3, 5).reshape(n, c, g * g, h // g, w // g)
    moved = patches[:, :, list(order)]
    return moved.reshape(n, c, g, g, h // g, w // g).permute(0, 1, 2, 4, 3, 5).reshape(n, c, h, w)


def _patch(x: torch.Tensor) -> torch.Tensor:
    return _permute_patches(x, PATCH_ORDER)


def _unpatch(x: torch.Tensor) -> torch.Tensor:
    return _permute_patches(x, _PATCH_INVERSE)


IDENTITY = View("identity", _identity, _identity)
FLIP = View("flip", _flip, _flip)
ROT180 = View("rot180", _rot180, _rot180)
ROT90 = View("rot90", _rot90, _rot270)  # square images only
NEGATE = View("negate", _negate, _negate, maps_range=lambda r: (-r[1], -r[0]))
PATCH = View("patch", _patch, _unpatch)  # H and W divisible by PATCH_GRID
VIEWS: dict[str, View] = {view.name: view for view in (IDENTITY, FLIP, ROT180, ROT90, NEGATE, PATCH)}

# The counterexample: a Gaussian blur (5 x 5, sigma 1) is linear but not orthogonal. It shrinks noise and
# correlates neighbouring pixels, so view(x_t) is no noisy image the model knows; it has no inverse
# either (it is shown, measured, and never used as an anagram view).
BLUR_KERNEL = (5, 1.0)


def blur_view(x: torch.Tensor) -> torch.Tensor:
    return gaussian_blur(x, *BLUR_KERNEL)


def view_matrix(apply: Callable[[torch.Tensor], torch.Tensor], shape: Sequence[int]) -> torch.Tensor:
    """The (D, D) matrix M of a linear map of images of `shape` (C, H, W), D = C*H*W, such that
    apply(x).flatten() = M @ x.flatten(); built by applying the map to every basis image (float64)."""
    d = 1
    for size in shape:
        d *= size
    basis = torch.eye(d, dtype=torch.float64).reshape(d, *shape)
    return apply(basis).reshape(d, d).T


def orthogonality_error(apply: Callable[[torch.Tensor], torch.Tensor], shape: Sequence[int]) -> float:
    """max |M^T M - I| over the matrix of the linear map `apply` on images of `shape` (C, H, W):
    0 for an orthogonal map (exactly, for a permutation or a sign flip)."""
    matrix = view_matrix(apply, shape)
    return (matrix.T @ matrix - torch.eye(matrix.shape[0], dtype=torch.float64)).abs().max().item()


@dataclass(frozen=True)
class NoiseStatistics:
    """What a map does to N(0, I) noise of one image shape."""

    noise_std: float  # std of the mapped noise's pixels (1 for N(0, I))
    neighbour_correlation: float  # correlation of horizontally adjacent mapped pixels (0 for N(0, I))


def noise_statistics(apply: Callable[[torch.Tensor], torch.Tensor], shape: Sequence[int], count: int,
                     generator: torch.Generator) -> NoiseStatistics:
    """Measure `apply` on `count` draws of N(0, I) noise of `shape` (C, H, W) from `generator`."""
    mapped = apply(torch.randn((count, *shape), generator=generator, dtype=torch.float64))
    left, right = mapped[..., :-1].flatten(), mapped[..., 1:].flatten()
    correlation = torch.corrcoef(torch.stack([left, right]))[0, 1].item()
    return NoiseStatistics(mapped.std().item(), correlation)


def _average(first: torch.Tensor | None, second: torch.Tensor | None) -> torch.Tensor | None:
    return None if first is None or second is None else (first + second) / 2


# --- visual anagrams -----------------------------------------------------------------------------


def anagram_estimate(first: NoiseEstimate, second: NoiseEstimate, view: View = FLIP) -> NoiseEstimate:
    """eps = (eps_1(x) + view^-1(eps_2(view(x)))) / 2."""

    def estimate(x_t: torch.Tensor, t: int) -> ModelOutput:
        out_1 = first(x_t, t)
        out_2 = second(view.apply(x_t), t)
        variance_2 = None if out_2.variance is None else view.invert(out_2.variance)
        return ModelOutput(eps=(out_1.eps + view.invert(out_2.eps)) / 2, variance=_average(out_1.variance, variance_2))

    return estimate


def visual_anagram(
    model: NoiseModel,
    n: int,
    condition_1: Any,
    condition_2: Any,
    generator: torch.Generator,
    *,
    view: View = FLIP,
    guidance: float | None = None,
    uncond: Any = None,
    **sample_options,
) -> torch.Tensor:
    """n images that read as condition_1 as they are and as condition_2 through `view`
    (CFG applied to each view's estimate before averaging).

    Returns:
        (n, *model.sample_shape) in the model's range, on its device and dtype; `view` must map
        that shape to itself (a rotation by 90 degrees needs square images)."""
    if guidance is not None and uncond is None:
        uncond = model.encode("")
    estimate = anagram_estimate(
        guided_estimate(model, condition_1, uncond, guidance),
        guided_estimate(model, condition_2, uncond, guidance),
        view,
    )
    return sample(model, n, None, generator, estimate=estimate, **sample_options)


# --- hybrid images -------------------------------------------------------------------------------


def hybrid_kernel(image_size: int) -> tuple[int, float]:
    """(kernel_size, sigma) of the hybrid low-pass for square images of `image_size`.

    The course's (33, 2) for 64x64 scaled with the image: sigma = 2 * size / 64 and the kernel's
    half-width 16 * size / 64 rounded (so 8 sigma either side, as at 64). 28x28 -> (15, 0.875).
    """
    scale = image_size / 64
    return 2 * round(16 * scale) + 1, 2.0 * scale


def hybrid_estimate(
    far: NoiseEstimate,
    near: NoiseEstimate,
    kernel_size: int = 33,
    sigma: float = 2.0,
    kernels: Sequence[tuple[int, float]] | None = None,
) -> NoiseEstimate:
    """eps = lowpass(eps_far) + highpass(eps_near), highpass = identity - lowpass. `kernels`, one
    (kernel_size, sigma) per image of the batch, overrides the one kernel: a batch can then hold
    several low-passes at once (section 1.9's sweep samples all its settings in one loop)."""

    def lowpass(eps: torch.Tensor) -> torch.Tensor:
        if kernels is not None:
            return gaussian_blur_each(eps, kernels)
        return gaussian_blur(eps, kernel_size, sigma)

    def estimate(x_t: torch.Tensor, t: int) -> ModelOutput:
        out_far = far(x_t, t)
        out_near = near(x_t, t)
        eps = lowpass(out_far.eps) + (out_near.eps - lowpass(out_near.eps))
        return ModelOutput(eps=eps, variance=_average(out_far.variance, out_near.variance))

    return estimate


def hybrid_image(
    model: NoiseModel,
    n: int,
    condition_far: Any,
    condition_near: Any,
    generator: torch.Generator,
    *,
    kernel_size: int | None = None,
    sigma: float | None = None,
    kernels: Sequence[tuple[int, float]] | None = None,
    guidance: float | None = None,
    uncond: Any = None,
    **sample_options,
) -> torch.Tensor:
    """n images that read as condition_far from afar and condition_near up close; the kernel
    defaults to `hybrid_kernel` of the model's image size, and `kernels` gives each of the n
    images its own (see `hybrid_estimate`).

    Args:
        kernel_size: the low-pass Gaussian's size in pixels (odd).
        sigma: its standard deviation in pixels.
        kernels: n pairs (kernel_size, sigma), one per image; when given, kernel_size and sigma are unused.

    Returns:
        (n, *model.sample_shape) in the model's range, on its device and dtype."""
    default_kernel, default_sigma = hybrid_kernel(model.sample_shape[-1])
    if guidance is not None and uncond is None:
        uncond = model.encode("")
    estimate = hybrid_estimate(
        guided_estimate(model, condition_far, uncond, guidance),
        guided_estimate(model, condition_near, uncond, guidance),
        default_kernel if kernel_size is None else kernel_size,
        default_sigma if sigma is None else sigma,
        None if kernels is None else [(int(k), float(s)) for k, s in kernels],
    )
    return sample(model, n, None, generator, estimate=estimate, **sample_options)
