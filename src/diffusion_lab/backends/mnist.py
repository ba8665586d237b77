"""The Part B class-conditioned MNIST DDPM behind the `NoiseModel` interface.

Timestep convention. `NoiseModel` timesteps are 0-based like diffusers': k = 0..T-1 indexes
`alphas_cumprod`. Part B (mnist/ddpm.py, Ho et al.) counts t = 1..T with abar_0 = 1 for clean data.
They are the same chain with k = t - 1:

    alphas_cumprod[k] = prod_{s <= k+1} (1 - beta_s) = DDPMSchedule.alphas_cumprod[k + 1]
    the network is fed (k + 1) / T   (t / T, as in training, t ~ U{1..T})

so the strided loop's final step from k = 0 to k' = -1 (abar = 1) is Part B's step from t = 1
to clean data, returning x0_hat with no noise. Pass `DDPMSchedule(...).alphas_cumprod[1:]`.

Conditions are float one-hot rows (1, 10); the zero row is the unconditional estimate that
classifier-free guidance needs (the net was trained with classes dropped to zero rows). A
time-conditioned UNet (B2.1, no class input) takes only the empty prompt, whose condition is an
empty row (1, 0).

Part A runs this model on ~34 strided steps with the fixed posterior variance; Part B's own
sampler (Algorithms B.2, B.4) is the same loop on all T steps (stride 1) with `fixed_large`.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from diffusion_lab.backends.base import ModelOutput, UnknownPrompt, VarianceType
from diffusion_lab.forward_process import strided_timesteps
from diffusion_lab.mnist.precision import autocast, resolve_precision
from diffusion_lab.mnist.unet import one_hot

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# About as many steps as IF's 990, 960, ..., 0 list, so Part A sections cost the same on both.
TARGET_STEPS = 34
VARIANCE_WORDS = {"fixed_small": "fixed posterior variance", "fixed_large": "fixed variance b_t (fixed_large)"}


def prompt_table() -> dict[str, int]:
    """Every prompt the backend understands -> its digit (-1 = unconditional)."""
    table = {"": -1}
    for digit, word in enumerate(DIGIT_WORDS):
        for name in (str(digit), word):
            table[name] = digit
            table[f"a handwritten {name}"] = digit
            table[f"the digit {name}"] = digit
    return table


_PROMPTS = prompt_table()


def parse_prompt(prompt: str) -> int:
    """The digit a prompt names (-1 for ""); case and surrounding spaces do not matter."""
    key = " ".join(prompt.lower().split())
    if key not in _PROMPTS:
        raise UnknownPrompt(
            f"the MNIST backend does not understand the prompt {prompt!r}: it knows the digits 0-9 as "
            f"'7', 'seven', 'a handwritten 7', 'a handwritten seven', 'the digit 7' or 'the digit seven' "
            f"(any digit, any case), and '' for unconditional"
        )
    return _PROMPTS[key]


def default_stride(num_timesteps: int) -> int:
    return max(1, round(num_timesteps / TARGET_STEPS))


def loop_timesteps(num_timesteps: int, stride: int | None = None) -> list[int]:
    """The descending list the loops run on: every `stride`-th timestep down to 0, starting at the
    largest multiple of the stride below T (default stride: about TARGET_STEPS steps over T)."""
    stride = default_stride(num_timesteps) if stride is None else stride
    return strided_timesteps((num_timesteps - 1) // stride * stride, stride, num_timesteps)


class MnistBackend:
    """NoiseModel around a UNet with forward(x (N,1,28,28), t (N,) = t/T, c (N,10) one-hot) -> eps,
    or forward(x, t) for a time-conditioned UNet (one without `num_classes`)."""

    sample_shape = (1, 28, 28)
    data_range = (0.0, 1.0)

    def __init__(
        self,
        unet: nn.Module,
        schedule_alphas_cumprod: torch.Tensor,
        device: torch.device | str = "cpu",
        name: str = "mnist",
        description: str = "",
        *,
        stride: int | None = None,
        precision: str = "fp32",
        variance_type: VarianceType = "fixed_small",
    ) -> None:
        alphas_cumprod = torch.as_tensor(schedule_alphas_cumprod, dtype=torch.float64).cpu()
        if float(alphas_cumprod[0]) >= 1.0:
            raise ValueError(
                "alphas_cumprod[0] must be abar after the first noising step (< 1); pass the T entries "
                "of t = 1..T, e.g. DDPMSchedule(...).alphas_cumprod[1:], not the clean entry abar_0 = 1"
            )
        self.device = torch.device(device)
        self.unet = unet.to(self.device).eval()  # BN must use its running statistics when sampling
        self.dtype = next(self.unet.parameters()).dtype
        # "auto" runs the network under bf16 autocast where that is fast (as in Part B training);
        # outputs stay float32, so the sampling arithmetic around it is unchanged.
        self.precision = resolve_precision(precision, self.device)
        self.alphas_cumprod = alphas_cumprod
        self.num_timesteps = len(alphas_cumprod)
        if variance_type not in VARIANCE_WORDS:
            raise ValueError(f"variance_type must be one of {', '.join(VARIANCE_WORDS)}, got {variance_type!r}")
        self.variance_type = variance_type
        self.num_classes = getattr(self.unet, "num_classes", 0)  # 0: a time-conditioned UNet
        self.stride = default_stride(self.num_timesteps) if stride is None else stride
        self._timesteps = loop_timesteps(self.num_timesteps, self.stride)
        self.name = name
        steps = self._timesteps
        kind = "Class-conditioned" if self.num_classes else "Time-conditioned"
        self.description = (description + " " if description else "") + (
            f"{kind} MNIST DDPM (Part B), T = {self.num_timesteps}, {VARIANCE_WORDS[variance_type]}; "
            f"loops run on {len(steps)} strided steps {steps[0]}, {steps[1]}, ..., {steps[-1]} "
            f"(stride {self.stride})."
            if len(steps) > 1
            else f"{kind} MNIST DDPM (Part B), T = {self.num_timesteps}."
        )

    def strided_timesteps(self) -> list[int]:
        return list(self._timesteps)

    def encode_digits(self, digits: Sequence[int]) -> torch.Tensor:
        """One-hot rows (N, 10) for digits 0-9; -1 gives the zero (unconditional) row. A
        time-conditioned UNet takes only -1, as empty rows (N, 0)."""
        labels = torch.as_tensor(list(digits), dtype=torch.long)
        if not self.num_classes:
            if labels.numel() and bool((labels != -1).any()):
                raise UnknownPrompt("this time-conditioned MNIST DDPM has no class input: the only prompt is ''")
            return torch.zeros(labels.numel(), 0, device=self.device, dtype=self.dtype)
        if labels.numel() and (labels.min() < -1 or labels.max() >= self.num_classes):
            raise ValueError(f"digits must lie in -1..{self.num_classes - 1}, got {labels.tolist()}")
        return one_hot(labels, self.num_classes).to(device=self.device, dtype=self.dtype)

    def encode(self, prompt: str) -> torch.Tensor:
        """The condition for a prompt ("a handwritten 7", "" for none): one row (1, 10), as
        `encode_digits`."""
        return self.encode_digits([parse_prompt(prompt)])

    @torch.no_grad()
    def predict(self, x_t: torch.Tensor, t: int, condition: torch.Tensor) -> ModelOutput:
        """eps (N, 1, 28, 28) for x_t (N, 1, 28, 28) (digits in [0, 1] plus noise) at the 0-based
        timestep t in [0, T), fed to the UNet as (t + 1) / T; condition (1, 10) or (N, 10) one-hot
        rows (zero rows: unconditional). No variance: the schedule's is fixed."""
        n = x_t.shape[0]
        t_net = torch.full((n,), (int(t) + 1) / self.num_timesteps, device=x_t.device, dtype=x_t.dtype)
        if not self.num_classes:
            with autocast(self.device, self.precision):
                eps = self.unet(x_t, t_net)
            return ModelOutput(eps=eps.to(x_t.dtype))
        c = condition.to(device=x_t.device, dtype=x_t.dtype)
        if c.shape[0] == 1 and n != 1:
            c = c.expand(n, -1)
        with autocast(self.device, self.precision):
            eps = self.unet(x_t, t_net, c)
        return ModelOutput(eps=eps.to(x_t.dtype))
