"""Part B's results as typed records: what the denoiser, the judge, the DDPMs' scores, the guidance
sweep, the flow models' scores and the DDPM-vs-flow comparison measured.

A run's compute function builds its record and returns `record.to_metrics()`, the JSON the run
cache keeps: the keys the runs kept before the records (an absent optional measure is now a None),
so the GPU sessions kept in measurements/ read too; a reader gets the record back with `Record.of(run)`, from any object with a `metrics` dict
(a RunRecord, or gpu_measurements' MeasuredRun). An epoch (`Epoch`) is an int in a record, or a
float for a fraction of training (quick's flow checkpoint at 0.2 of 2 epochs), and a string as a
JSON key ("1", "0.2"); tuples are lists in JSON.
"""

from __future__ import annotations

import types
import typing
from dataclasses import MISSING, dataclass, fields, is_dataclass
from typing import Any, Protocol, TypeVar

import torch

R = TypeVar("R", bound="Record")

# A checkpoint's epoch: whole (int), or a fraction of training in epochs (float); read back from
# JSON as an int whenever it is whole, so "1" and 1.0 name the same checkpoint as 1.
Epoch = int | float


class HasMetrics(Protocol):
    metrics: dict


class Record:
    """A frozen dataclass that round-trips through the run cache's JSON metrics."""

    def to_metrics(self) -> dict:
        """The record as JSON-safe data: dicts with string keys, lists, numbers, strings, None."""
        return _plain(self)

    @classmethod
    def from_metrics(cls: type[R], metrics: dict) -> R:
        """The record a `to_metrics` dict describes; fields with a default may be absent (older
        runs lack them), others raise KeyError naming the field. Keys the record lacks are ignored."""
        return _build(cls, metrics)

    @classmethod
    def of(cls: type[R], run: HasMetrics) -> R:
        """The record of a finished run (anything with `metrics`)."""
        return cls.from_metrics(run.metrics)


def _plain(value: Any) -> Any:
    if is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(_epoch(key)) if isinstance(key, float) else str(key): _plain(item) for key, item in value.items()}
    return value


def _epoch(value: Any) -> int | float:
    """An epoch from a JSON number or key: an int when whole ("2", 2.0 -> 2), else a float."""
    number = float(value)
    return int(number) if number.is_integer() else number


def _build(kind: Any, value: Any) -> Any:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind == Epoch:
        return _epoch(value)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        (inner,) = [arg for arg in args if arg is not type(None)]
        return _build(inner, value)
    if origin is tuple:
        return tuple(_build(args[0], item) for item in value)
    if origin is dict:
        return {_build(args[0], key): _build(args[1], item) for key, item in value.items()}
    if isinstance(kind, type) and is_dataclass(kind):
        hints = typing.get_type_hints(kind)
        built = {}
        for f in fields(kind):
            if f.name in value:
                built[f.name] = _build(hints[f.name], value[f.name])
            elif f.default is MISSING:
                raise KeyError(f"{kind.__name__} needs {f.name!r}; the metrics have {sorted(value)}")
        return kind(**built)
    if kind is float:
        return float(value)
    if kind is int:
        return int(value)
    return value


# --- B1: the single-step denoiser -------------------------------------------------------------------


@dataclass(frozen=True)
class DenoiserRow(Record):
    """One noise level of the denoiser table: PSNR (dB) / SSIM of the noisy digits, the denoiser's
    output and the best Gaussian blur's (kernel 0 and no PSNR at sigma 0, where nothing is blurred)."""

    sigma: float
    noisy_psnr: float | None
    denoiser_psnr: float
    denoiser_ssim: float
    blur_kernel: int
    blur_sigma: float
    blur_psnr: float | None
    blur_ssim: float | None


@dataclass(frozen=True)
class DenoiserResults(Record):
    table: tuple[DenoiserRow, ...]


@dataclass(frozen=True)
class PureNoiseDistance(Record):
    """Root-mean-square pixel distances of the pure-noise UNet's outputs (pixels in [0, 1])."""

    to_mean_digit: float
    between_outputs: float


@dataclass(frozen=True)
class PureNoiseResults(Record):
    distances: dict[Epoch, PureNoiseDistance]  # epoch -> distances


# --- the judge's yardstick ----------------------------------------------------------------------------


@dataclass(frozen=True)
class JudgeReference(Record):
    """What the judge reads in real digits: its test accuracy; for `judge_samples` real training
    digits, the Fréchet distance to the test set (the floor), its accuracy on them, the share it
    reads with probability >= `confidence`, and the share of each digit (10 values)."""

    test_accuracy: float
    frechet_floor: float
    train_accuracy_of_pick: float
    confident_fraction: float
    class_shares: tuple[float, ...]
    confidence: float = 0.9


# --- B2 / B3: the DDPMs judged --------------------------------------------------------------------------


@dataclass(frozen=True)
class TimeScoreRow(Record):
    """The judge's reading of one (checkpoint, weights, sampler) of the time-conditioned DDPM."""

    epoch: Epoch
    weights: str  # "raw" or "ema"
    confident_fraction: float
    class_shares: tuple[float, ...]
    frechet_distance: float
    steps: int
    evaluations: int  # network evaluations per sample
    wall_time_s: float
    confidence: float = 0.9
    corrector_snr: float | None = None
    start: str = "noise"  # "noise" or "matched"; runs from before the matched start lack it


@dataclass(frozen=True)
class TimeScores(Record):
    rows: tuple[TimeScoreRow, ...]


@dataclass(frozen=True)
class SweepRow(Record):
    """The judge's reading of the class-conditioned DDPM's samples at one guidance scale."""

    guidance_scale: float
    judge_accuracy: float
    per_class_accuracy: tuple[float, ...]
    confident_fraction: float
    frechet_distance: float
    images_per_s: float
    wall_time_s: float


@dataclass(frozen=True)
class GuidanceSweep(Record):
    rows: tuple[SweepRow, ...]
    steps: int  # the strided sampler's steps


# --- B4: flow matching judged ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FlowScoreRow(Record):
    """The judge's reading of a flow model's last checkpoint; the class model's also its accuracy
    (overall and per digit), None for the time model."""

    epoch: Epoch
    confident_fraction: float
    class_shares: tuple[float, ...]
    frechet_distance: float
    wall_time_s: float
    samples: int
    confidence: float = 0.9
    judge_accuracy: float | None = None
    per_class_accuracy: tuple[float, ...] | None = None


@dataclass(frozen=True)
class FlowScores(Record):
    row: FlowScoreRow


# --- B5: DDPM against flow matching --------------------------------------------------------------------


@dataclass(frozen=True)
class ComparisonRow(Record):
    """One (sampler, evaluations, seed) of the comparison; judge accuracy for the class pair only."""

    sampler: str  # "ddpm", "euler" or "heun"
    evaluations: int
    steps: int
    seed: int
    confident_fraction: float
    smallest_share: float
    frechet_distance: float
    seconds_per_1000: float
    judge_accuracy: float | None = None


@dataclass(frozen=True)
class ImagesSeen(Record):
    ddpm: int
    flow: int


@dataclass(frozen=True)
class Comparison(Record):
    rows: tuple[ComparisonRow, ...]
    frechet_floor: float  # as many real training digits' distance as each point has samples
    num_timesteps: int  # the DDPM's T
    images_seen: ImagesSeen


# --- samples after each kept epoch ----------------------------------------------------------------------


@dataclass(frozen=True)
class SamplingTime(Record):
    wall_time_s: float
    images_per_s: float
    network_evaluations: int


@dataclass(frozen=True)
class SampleRun(Record):
    """What sampling each kept checkpoint cost (the DDPMs' and the flow models' sample runs)."""

    sampling: dict[Epoch, SamplingTime]


SAMPLES_FILE = "samples.pt"


@dataclass(frozen=True)
class SampledEpoch:
    """One kept checkpoint's samples in a sample run's samples.pt: samples (N, 1, 28, 28), frames
    (F, N, 1, 28, 28) or None, and `frame_steps`, the frames' positions along the sampler: the DDPM's
    timesteps from T down to 0, the flow ODE's step indices from 0 up to its steps."""

    samples: torch.Tensor
    frames: torch.Tensor | None
    frame_steps: list[int]

    def to_saved(self) -> dict:
        return {"samples": self.samples, "frames": self.frames, "frame_steps": self.frame_steps}


def save_samples(scratch, epochs: dict[Epoch, SampledEpoch], labels: torch.Tensor | None) -> None:
    """Write a sample run's samples.pt (`scratch`: the run's Scratch)."""
    scratch.save(SAMPLES_FILE, {"epochs": {str(_epoch(epoch)): kept.to_saved() for epoch, kept in epochs.items()},
                                "labels": labels})


def sampled_epochs(run) -> dict[Epoch, SampledEpoch]:
    """A sample run's samples.pt, epoch -> its samples (`run`: a RunRecord of a sample run)."""
    stored = run.load(SAMPLES_FILE)
    return {_epoch(epoch): SampledEpoch(kept["samples"], kept["frames"], list(kept["frame_steps"]))
            for epoch, kept in stored["epochs"].items()}


# --- training runs, as the pages read them ----------------------------------------------------------------


@dataclass(frozen=True)
class TrainingSummary(Record):
    """What a Part B training run reports (`mnist.training.TrainingResult.summary`), read back."""

    wall_time_s: float
    images_per_s: float
    num_images_seen: int
    precision: str
    num_parameters: int
    steps_per_epoch: int
    checkpoint_labels: dict[Epoch, str]  # epoch -> "epoch 2 of 2 (stands in for epoch 5 of 5)"
    final_epoch_loss: float
