"""B1.1: one real MNIST test digit noised as z = x + sigma * eps."""

from __future__ import annotations

from diffusion_lab.mnist.data import load_mnist
from diffusion_lab.runcache.context import BuildContext
from diffusion_lab.runcache.runs import RunRecord, Scratch, cached_run
from diffusion_lab.seeding import randn

NOISING_SIGMAS = (0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0)


def add_gaussian_noise(x, sigma: float, eps):
    """z = x + sigma * eps (write-up, Part B eq. for the single-step denoiser)."""
    return x + sigma * eps


def noising_run(ctx: BuildContext, digit_index: int = 0, sigmas=NOISING_SIGMAS) -> RunRecord:
    params = {"split": "test", "digit_index": digit_index, "sigmas": list(sigmas)}

    def compute(scratch: Scratch):
        x = load_mnist().test_images[digit_index]
        # One draw of eps for every sigma: the pictures then differ by sigma alone.
        eps = randn(x.shape, scratch.generator("eps"))
        noisy = [add_gaussian_noise(x, sigma, eps) for sigma in sigmas]
        scratch.save("noisy.pt", {"clean": x, "noisy": noisy, "label": int(load_mnist().test_labels[digit_index])})
        return {"label": int(load_mnist().test_labels[digit_index])}

    return cached_run(ctx, "partb/noising", params, compute)
