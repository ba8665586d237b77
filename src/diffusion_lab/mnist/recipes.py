"""What a Part B training recipe holds: the fields the training loops read.

The recipes themselves, one per profile, are rows of the profile table (`diffusion_lab.profiles`).
Checkpoint labels say which write-up figure a checkpoint stands in for, because in `quick`
"epoch 1 of 4" plays the role of the write-up's "epoch 5 of 20".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from diffusion_lab.mnist.flow_matching import TIME_DISTRIBUTIONS

@dataclass(frozen=True)
class DenoiserRecipe:
    """B1.2: a one-step denoiser trained on z = x + sigma * eps with an L2 loss."""

    num_hiddens: int
    batch_size: int
    epochs: int
    learning_rate: float
    sigma: float
    checkpoint_epochs: tuple[int, ...]
    checkpoint_labels: tuple[str, ...]
    train_subset: int | None = None  # first images of a seeded permutation; None = all 60,000
    precision: str = "auto"  # "auto" | "bf16" | "fp32"

    def to_dict(self) -> dict:
        return _as_plain_dict(self)


ARCHITECTURES = ("course", "film", "film_attention")


@dataclass(frozen=True)
class UNetRecipe:
    """What every time- or class-conditioned UNet of Part B is trained with, DDPM or flow matching."""

    num_hiddens: int
    batch_size: int
    epochs: int
    learning_rate: float
    # Whole epochs, or fractions of training in epochs: quick's (0.2, 1, 2) of 2 epochs keeps the
    # weights after 1/10, 5/10 and 10/10 of its steps (training.checkpoint_steps).
    checkpoint_epochs: tuple[int | float, ...]
    checkpoint_labels: tuple[str, ...]
    lr_total_decay: float = 0.1  # ExponentialLR stepped per epoch: gamma = 0.1 ** (1 / epochs)
    p_uncond: float = 0.1  # class dropout, class-conditioned model only
    train_subset: int | None = None
    precision: str = "auto"
    # Additions to the course recipe (its values: "exponential", no EMA, raw weights, no warm start).
    # or "one_cycle": per-step warm-up then cosine decay; or "constant" (training.fit)
    lr_schedule: str = "exponential"
    warmup_fraction: float = 0.3  # one_cycle only: share of the steps spent warming up
    ema_decay: float | None = None  # keep an EMA of the weights (mnist/ema.py) beside the raw ones
    sample_weights: str = "raw"  # which weights the figures sample: "raw" or "ema"
    warm_start: bool = False  # class model only: start from the trained time-conditioned model's weights
    # The time-conditioned UNet: "course" (mnist/unet.py), or the course's graduate question, "a better
    # time-conditioned only UNet": "film" / "film_attention" (mnist/unet_film.py). benchmarks/partb_quality.py
    # compares them (measurements/2026-12-08-quick-time-unet-variants); every profile trains "course".
    architecture: str = "course"

    def __post_init__(self):
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURES)}, got {self.architecture!r}")
        if self.sample_weights not in ("raw", "ema"):
            raise ValueError(f"sample_weights must be 'raw' or 'ema', got {self.sample_weights!r}")
        if self.sample_weights == "ema" and self.ema_decay is None:
            raise ValueError("sample_weights='ema' needs an ema_decay")
        if len(self.checkpoint_labels) != len(self.checkpoint_epochs):
            raise ValueError(f"{len(self.checkpoint_epochs)} checkpoint epochs but "
                             f"{len(self.checkpoint_labels)} labels")

    @property
    def lr_gamma(self) -> float:
        return self.lr_total_decay ** (1.0 / self.epochs)

    def to_dict(self) -> dict:
        return {**_as_plain_dict(self), "lr_gamma": self.lr_gamma}


@dataclass(frozen=True)
class DDPMRecipe(UNetRecipe):
    """B2.2 / B2.4: a noise-predicting UNet on a linear-beta DDPM schedule."""

    num_timesteps: int = 300
    beta1: float = 1e-4
    beta2: float = 0.02
    min_snr_gamma: float | None = None  # Min-SNR loss weighting (ddpm.loss_weights); None = uniform
    min_snr_floor: float = 0.0  # ... never below this weight


@dataclass(frozen=True)
class FlowMatchingRecipe(UNetRecipe):
    """The course's flow-matching Part B: the same UNets regressing the velocity x_1 - x_0
    (`mnist.flow_matching`); sampled by `flow_sampling`."""

    time_distribution: str = "uniform"  # the training times (flow_matching.sample_times); the course's: uniform

    def __post_init__(self):
        super().__post_init__()
        if self.time_distribution not in TIME_DISTRIBUTIONS:
            raise ValueError(f"time_distribution must be one of {', '.join(TIME_DISTRIBUTIONS)}, "
                             f"got {self.time_distribution!r}")


def with_constant_rate(recipe: FlowMatchingRecipe, learning_rate: float) -> FlowMatchingRecipe:
    """`recipe` with its learning-rate schedule replaced by `learning_rate` throughout and nothing
    else changed: the same width, batch, epochs, images, precision and checkpoints (the fields of
    the schedule it drops stay, unread)."""
    return replace(recipe, lr_schedule="constant", learning_rate=learning_rate)


@dataclass(frozen=True)
class JudgeRecipe:
    """The project's MNIST classifier that scores generated digits."""

    channels: int
    feature_dim: int
    batch_size: int
    epochs: int
    learning_rate: float
    train_subset: int | None = None
    precision: str = "auto"

    def to_dict(self) -> dict:
        return _as_plain_dict(self)


@dataclass(frozen=True)
class PartBRecipes:
    """One profile's Part B models: the denoiser, the course's "denoising pure noise" UNet (the
    denoiser's UNet fed noise alone; its sigma unused), the two DDPMs, the two flow-matching UNets,
    the time-conditioned one again at a constant learning rate (the course's "can we get rid of the
    annoying learning rate scheduler?"; `with_constant_rate` of `time_flow`) and the judge."""

    profile: str
    denoiser: DenoiserRecipe
    pure_noise: DenoiserRecipe
    time_ddpm: DDPMRecipe
    class_ddpm: DDPMRecipe
    time_flow: FlowMatchingRecipe
    class_flow: FlowMatchingRecipe
    time_flow_constant_lr: FlowMatchingRecipe
    judge: JudgeRecipe
    notes: str = ""

    def to_dict(self) -> dict:
        return {
            "profile": self.profile,
            "denoiser": self.denoiser.to_dict(),
            "pure_noise": self.pure_noise.to_dict(),
            "time_ddpm": self.time_ddpm.to_dict(),
            "class_ddpm": self.class_ddpm.to_dict(),
            "time_flow": self.time_flow.to_dict(),
            "class_flow": self.class_flow.to_dict(),
            "time_flow_constant_lr": self.time_flow_constant_lr.to_dict(),
            "judge": self.judge.to_dict(),
            "notes": self.notes,
        }


def _as_plain_dict(recipe) -> dict:
    return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(recipe).items()}
