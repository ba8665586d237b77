"""The course's flow-matching Part B measured: the pure-noise denoiser's outputs, samples after
each kept epoch, and the judge's scores of the final models; the time model at a constant learning
rate sampled and scored from the scheduled one's noise.

Training runs are in partb_training.py (`pure_noise_training`, `flow_training`); a run here names
the training run's key among its parameters, so retraining invalidates it too.
"""

from __future__ import annotations

import torch

from diffusion_lab import metrics
from diffusion_lab.experiments.judge_training import judge_training
from diffusion_lab.experiments.partb import judge_reference, showcase
from diffusion_lab.experiments.partb_flow_sampling import FlowModel, sample_flow_digits
from diffusion_lab.experiments.partb_models import checkpoint_epochs, load_denoiser, load_flow, load_judge
from diffusion_lab.experiments.partb_records import (
    FlowScoreRow,
    FlowScores,
    PureNoiseDistance,
    PureNoiseResults,
    SampledEpoch,
    SampleRun,
    SamplingTime,
    save_samples,
)
from diffusion_lab.experiments.partb_sampling import images_per_batch
from diffusion_lab.experiments.partb_training import constant_lr_flow_training, flow_training, pure_noise_training
from diffusion_lab.mnist import training
from diffusion_lab.mnist.data import load_mnist
from diffusion_lab.mnist.ddpm import class_labels
from diffusion_lab.profiles import COURSE_GUIDANCE, FlowShowcase
from diffusion_lab.runcache.context import BuildContext
from diffusion_lab.runcache.runs import RunRecord, Scratch, cached_run
from diffusion_lab.seeding import make_generator, randn


def flow_showcase(ctx: BuildContext) -> FlowShowcase:
    """How this build's profile samples the flow models and what the comparison measures."""
    return ctx.recipes.flow


def pure_noise_results(ctx: BuildContext) -> RunRecord:
    """The pure-noise denoiser's outputs for the same pure-noise inputs after each kept epoch, the
    mean training digit they are compared with, and each output's distance to that mean."""
    trained = pure_noise_training(ctx)
    show = showcase(ctx)
    params = {"training": trained.key, "count": show.denoiser_digits}

    def compute(scratch: Scratch):
        mean_digit = load_mnist().train_images.mean(dim=0, keepdim=True)
        z = randn((show.denoiser_digits, 1, 28, 28), scratch.generator("inputs"))
        outputs, distances = {}, {}
        for epoch in checkpoint_epochs(trained):
            out = training.denoise(load_denoiser(ctx, trained, epoch), z, ctx.device)
            outputs[str(epoch)] = out
            # root-mean-square pixel distance of each output to the mean digit, and to each other
            distances[epoch] = PureNoiseDistance(
                to_mean_digit=(out - mean_digit).pow(2).mean(dim=(1, 2, 3)).sqrt().mean().item(),
                between_outputs=(out - out.mean(dim=0, keepdim=True)).pow(2).mean(dim=(1, 2, 3)).sqrt().mean().item(),
            )
        scratch.save("results.pt", {"inputs": z, "outputs": outputs, "mean_digit": mean_digit})
        return PureNoiseResults(distances).to_metrics()

    return cached_run(ctx, "partb/pure-noise-results", params, compute)


def flow_samples(ctx: BuildContext, conditional: bool, guidance_scale: float = COURSE_GUIDANCE) -> RunRecord:
    """Samples after each kept epoch (time model: `time_samples` unconditional ones; class model:
    `per_class_grid` of each digit at `guidance_scale`), by the profile's sampler, and the frames of
    the last checkpoint's ODE path for an animation."""
    name = "partb/class-flow-samples" if conditional else "partb/time-flow-samples"
    return _samples(ctx, flow_training(ctx, conditional), name, conditional, guidance_scale, noise_of=name, frames=True)


def constant_lr_samples(ctx: BuildContext) -> RunRecord:
    """The constant-learning-rate time model's samples after each kept epoch, from the very noise of
    the scheduled model's (`flow_samples`), so that the two can be shown side by side."""
    return _samples(ctx, constant_lr_flow_training(ctx), "partb/time-flow-constant-lr-samples", False, COURSE_GUIDANCE,
                    noise_of="partb/time-flow-samples", frames=False)


def _noise(scratch: Scratch, noise_of: str, purpose: str) -> torch.Generator:
    """The generator the run named `noise_of` draws its `purpose` from (this run's own when it is
    that run): two runs drawing from it start their samples from the same noise."""
    return make_generator(scratch.seed, f"{noise_of}/{purpose}")


def _samples(ctx: BuildContext, trained: RunRecord, name: str, conditional: bool, guidance_scale: float,
             noise_of: str, frames: bool) -> RunRecord:
    show, flow = showcase(ctx), flow_showcase(ctx)
    params = {"training": trained.key, "guidance_scale": guidance_scale if conditional else None,
              "sampler": flow.sampler, "steps": flow.steps, "count": show.per_class_grid if conditional else show.time_samples,
              "batch": show.sample_batch}
    if noise_of != name:
        params["noise_of"] = noise_of

    def compute(scratch: Scratch):
        labels = class_labels(show.per_class_grid) if conditional else None
        outputs, timings = {}, {}
        epochs = checkpoint_epochs(trained)
        for epoch in epochs:
            result = sample_flow_digits(
                FlowModel(load_flow(ctx, trained, epoch), ctx.device), _noise(scratch, noise_of, f"epoch-{epoch}"),
                num_steps=flow.steps, sampler=flow.sampler, labels=labels,
                num_samples=None if conditional else show.time_samples, guidance_scale=guidance_scale,
                batch_size=images_per_batch(show.sample_batch, conditional),
                frame_every=max(1, flow.steps // 10) if frames and epoch == epochs[-1] else None,
            )
            outputs[epoch] = SampledEpoch(result.samples, result.frames, result.frame_steps)
            timings[epoch] = SamplingTime(result.wall_time_s, result.images_per_s, result.network_evaluations)
        save_samples(scratch, outputs, labels)
        return SampleRun(timings).to_metrics()

    return cached_run(ctx, name, params, compute)


def flow_scores(ctx: BuildContext, conditional: bool, guidance_scale: float = COURSE_GUIDANCE) -> RunRecord:
    """The judge reads `judge_samples` samples of the last checkpoint by the profile's sampler
    (class model: a tenth of each digit at `guidance_scale`): confident fraction, digit shares,
    Frechet distance to the test set in the judge's features, and for the class model accuracy."""
    name = "partb/class-flow-scores" if conditional else "partb/time-flow-scores"
    return _scores(ctx, flow_training(ctx, conditional), name, conditional, guidance_scale, noise_of=name)


def constant_lr_scores(ctx: BuildContext) -> RunRecord:
    """The judge's reading of the constant-learning-rate time model, as `flow_scores` reads the
    scheduled one: as many samples, the same sampler, from the very same noise."""
    return _scores(ctx, constant_lr_flow_training(ctx), "partb/time-flow-constant-lr-scores", False, COURSE_GUIDANCE,
                   noise_of="partb/time-flow-scores")


def _scores(ctx: BuildContext, trained: RunRecord, name: str, conditional: bool, guidance_scale: float,
            noise_of: str) -> RunRecord:
    reference = judge_reference(ctx)
    show, flow = showcase(ctx), flow_showcase(ctx)
    params = {"training": trained.key, "reference": reference.key, "samples": show.judge_samples,
              "sampler": flow.sampler, "steps": flow.steps, "batch": show.sample_batch,
              "guidance_scale": guidance_scale if conditional else None}
    if noise_of != name:
        params["noise_of"] = noise_of

    def compute(scratch: Scratch):
        judge = load_judge(ctx, judge_training(ctx))
        test_features = reference.load("test_features.pt")
        labels = class_labels(show.judge_samples // 10) if conditional else None
        result = sample_flow_digits(
            FlowModel(load_flow(ctx, trained), ctx.device), _noise(scratch, noise_of, "scores"),
            num_steps=flow.steps, sampler=flow.sampler, labels=labels,
            num_samples=None if conditional else show.judge_samples, guidance_scale=guidance_scale,
            batch_size=images_per_batch(show.sample_batch, conditional),
        )
        verdicts = judge.verdicts(result.samples)
        return FlowScores(FlowScoreRow(
            epoch=checkpoint_epochs(trained)[-1],
            confident_fraction=verdicts["confident_fraction"],
            class_shares=tuple(verdicts["class_shares"]),
            confidence=verdicts["confidence"],
            frechet_distance=metrics.frechet_distance(judge.features(result.samples), test_features),
            wall_time_s=result.wall_time_s,
            samples=result.samples.shape[0],
            judge_accuracy=judge.accuracy(result.samples, labels) if conditional else None,
            per_class_accuracy=tuple(judge.per_class_accuracy(result.samples, labels)) if conditional else None,
        )).to_metrics()

    return cached_run(ctx, name, params, compute)
