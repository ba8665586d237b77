"""Part B measurements on the trained models: denoiser results, samples, the judge's verdicts.

Training runs are in partb_training.py and loading them back in partb_models.py. A run that
needs a trained model names the training run's key among its own parameters, so retraining (new
recipe, new code) invalidates it too.
"""

from __future__ import annotations

import torch

from diffusion_lab import metrics
from diffusion_lab.blur import best_blur
from diffusion_lab.experiments.judge_training import judge_training
from diffusion_lab.experiments.partb_records import (
    DenoiserResults,
    DenoiserRow,
    GuidanceSweep,
    JudgeReference,
    SampledEpoch,
    SampleRun,
    SamplingTime,
    SweepRow,
    TimeScoreRow,
    TimeScores,
    save_samples,
)
from diffusion_lab.experiments.partb_models import (
    checkpoint_epochs,
    ddpm_schedule,
    load_ddpm,
    load_denoiser,
    load_judge,
    weight_kinds,
)
from diffusion_lab.experiments.partb_sampling import (
    ScoreSampler, images_per_batch, partb_noise_model, sample_digits, sampling_start, score_samplers,
)
from diffusion_lab.experiments.partb_training import ddpm_training, denoiser_training
from diffusion_lab.mnist import training
from diffusion_lab.mnist.data import load_mnist
from diffusion_lab.mnist.ddpm import class_labels
from diffusion_lab.profiles import COURSE_GUIDANCE, Showcase
from diffusion_lab.runcache.context import BuildContext
from diffusion_lab.runcache.runs import RunRecord, Scratch, cached_run
from diffusion_lab.seeding import randn

OOD_SIGMAS = (0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0)


def showcase(ctx: BuildContext) -> Showcase:
    """How much this build's profile shows and measures."""
    return ctx.recipes.showcase


# --- measurements ------------------------------------------------------------------------------


def denoiser_results(ctx: BuildContext) -> RunRecord:
    """B1.2 test digits after each kept epoch, B1.3 one digit at every sigma, PSNR/SSIM vs blur."""
    trained = denoiser_training(ctx)
    show = showcase(ctx)
    sigma = trained.params["recipe"]["sigma"]
    params = {"training": trained.key, "sigma": sigma, "ood_sigmas": list(OOD_SIGMAS), "showcase": show.to_dict()}

    def compute(scratch: Scratch):
        test = load_mnist().test_images
        shown = test[: show.denoiser_digits]
        noisy_shown = shown + sigma * randn(shown.shape, scratch.generator("shown"))
        per_epoch = {
            str(epoch): training.denoise(load_denoiser(ctx, trained, epoch), noisy_shown, ctx.device)
            for epoch in checkpoint_epochs(trained)
        }
        final = load_denoiser(ctx, trained, checkpoint_epochs(trained)[-1])
        ood_clean = test[show.denoiser_digits : show.denoiser_digits + 1]
        ood_eps = randn(ood_clean.shape, scratch.generator("ood"))
        ood_noisy = torch.cat([ood_clean + s * ood_eps for s in OOD_SIGMAS])
        ood_denoised = training.denoise(final, ood_noisy, ctx.device)

        clean = test[: show.metric_images]
        eps = randn(clean.shape, scratch.generator("metrics"))
        table = []
        for s in OOD_SIGMAS:
            noisy = clean + s * eps
            denoised = training.denoise(final, noisy, ctx.device).clamp(0, 1)
            blur = best_blur(noisy, clean, (0.0, 1.0)) if s > 0 else None
            blurred = blur.image if blur else clean
            table.append(DenoiserRow(
                sigma=s,
                noisy_psnr=metrics.psnr(noisy.clamp(0, 1), clean).mean().item() if s > 0 else None,
                denoiser_psnr=metrics.psnr(denoised, clean).mean().item(),
                denoiser_ssim=metrics.ssim(denoised, clean).mean().item(),
                blur_kernel=blur.kernel_size if blur else 0,
                blur_sigma=blur.sigma if blur else 0.0,
                blur_psnr=metrics.psnr(blurred, clean).mean().item() if blur else None,
                blur_ssim=metrics.ssim(blurred, clean).mean().item(),
            ))
        scratch.save("results.pt", {
            "shown_clean": shown, "shown_noisy": noisy_shown, "per_epoch": per_epoch,
            "ood_noisy": ood_noisy, "ood_denoised": ood_denoised,
        })
        return DenoiserResults(tuple(table)).to_metrics()

    return cached_run(ctx, "partb/denoiser-results", params, compute)


def ddpm_samples(ctx: BuildContext, conditional: bool, guidance_scale: float = COURSE_GUIDANCE) -> RunRecord:
    """B2.3 / B2.5: samples after each kept epoch, and frames of the reverse process for a GIF."""
    trained = ddpm_training(ctx, conditional)
    show = showcase(ctx)
    params = {"training": trained.key, "guidance_scale": guidance_scale if conditional else None,
              "showcase": show.to_dict()}

    def compute(scratch: Scratch):
        schedule = ddpm_schedule(trained)
        labels = class_labels(show.per_class_grid) if conditional else None
        outputs, timings = {}, {}
        for epoch in checkpoint_epochs(trained):
            result = sample_digits(
                partb_noise_model(load_ddpm(ctx, trained, epoch), schedule, ctx.device),
                scratch.generator(f"epoch-{epoch}"), labels=labels,
                num_samples=None if conditional else show.time_samples, guidance_scale=guidance_scale,
                batch_size=images_per_batch(show.sample_batch, conditional), frame_every=show.gif_frame_every, progress=True,
            )
            outputs[epoch] = SampledEpoch(result.samples, result.frames, result.frame_steps)
            timings[epoch] = SamplingTime(result.wall_time_s, result.images_per_s, result.network_evaluations)
        save_samples(scratch, outputs, labels)
        return SampleRun(timings).to_metrics()

    name = "partb/class-ddpm-samples" if conditional else "partb/time-ddpm-samples"
    return cached_run(ctx, name, params, compute)


def judge_reference(ctx: BuildContext) -> RunRecord:
    """What the judge reads in real digits, the yardstick of every score of samples: its test
    accuracy, and for as many real training digits as it scores samples, the Frechet distance to
    the test set (the floor a generator is compared with) and their verdicts (`Judge.verdicts`)."""
    judged = judge_training(ctx)
    show = showcase(ctx)
    params = {"judge": judged.key, "count": show.judge_samples}

    def compute(scratch: Scratch):
        data = load_mnist()
        trained = load_judge(ctx, judged)
        pick = torch.randperm(data.train_images.shape[0], generator=scratch.generator("train-pick"))[: params["count"]]
        real = data.train_images[pick]
        test_features = trained.features(data.test_images)
        scratch.save("test_features.pt", test_features)
        verdicts = trained.verdicts(real)
        return JudgeReference(
            test_accuracy=judged.metrics["test_accuracy"],
            frechet_floor=metrics.frechet_distance(trained.features(real), test_features),
            train_accuracy_of_pick=trained.accuracy(real, data.train_labels[pick]),
            confident_fraction=verdicts["confident_fraction"],
            class_shares=tuple(verdicts["class_shares"]),
            confidence=verdicts["confidence"],
        ).to_metrics()

    return cached_run(ctx, "partb/judge-reference", params, compute)


SCORED_SAMPLES_SHOWN = 10  # the first samples of each scores row kept for the page, (rows, 10, 1, 28, 28)


def time_ddpm_scores(ctx: BuildContext) -> RunRecord:
    """B2.3 judged: `judge_samples` unconditional samples of every kept checkpoint, with its raw
    weights and, where the recipe keeps one, their EMA (the same noise for both), read by the judge:
    confident fraction, share of each digit, Frechet distance to the test set; the first
    SCORED_SAMPLES_SHOWN samples of each row are kept in shown_samples.pt. Every checkpoint is
    sampled with the profile's `score_steps`; the last one also with the Langevin-corrected sampler
    and from the matched start (`score_samplers`) where the profile sets `score_corrector_snr` and
    `score_matched_start`."""
    trained = ddpm_training(ctx, conditional=False)
    reference = judge_reference(ctx)
    show = showcase(ctx)
    params = {"training": trained.key, "reference": reference.key, "samples": show.judge_samples,
              "steps": show.score_steps, "corrector_snr": show.score_corrector_snr,
              "matched_start": show.score_matched_start, "batch": show.sample_batch}

    def compute(scratch: Scratch):
        judge = load_judge(ctx, judge_training(ctx))
        test_features = reference.load("test_features.pt")
        schedule = ddpm_schedule(trained)
        samplers = score_samplers(show.score_steps, show.score_corrector_snr, show.score_matched_start,
                                  schedule.num_timesteps)
        starts = {kind: sampling_start(kind) for kind in {how.start for how in samplers}}
        epochs = checkpoint_epochs(trained)
        rows, shown = [], []
        for epoch in epochs:
            for weights in weight_kinds(trained):
                unet = load_ddpm(ctx, trained, epoch, weights)
                # the added samplers only where the bar is judged, the last checkpoint (each costs as much again)
                for how in samplers if epoch == epochs[-1] else samplers[:1]:
                    # as `sample-digits --model time --steps S [--corrector-snr R] [--start matched]` runs it
                    sampler = partb_noise_model(unet, schedule, ctx.device, num_steps=how.steps)
                    result = sample_digits(sampler, scratch.generator(f"epoch-{epoch}"),
                                           num_samples=show.judge_samples, batch_size=show.sample_batch,
                                           corrector=how.corrector, start=starts[how.start], progress=True)
                    verdicts = judge.verdicts(result.samples)
                    rows.append(TimeScoreRow(
                        epoch=epoch,
                        weights=weights,
                        confident_fraction=verdicts["confident_fraction"],
                        class_shares=tuple(verdicts["class_shares"]),
                        confidence=verdicts["confidence"],
                        frechet_distance=metrics.frechet_distance(judge.features(result.samples), test_features),
                        steps=len(sampler.strided_timesteps()),
                        corrector_snr=None if how.corrector is None else how.corrector.snr,
                        start=how.start,
                        evaluations=result.network_evaluations // show.judge_samples,
                        wall_time_s=result.wall_time_s,
                    ))
                    shown.append(result.samples[:SCORED_SAMPLES_SHOWN])
        scratch.save("shown_samples.pt", torch.stack(shown))
        return TimeScores(tuple(rows)).to_metrics()

    return cached_run(ctx, "partb/time-ddpm-scores", params, compute)


def scores_samplers(scores: RunRecord, num_timesteps: int) -> list[ScoreSampler]:
    """The samplers a `time_ddpm_scores` run drew with at the last checkpoint, from its parameters
    (`num_timesteps`: the DDPM's T); the first is the one every checkpoint was scored with."""
    return score_samplers(scores.params["steps"], scores.params.get("corrector_snr"),
                          scores.params.get("matched_start", False), num_timesteps)


def guidance_sweep(ctx: BuildContext) -> RunRecord:
    """Judge accuracy, confident fraction and Frechet distance of class-conditioned samples at each
    of the profile's guidance scales, `judge_samples` per scale (a tenth of each digit).

    Sampling is Part A's strided loop on the MNIST backend (posterior variance), every
    `sweep_stride`-th of the T steps: with stride 1 that is all of them, and on a CPU a
    stride of 10 makes the sweep affordable."""
    trained = ddpm_training(ctx, conditional=True)
    reference = judge_reference(ctx)
    show = showcase(ctx)
    per_class = show.judge_samples // 10
    params = {"training": trained.key, "reference": reference.key, "scales": list(show.sweep_scales),
              "per_class": per_class, "stride": show.sweep_stride, "batch": show.sample_batch}

    def compute(scratch: Scratch):
        schedule = ddpm_schedule(trained)
        backend = partb_noise_model(load_ddpm(ctx, trained), schedule, ctx.device,
                                    num_steps=schedule.num_timesteps // show.sweep_stride)
        trained_judge = load_judge(ctx, judge_training(ctx))
        test_features = reference.load("test_features.pt")
        labels = class_labels(per_class)
        rows, examples = [], {}
        for scale in show.sweep_scales:
            result = sample_digits(backend, scratch.generator(f"g={scale}"), labels=labels, guidance_scale=scale,
                                   batch_size=images_per_batch(show.sample_batch, guided=True),
                                   scalar_dtype=torch.float32, progress=True)
            images = result.samples
            rows.append(SweepRow(
                guidance_scale=scale,
                judge_accuracy=trained_judge.accuracy(images, labels),
                per_class_accuracy=tuple(trained_judge.per_class_accuracy(images, labels)),
                confident_fraction=trained_judge.verdicts(images)["confident_fraction"],
                frechet_distance=metrics.frechet_distance(trained_judge.features(images), test_features),
                images_per_s=result.images_per_s,
                wall_time_s=result.wall_time_s,
            ))
            examples[str(scale)] = images[::per_class][:10]
        scratch.save("examples.pt", examples)
        return GuidanceSweep(tuple(rows), len(backend.strided_timesteps())).to_metrics()

    return cached_run(ctx, "partb/guidance-sweep", params, compute)
