"""DDPM against flow matching at equal training compute: what the judge reads in their samples
as a function of the network evaluations spent per sample.

Both models of a pair share width, batch, learning-rate schedule, precision and images seen (the
profile's rows); the class-conditioned pair samples at the course's guidance. The DDPM samples
with Part A's strided loop (posterior variance) on n of its T timesteps, flow matching with n
Euler steps or n / 2 Heun steps: n network evaluations per sample each (a guided step evaluates
the conditional and unconditional halves in one batched call, for both models alike).
"""

from __future__ import annotations

import torch

from diffusion_lab import metrics
from diffusion_lab.experiments.judge_training import judge_training
from diffusion_lab.experiments.partb import judge_reference, showcase
from diffusion_lab.experiments.partb_flow import flow_showcase
from diffusion_lab.experiments.partb_flow_sampling import FlowModel, sample_flow_digits
from diffusion_lab.experiments.partb_models import ddpm_schedule, load_ddpm, load_flow, load_judge
from diffusion_lab.experiments.partb_records import Comparison, ComparisonRow, ImagesSeen
from diffusion_lab.experiments.partb_sampling import images_per_batch, partb_noise_model, sample_digits
from diffusion_lab.experiments.partb_training import ddpm_training, flow_training
from diffusion_lab.mnist.data import load_mnist
from diffusion_lab.mnist.ddpm import class_labels
from diffusion_lab.profiles import COURSE_GUIDANCE
from diffusion_lab.runcache.context import BuildContext
from diffusion_lab.runcache.runs import RunRecord, Scratch, cached_run

SAMPLERS = ("ddpm", "euler", "heun")  # the DDPM's strided loop; the flow model's two ODE solvers
GRID_COLUMNS = 10  # samples shown per (sampler, evaluations) in the side-by-side grids


def sampler_steps(sampler: str, evaluations: int, num_timesteps: int) -> int | None:
    """The steps that spend `evaluations` network evaluations per sample, or None where the sampler
    cannot: Heun takes 2 a step (odd counts impossible); the DDPM at most its T timesteps."""
    if sampler == "heun":
        return evaluations // 2 if evaluations % 2 == 0 else None
    if sampler == "ddpm" and evaluations > num_timesteps:
        return None
    return evaluations


def comparison(ctx: BuildContext, conditional: bool, guidance_scale: float = COURSE_GUIDANCE) -> RunRecord:
    """For the time- (conditional=False) or class-conditioned pair, at each of the profile's
    evaluation counts and each sampler that can spend it: `compare_samples` samples per sampling
    seed (class: a tenth of each digit at `guidance_scale`), the judge's confident fraction, rarest
    digit share, Frechet distance to the test set (class: accuracy too), and the sampling wall time;
    plus the same count of real training digits' distance, the floor, and a few samples per point."""
    ddpm, flow = ddpm_training(ctx, conditional), flow_training(ctx, conditional)
    reference = judge_reference(ctx)
    show, plan = showcase(ctx), flow_showcase(ctx)
    params = {"ddpm": ddpm.key, "flow": flow.key, "reference": reference.key,
              "evaluations": list(plan.compare_evaluations), "samples": plan.compare_samples,
              "seeds": plan.compare_seeds, "grid": list(plan.compare_grid_evaluations),
              "guidance_scale": guidance_scale if conditional else None, "batch": show.sample_batch}

    def compute(scratch: Scratch):
        judge = load_judge(ctx, judge_training(ctx))
        test_features = reference.load("test_features.pt")
        data = load_mnist()
        pick = torch.randperm(data.train_images.shape[0], generator=scratch.generator("real"))[: plan.compare_samples]
        floor = metrics.frechet_distance(judge.features(data.train_images[pick]), test_features)
        schedule = ddpm_schedule(ddpm)
        flow_model = FlowModel(load_flow(ctx, flow), ctx.device)
        ddpm_unet = load_ddpm(ctx, ddpm)
        labels = class_labels(plan.compare_samples // 10) if conditional else None
        count = plan.compare_samples if labels is None else labels.shape[0]
        batch = images_per_batch(show.sample_batch, conditional)
        rows, examples = [], {}
        for evaluations in plan.compare_evaluations:
            for sampler in SAMPLERS:
                steps = sampler_steps(sampler, evaluations, schedule.num_timesteps)
                if steps is None:
                    continue
                ddpm_model = (partb_noise_model(ddpm_unet, schedule, ctx.device, num_steps=steps)
                              if sampler == "ddpm" else None)
                for seed in range(plan.compare_seeds):
                    generator = scratch.generator(f"{sampler}/{evaluations}/seed-{seed}")
                    if ddpm_model is not None:
                        result = sample_digits(ddpm_model, generator, labels=labels,
                                               num_samples=None if conditional else count,
                                               guidance_scale=guidance_scale, batch_size=batch,
                                               scalar_dtype=torch.float32)
                        taken = len(ddpm_model.strided_timesteps())
                    else:
                        result = sample_flow_digits(flow_model, generator, num_steps=steps, sampler=sampler,
                                                    labels=labels, num_samples=None if conditional else count,
                                                    guidance_scale=guidance_scale, batch_size=batch)
                        taken = steps
                    images = result.samples
                    verdicts = judge.verdicts(images)
                    rows.append(ComparisonRow(
                        sampler=sampler, evaluations=evaluations, steps=taken, seed=seed,
                        confident_fraction=verdicts["confident_fraction"],
                        smallest_share=min(verdicts["class_shares"]),
                        frechet_distance=metrics.frechet_distance(judge.features(images), test_features),
                        seconds_per_1000=1000 * result.wall_time_s / images.shape[0],
                        judge_accuracy=judge.accuracy(images, labels) if conditional else None,
                    ))
                    if seed == 0 and evaluations in plan.compare_grid_evaluations:
                        per_class = count // 10
                        examples[f"{sampler}/{evaluations}"] = (images[::per_class] if conditional else images)[:GRID_COLUMNS]
        scratch.save("examples.pt", examples)
        seen = ImagesSeen(ddpm=ddpm.metrics["num_images_seen"], flow=flow.metrics["num_images_seen"])
        return Comparison(tuple(rows), floor, schedule.num_timesteps, seen).to_metrics()

    name = "partb/compare-class" if conditional else "partb/compare-time"
    return cached_run(ctx, name, params, compute)
