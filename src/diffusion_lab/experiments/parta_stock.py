"""Section 0: what the backend's stock sampler draws for a few prompts at two step counts.

On DeepFloyd IF that is diffusers' IFPipeline, then stage II to 256x256, as the write-up's
setup cell; on the MNIST model, which has no stock pipeline, diffusers' DDPMScheduler (see
stock_sampling.py). Every step count starts from the same noise, so the rows differ only by it.
"""

from __future__ import annotations

import time

import torch

from diffusion_lab.experiments import partb_models
from diffusion_lab.experiments.parta import common_metrics, judge_for, judge_probabilities
from diffusion_lab.experiments.parta_backend import PartABackend
from diffusion_lab.experiments.parta_plan import PartAPlan
from diffusion_lab.runcache.context import BuildContext
from diffusion_lab.runcache.runs import RunRecord, Scratch, cached_run


def stock_step_counts(plan: PartAPlan, num_timesteps: int) -> list[int]:
    """The plan's step counts, none above the model's T (a tiny test model has only a few steps)."""
    return sorted({min(steps, num_timesteps) for steps in plan.stock_steps})


def stock_prompts(plan: PartAPlan) -> list[str]:
    """Each stock prompt `stock_images_per_prompt` times, prompt by prompt."""
    return [prompt for prompt in plan.stock_prompts for _ in range(plan.stock_images_per_prompt)]


def stock_samples(ctx: BuildContext, plan: PartAPlan, handle: PartABackend) -> RunRecord:
    """Stage I (and stage II where there is one) of the stock sampler at each step count."""
    steps = stock_step_counts(plan, len(handle.alphas_cumprod))
    prompts = stock_prompts(plan)
    judged = judge_for(ctx, plan)
    params = {"model": handle.identity, "sampler": handle.stock_label, "prompts": prompts, "steps": steps,
              "guidance": plan.guidance, "judge": judged.key if judged else None}

    def compute(scratch: Scratch):
        stored = {"stage1": {}, "stage2": {}, "judge_probabilities": {}}
        judge = partb_models.load_judge(ctx, judged) if judged else None
        if judge is not None:
            targets = torch.tensor([handle.prompt_class(prompt) for prompt in prompts])
        rows, timing = [], {}
        for count in steps:
            start = time.perf_counter()
            images = handle.stock_samples(prompts, count, plan.guidance, scratch.generator("noise"))
            stored["stage1"][count] = images.cpu().float()
            if handle.has_stage2:
                stored["stage2"][count] = handle.upsample(images, prompts, scratch.generator("stage2")).cpu().float()
            seconds = time.perf_counter() - start
            timing[str(count)] = {"seconds": seconds, "images_per_s": len(prompts) / seconds}
            row = {"steps": count}
            if judge is not None:
                probabilities = judge_probabilities(judge, stored["stage1"][count], handle.data_range)
                stored["judge_probabilities"][count] = probabilities
                row["judge_accuracy"] = (probabilities.argmax(dim=1) == targets).float().mean().item()
            rows.append(row)
        scratch.save("stock.pt", stored)
        return {**common_metrics(handle), "rows": rows, "timing": timing,
                "capped_steps": [count for count in plan.stock_steps if count not in steps]}

    return cached_run(ctx, "parta/stock-pipeline", params, compute, backend=handle.name)
