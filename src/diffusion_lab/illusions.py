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

# --- views: small invertible maps of NCHW images -------------------------------------------------


@dataclass(frozen=True)
class View:
    name: str
    apply: Callable[[torch.Tensor], torch.Tensor]
    invert: Callable[[torch.Tensor], torch.Tensor]


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


IDENTITY = View("identity", _identity, _identity)
FLIP = View("flip", _flip, _flip)
ROT180 = View("rot180", _rot180, _rot180)
ROT90 = View("rot90", _rot90, _rot270)  # square images only
VIEWS: dict[str, View] = {view.name: view for view in (IDENTITY, FLIP, ROT180, ROT90)}


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
