"""Part B runs: training the three UNets and the judge, and everything measured on them.

Each function returns a cached RunRecord. A run that needs a trained model names the training
run's key among its own parameters, so retraining (new recipe, new code) invalidates it too.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch

from diffusion_lab import sampling
from diffusion_lab.backends.mnist import MnistBackend
from diffusion_lab.blur import best_blur
from diffusion_lab.mnist import ddpm, judge as judge_lib, metrics, training
from diffusion_lab.mnist.data import load_mnist
from diffusion_lab.mnist.recipes import PartBRecipes, get_recipes
from diffusion_lab.report.context import BuildContext
from diffusion_lab.report.runs import RunRecord, Scratch, cached_run
from diffusion_lab.seeding import randn

GUIDANCE_SCALES = (0.0, 0.5, 1.0, 3.0, 5.0, 7.0, 10.0)
OOD_SIGMAS = (0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0)


@dataclass(frozen=True)
class Showcase:
    """How much each profile shows and measures (sample counts), beside the training recipes."""

    denoiser_digits: int  # test digits shown after each kept epoch
    metric_images: int  # test images behind the PSNR / SSIM table
    time_samples: int  # time-conditioned samples per kept epoch
    per_class_grid: int  # class-conditioned samples of each digit per kept epoch
    sweep_per_class: int  # samples of each digit per guidance scale, for the judge
    sweep_stride: int  # the sweep samples with Part A's strided sampler: every this many of T steps
    gif_frame_every: int  # reverse-process animation: one frame every this many steps
    sample_batch: int

    def to_dict(self) -> dict:
        return asdict(self)


SHOWCASES = {
    "tiny": Showcase(denoiser_digits=4, metric_images=64, time_samples=8, per_class_grid=1,
                     sweep_per_class=3, sweep_stride=2, gif_frame_every=5, sample_batch=100),
    "quick": Showcase(denoiser_digits=8, metric_images=1000, time_samples=40, per_class_grid=4,
                      sweep_per_class=20, sweep_stride=10, gif_frame_every=10, sample_batch=500),
    "full": Showcase(denoiser_digits=8, metric_images=2000, time_samples=40, per_class_grid=4,
                     sweep_per_class=100, sweep_stride=1, gif_frame_every=10, sample_batch=1000),
}


def recipes(ctx: BuildContext) -> PartBRecipes:
    return get_recipes(ctx.profile)


def showcase(ctx: BuildContext) -> Showcase:
    return SHOWCASES[ctx.profile]


def _training_metrics(result: training.TrainingResult) -> dict:
    return {
        "wall_time_s": result.wall_time_s,
        "images_per_s": result.images_per_s,
        "num_images_seen": result.num_images_seen,
        "precision": result.precision,
        "device": result.device,
        "num_parameters": result.num_parameters,
        "steps_per_epoch": result.steps_per_epoch,
        "checkpoint_labels": {str(epoch): label for epoch, label in result.checkpoint_labels.items()},
        "final_epoch_loss": result.epoch_mean_losses()[-1],
    }


def _save_training(scratch: Scratch, result: training.TrainingResult) -> dict:
    scratch.save("checkpoints.pt", {str(epoch): state for epoch, state in result.checkpoints.items()})
    scratch.save("losses.pt", torch.tensor(result.losses, dtype=torch.float32))
    return _training_metrics(result)


# --- training runs ---------------------------------------------------------------------------


def denoiser_training(ctx: BuildContext, progress: bool = True) -> RunRecord:
    recipe = recipes(ctx).denoiser

    def compute(scratch: Scratch):
        result = training.train_denoiser(recipe, load_mnist(), ctx.device, scratch.seed, progress)
        return _save_training(scratch, result)

    return cached_run(ctx, "partb/denoiser-training", {"recipe": recipe.to_dict()}, compute)


def ddpm_training(ctx: BuildContext, conditional: bool, progress: bool = True) -> RunRecord:
    book = recipes(ctx)
    recipe = book.class_ddpm if conditional else book.time_ddpm

    def compute(scratch: Scratch):
        result = training.train_ddpm(recipe, load_mnist(), ctx.device, scratch.seed, conditional, progress)
        return _save_training(scratch, result)

    name = "partb/class-ddpm-training" if conditional else "partb/time-ddpm-training"
    return cached_run(ctx, name, {"recipe": recipe.to_dict(), "conditional": conditional}, compute)


def judge_training(ctx: BuildContext, progress: bool = True) -> RunRecord:
    recipe = recipes(ctx).judge

    def compute(scratch: Scratch):
        data = load_mnist()
        result = judge_lib.train_judge(recipe, data, ctx.device, scratch.seed, progress)
        trained = judge_lib.Judge(result.model, ctx.device)
        scores = _training_metrics(result)
        scores["test_accuracy"] = trained.accuracy(data.test_images, data.test_labels)
        scratch.save("judge.pt", training.cpu_state_dict(result.model))
        scratch.save("losses.pt", torch.tensor(result.losses, dtype=torch.float32))
        return scores

    return cached_run(ctx, "partb/judge-training", {"recipe": recipe.to_dict()}, compute)


# --- loading trained models back ---------------------------------------------------------------


def checkpoint_epochs(run: RunRecord) -> list[int]:
    return sorted(int(epoch) for epoch in run.metrics["checkpoint_labels"])


def checkpoint_label(run: RunRecord, epoch: int) -> str:
    return run.metrics["checkpoint_labels"][str(epoch)]


def load_denoiser(ctx: BuildContext, run: RunRecord, epoch: int) -> torch.nn.Module:
    model = training.make_denoiser(recipes(ctx).denoiser)
    model.load_state_dict(run.load("checkpoints.pt")[str(epoch)])
    return model.to(ctx.device).eval()


def load_ddpm(ctx: BuildContext, run: RunRecord, epoch: int | None = None) -> torch.nn.Module:
    conditional = run.params["conditional"]
    book = recipes(ctx)
    model = training.make_ddpm_unet(book.class_ddpm if conditional else book.time_ddpm, conditional)
    epoch = checkpoint_epochs(run)[-1] if epoch is None else epoch
    model.load_state_dict(run.load("checkpoints.pt")[str(epoch)])
    return model.to(ctx.device).eval()


def ddpm_schedule(ctx: BuildContext, conditional: bool) -> ddpm.DDPMSchedule:
    book = recipes(ctx)
    return training.schedule_for(book.class_ddpm if conditional else book.time_ddpm)


def load_judge(ctx: BuildContext, run: RunRecord) -> judge_lib.Judge:
    return judge_lib.Judge.from_state_dict(recipes(ctx).judge, run.load("judge.pt"), ctx.device)


# --- measurements ------------------------------------------------------------------------------


def denoiser_results(ctx: BuildContext) -> RunRecord:
    """B1.2 test digits after each kept epoch, B1.3 one digit at every sigma, PSNR/SSIM vs blur."""
    trained = denoiser_training(ctx)
    show = showcase(ctx)
    sigma = recipes(ctx).denoiser.sigma
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
            table.append({
                "sigma": s,
                "noisy_psnr": metrics.psnr(noisy.clamp(0, 1), clean).mean().item() if s > 0 else None,
                "denoiser_psnr": metrics.psnr(denoised, clean).mean().item(),
                "denoiser_ssim": metrics.ssim(denoised, clean).mean().item(),
                "blur_kernel": blur.kernel_size if blur else 0,
                "blur_sigma": blur.sigma if blur else 0.0,
                "blur_psnr": metrics.psnr(blurred, clean).mean().item() if blur else None,
                "blur_ssim": metrics.ssim(blurred, clean).mean().item(),
            })
        scratch.save("results.pt", {
            "shown_clean": shown, "shown_noisy": noisy_shown, "per_epoch": per_epoch,
            "ood_noisy": ood_noisy, "ood_denoised": ood_denoised,
        })
        return {"table": table}

    return cached_run(ctx, "partb/denoiser-results", params, compute)


def ddpm_samples(ctx: BuildContext, conditional: bool, guidance_scale: float = 5.0) -> RunRecord:
    """B2.3 / B2.5: samples after each kept epoch, and frames of the reverse process for a GIF."""
    trained = ddpm_training(ctx, conditional)
    show = showcase(ctx)
    params = {"training": trained.key, "guidance_scale": guidance_scale if conditional else None,
              "showcase": show.to_dict()}

    def compute(scratch: Scratch):
        schedule = ddpm_schedule(ctx, conditional)
        labels = ddpm.class_labels(show.per_class_grid) if conditional else None
        count = labels.shape[0] if conditional else show.time_samples
        outputs, timings = {}, {}
        for epoch in checkpoint_epochs(trained):
            result = ddpm.sample(
                load_ddpm(ctx, trained, epoch), schedule, count, scratch.generator(f"epoch-{epoch}"),
                ctx.device, labels=labels, guidance_scale=guidance_scale, batch_size=show.sample_batch,
                frame_every=show.gif_frame_every, progress=True,
            )
            outputs[str(epoch)] = {"samples": result.samples, "frames": result.frames,
                                   "frame_timesteps": result.frame_timesteps}
            timings[str(epoch)] = {"wall_time_s": result.wall_time_s, "images_per_s": result.images_per_s,
                                   "network_evaluations": result.network_evaluations}
        scratch.save("samples.pt", {"epochs": outputs, "labels": labels})
        return {"sampling": timings}

    name = "partb/class-ddpm-samples" if conditional else "partb/time-ddpm-samples"
    return cached_run(ctx, name, params, compute)


def judge_reference(ctx: BuildContext) -> RunRecord:
    """The judge's test accuracy and the Frechet-distance floor: real training digits vs the test set,
    at the sample count the guidance sweep uses."""
    judged = judge_training(ctx)
    show = showcase(ctx)
    params = {"judge": judged.key, "count": show.sweep_per_class * 10}

    def compute(scratch: Scratch):
        data = load_mnist()
        trained = load_judge(ctx, judged)
        pick = torch.randperm(data.train_images.shape[0], generator=scratch.generator("train-pick"))[: params["count"]]
        test_features = trained.features(data.test_images)
        scratch.save("test_features.pt", test_features)
        return {
            "test_accuracy": judged.metrics["test_accuracy"],
            "frechet_floor": metrics.frechet_distance(trained.features(data.train_images[pick]), test_features),
            "train_accuracy_of_pick": trained.accuracy(data.train_images[pick], data.train_labels[pick]),
        }

    return cached_run(ctx, "partb/judge-reference", params, compute)


def guidance_sweep(ctx: BuildContext, scales=GUIDANCE_SCALES) -> RunRecord:
    """Judge accuracy and Frechet distance of class-conditioned samples at each guidance scale.

    Sampling is Part A's strided loop on the MNIST backend (posterior variance), every
    `sweep_stride`-th of the T steps: with stride 1 that is all of them, and on a CPU a
    stride of 10 makes the seven-scale sweep affordable."""
    trained = ddpm_training(ctx, conditional=True)
    reference = judge_reference(ctx)
    show = showcase(ctx)
    params = {"training": trained.key, "reference": reference.key, "scales": list(scales),
              "per_class": show.sweep_per_class, "stride": show.sweep_stride, "batch": show.sample_batch}

    def compute(scratch: Scratch):
        schedule = ddpm_schedule(ctx, conditional=True)
        backend = MnistBackend(load_ddpm(ctx, trained), schedule.alphas_cumprod[1:], ctx.device,
                               stride=show.sweep_stride, precision="auto")
        trained_judge = load_judge(ctx, judge_training(ctx))
        test_features = reference.load("test_features.pt")
        labels = ddpm.class_labels(show.sweep_per_class)
        uncond = backend.encode("")
        rows, examples = [], {}
        for scale in scales:
            generator = scratch.generator(f"g={scale}")
            started = time.perf_counter()
            images = torch.cat([
                sampling.sample(backend, len(batch), backend.encode_digits(batch.tolist()), generator,
                                guidance=scale, uncond=uncond, progress=True).float().cpu()
                for batch in labels.split(show.sample_batch)
            ])
            wall = time.perf_counter() - started
            rows.append({
                "guidance_scale": scale,
                "judge_accuracy": trained_judge.accuracy(images, labels),
                "per_class_accuracy": trained_judge.per_class_accuracy(images, labels),
                "frechet_distance": metrics.frechet_distance(trained_judge.features(images), test_features),
                "images_per_s": len(labels) / wall,
                "wall_time_s": wall,
            })
            examples[str(scale)] = images[:: show.sweep_per_class][:10]
        scratch.save("examples.pt", examples)
        return {"rows": rows, "steps": len(backend.strided_timesteps())}

    return cached_run(ctx, "partb/guidance-sweep", params, compute)
