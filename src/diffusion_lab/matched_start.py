"""Where to start sampling when a schedule's last timestep still holds signal: `MatchedStart`,
which `sampling.sample(start=...)` takes.

It summarises the forward process's marginal q(x_t), yet lives apart from `forward_process`: run
cache keys follow each module's code, and training, which never needs it, keys on that module.
"""

from __future__ import annotations

import torch


class MatchedStart:
    """Where to start sampling when the schedule's last timestep still holds signal.

    q(x_t) = E_x0 N(sqrt(abar_t) x0, (1 - abar_t) I) has mean sqrt(abar_t) mu and covariance
    abar_t Sigma + (1 - abar_t) I, for the data's mean mu and covariance Sigma. The course's schedule
    (T = 300, betas linear to 0.02) ends at abar_T = 0.048: x_T keeps sqrt(0.048) = 22% of the digit,
    while the sampling loop starts from N(0, I). Called on that start's draw eps ~ N(0, I), this
    returns x_t = sqrt(abar_t) mu + L eps with L L^T = abar_t Sigma + (1 - abar_t) I: a draw from the
    Gaussian with q(x_t)'s first two moments, made from the same eps, so the loop's draws stay as
    they were. At abar_t = 0 it returns eps itself.
    """

    def __init__(self, images: torch.Tensor):
        """images: (N, C, H, W) training images in the model's data range, N >= 2."""
        if images.dim() != 4 or images.shape[0] < 2:
            raise ValueError(f"MatchedStart needs (N, C, H, W) images with N >= 2, got shape {tuple(images.shape)}")
        flat = images.reshape(images.shape[0], -1).to(torch.float64)
        self.image_shape = tuple(images.shape[1:])
        self.mean = flat.mean(0)  # (D,), D = C * H * W
        self.covariance = torch.cov(flat.T)  # (D, D)

    def scale(self, abar_t: float) -> torch.Tensor:
        """L (D, D), lower triangular, with L L^T = abar_t Sigma + (1 - abar_t) I."""
        if not 0.0 <= abar_t <= 1.0:
            raise ValueError(f"abar_t must lie in [0, 1], got {abar_t}")
        eye = torch.eye(self.covariance.shape[0], dtype=torch.float64)
        # The identity term keeps it positive definite for abar_t < 1; at 1 Sigma alone may be singular
        # (MNIST's corner pixels never vary), so a negligible jitter keeps the factorization defined.
        return torch.linalg.cholesky(abar_t * self.covariance + max(1.0 - abar_t, 1e-10) * eye)

    def __call__(self, eps: torch.Tensor, abar_t: float) -> torch.Tensor:
        """x_t (N, C, H, W) in eps's dtype and device, from eps (N, C, H, W) ~ N(0, I)."""
        if tuple(eps.shape[1:]) != self.image_shape:
            raise ValueError(f"eps must be (N, {', '.join(map(str, self.image_shape))}), got {tuple(eps.shape)}")
        flat = eps.reshape(eps.shape[0], -1).to("cpu", torch.float64)
        x = abar_t**0.5 * self.mean + flat @ self.scale(abar_t).T
        return x.reshape(eps.shape).to(device=eps.device, dtype=eps.dtype)
