"""Part A runs, sections 1.1 to 1.7.3: the write-up's sampling loops on the build's backend.

Each function returns a cached RunRecord. Its parameters hold the model's identity (for MNIST the
Part B training run's key), the inputs' sha256 and every setting, so any change recomputes it.
Every random draw comes from `scratch.generator(purpose)`. Images are saved in the model's data
space; `metrics["data_range"]` says which, for display.
Illusions (1.8, 1.9) are in parta_illusions.py.
"""

from __future__ import annotations

import torch

from diffusion_lab import blur, editing, schedule
from diffusion_lab.experiments import partb_models
from diffusion_lab.experiments.judge_training import judge_training
from diffusion_lab.experiments.parta_backend import PartABackend
from diffusion_lab.experiments.parta_inputs import (
    input_identity,
    load_input,
    mask_to_model_space,
    to_model_space,
    to_unit_range,
)
from diffusion_lab.experiments.parta_plan import (
    Inpainting,
    InputImage,
    PartAPlan,
    TextEdit,
)
from diffusion_lab.metrics import psnr
from diffusion_lab.runcache.context import BuildContext
from diffusion_lab.runcache.runs import RunRecord, Scratch, cached_run
from diffusion_lab.sampling import (
    FrameRecorder,
    iterative_denoise,
    one_step_denoise,
    sample,
)

BLUR_GRID = {"kernel_sizes": list(blur.KERNEL_SIZES), "sigmas": list(blur.SIGMAS)}


def noise_timesteps(plan: PartAPlan, num_timesteps: int) -> list[int]:
    """1.1-1.3's noise levels: IF's 250, 500, 750 of 1000 are a quarter, half, three quarters of T."""
    return [round(fraction * num_timesteps) for fraction in plan.noise_fractions]


def valid_i_starts(plan: PartAPlan, timesteps: list[int]) -> tuple[list[int], list[int]]:
    """The plan's i_starts that index `timesteps`, and those that do not (a tiny model's short list)."""
    kept = [i for i in plan.i_starts if 0 <= i < len(timesteps)]
    return kept, [i for i in plan.i_starts if i not in kept]


def model_image(image: InputImage, sample_shape, data_range, photo_size: int) -> tuple[torch.Tensor, dict]:
    """An input as (1, *sample_shape) in `data_range`, and facts about it."""
    picture, info = load_input(image, sample_shape[0], photo_size)
    return to_model_space(picture, sample_shape, data_range), info


def judge_for(ctx: BuildContext, plan: PartAPlan) -> RunRecord | None:
    """Part B's judge classifier run, where the plan scores images with it."""
    return judge_training(ctx) if plan.judge else None


def judge_probabilities(judge, images: torch.Tensor, data_range) -> torch.Tensor:
    """Softmax over the ten digits of a loaded judge, for images in `data_range`."""
    return torch.softmax(judge.logits(to_unit_range(images, data_range)), dim=1)


def common_metrics(handle: PartABackend) -> dict:
    return {"data_range": list(handle.data_range)}


# --- 1.1, 1.2: the forward process and the Gaussian-blur baseline ------------------------------


def _forward(ctx, name, image: InputImage, photo_size, schedule_identity, alphas_cumprod, sample_shape,
             data_range, timesteps, backend: str | None) -> RunRecord:
    params = {"schedule": schedule_identity, "image": input_identity(image), "image_shape": list(sample_shape),
              "photo_size": photo_size, "timesteps": timesteps, "blur_grid": BLUR_GRID}

    def compute(scratch: Scratch):
        clean, info = model_image(image, sample_shape, data_range, photo_size)
        noisy, blurred, rows = {}, {}, []
        for t in timesteps:
            noisy[t] = schedule.forward(clean, t, alphas_cumprod, scratch.generator(f"t={t}"))
            choice = blur.best_blur(noisy[t], clean, data_range)
            blurred[t] = choice.image
            low, high = data_range
            noisy_psnr = psnr(noisy[t].clamp(low, high), clean, high - low).mean().item()
            rows.append({"t": t, "abar": float(alphas_cumprod[t]), "kernel_size": choice.kernel_size,
                         "sigma": choice.sigma, "blur_psnr": choice.psnr, "noisy_psnr": noisy_psnr})
        scratch.save("forward.pt", {"clean": clean, "noisy": noisy, "blurred": blurred})
        return {"rows": rows, "data_range": list(data_range), "image_info": info}

    return cached_run(ctx, name, params, compute, backend=backend)


def forward_process(ctx: BuildContext, plan: PartAPlan, handle: PartABackend) -> RunRecord:
    """1.1 and 1.2 on the backend's own schedule: the test image at a quarter, half, three quarters of T."""
    timesteps = noise_timesteps(plan, len(handle.alphas_cumprod))
    return _forward(ctx, "parta/forward-process", plan.test_image, plan.photo_size, handle.schedule_identity,
                    handle.alphas_cumprod, handle.sample_shape, handle.data_range, timesteps, handle.name)


def if_schedule_photo(ctx: BuildContext, plan: PartAPlan) -> RunRecord:
    """1.1 and 1.2 on a real photo with DeepFloyd IF's schedule, built from its scheduler config
    alone (no weights): t = 250, 500, 750 of 1000."""
    from diffusion_lab.backends.if_schedule import (
        IF_STAGE1_SCHEDULER_CONFIG,
        if_alphas_cumprod,
    )

    alphas_cumprod = if_alphas_cumprod()
    timesteps = noise_timesteps(plan, len(alphas_cumprod))
    size = plan.photo_size
    return _forward(ctx, "parta/if-schedule-photo", plan.if_schedule_photo, size,
                    {"backend": "deepfloyd-schedule-only", "scheduler_config": IF_STAGE1_SCHEDULER_CONFIG},
                    alphas_cumprod, (3, size, size), (-1.0, 1.0), timesteps, None)


# --- 1.3, 1.4: one-step and iterative denoising ------------------------------------------------


def one_step(ctx: BuildContext, plan: PartAPlan, handle: PartABackend, forward: RunRecord | None = None) -> RunRecord:
    """1.3: x0_hat from one network evaluation on each noisy image of 1.1 (`forward`, the run of
    `forward_process`, is looked up when not given)."""
    forward = forward or forward_process(ctx, plan, handle)
    params = {"model": handle.identity, "forward": forward.key, "prompt": plan.generic_prompt}

    def compute(scratch: Scratch):
        model = handle.model
        condition = model.encode(plan.generic_prompt)
        noisy = forward.load("forward.pt")["noisy"]
        estimates = {t: one_step_denoise(model, x_t.to(model.device, model.dtype), t, condition).cpu().float()
                     for t, x_t in noisy.items()}
        scratch.save("one_step.pt", {"estimates": estimates})
        return common_metrics(handle)

    return cached_run(ctx, "parta/one-step", params, compute, backend=handle.name)


def iterative(ctx: BuildContext, plan: PartAPlan, handle: PartABackend) -> RunRecord:
    """1.4: the test image noised to timesteps[i_start], denoised through the strided list; the
    noisy image every `frame_every` steps; the result next to one-step denoising and the best blur."""
    timesteps = handle.timesteps
    i_start = plan.iterative_i_start
    params = {"model": handle.identity, "image": input_identity(plan.test_image), "prompt": plan.generic_prompt,
              "i_start": i_start, "frame_every": plan.frame_every, "timesteps": timesteps,
              "blur_grid": BLUR_GRID}

    def compute(scratch: Scratch):
        model = handle.model
        clean, _ = model_image(plan.test_image, handle.sample_shape, handle.data_range, plan.photo_size)
        condition = model.encode(plan.generic_prompt)
        t_start = timesteps[i_start]
        x_t = schedule.forward(clean.to(model.device, model.dtype), t_start, model.alphas_cumprod,
                               scratch.generator("noise"))
        frames = FrameRecorder()
        result = iterative_denoise(model, x_t, timesteps, i_start, condition, scratch.generator("loop"),
                                   callback=frames, callback_every=plan.frame_every)
        single = one_step_denoise(model, x_t, t_start, condition)
        choice = blur.best_blur(x_t.cpu().float(), clean, handle.data_range)
        low, high = handle.data_range
        similarity = {name: editing.correlation(image.cpu().float().clamp(low, high), clean).item()
                      for name, image in (("iterative", result), ("one_step", single), ("blurred", choice.image))}
        scratch.save("iterative.pt", {
            "clean": clean, "noisy": x_t.cpu().float(), "frames": [x.float() for _, _, x in frames.frames],
            "iterative": result.cpu().float(), "one_step": single.cpu().float(), "blurred": choice.image,
        })
        return {**common_metrics(handle), "t_start": t_start, "frame_timesteps": frames.timesteps,
                "blur": {"kernel_size": choice.kernel_size, "sigma": choice.sigma, "psnr": choice.psnr},
                "similarity": similarity}

    return cached_run(ctx, "parta/iterative", params, compute, backend=handle.name)


# --- 1.5, 1.6: sampling from pure noise, without and with CFG -----------------------------------


def _samples_run(ctx, plan, handle, name, prompts: list[str], guidance: float | None) -> RunRecord:
    judged = judge_for(ctx, plan)
    params = {"model": handle.identity, "prompts": prompts, "guidance": guidance,
              "timesteps": handle.timesteps, "judge": judged.key if judged else None}

    def compute(scratch: Scratch):
        model = handle.model
        condition = torch.cat([model.encode(prompt) for prompt in prompts])
        samples = sample(model, len(prompts), condition, scratch.generator("samples"), guidance=guidance).cpu().float()
        stored = {"samples": samples}
        if judged is not None:
            judge = partb_models.load_judge(ctx, judged)
            stored["judge_probabilities"] = judge_probabilities(judge, samples, handle.data_range)
        scratch.save("samples.pt", stored)
        return common_metrics(handle)

    return cached_run(ctx, name, params, compute, backend=handle.name)


def unconditional_samples(ctx: BuildContext, plan: PartAPlan, handle: PartABackend) -> RunRecord:
    """1.5: num_samples images from pure noise (i_start = 0) with the generic prompt, no CFG."""
    return _samples_run(ctx, plan, handle, "parta/samples", [plan.generic_prompt] * plan.num_samples, None)


def cfg_samples(ctx: BuildContext, plan: PartAPlan, handle: PartABackend) -> RunRecord:
    """1.6: one sample per CFG prompt at the plan's guidance scale."""
    return _samples_run(ctx, plan, handle, "parta/cfg-samples", list(plan.cfg_prompts), plan.guidance)


# --- 1.7 - 1.7.3: SDEdit, inpainting, text-conditional image-to-image ---------------------------


def sdedit_extension(plan: PartAPlan, kept: list[int], num_timesteps: int) -> list[int]:
    """The i_starts after the write-up's (`kept`) that an SDEdit run also edits at: every
    `plan.sdedit_extension_step`-th one up to the model's last timestep."""
    return list(range(max(kept) + plan.sdedit_extension_step, num_timesteps, plan.sdedit_extension_step))


def shown_i_starts(write_up: list[int], extension: list[int], similarity: dict[int, float],
                   resemblance: float) -> list[int]:
    """What a figure of SDEdit shows: the write-up's i_starts, then, if the last of them does not yet
    resemble its input (similarity below `resemblance`), the extension up to and including the
    first that does (all of it where none does)."""
    shown = list(write_up)
    if similarity[write_up[-1]] >= resemblance:
        return shown
    for i_start in extension:
        shown.append(i_start)
        if similarity[i_start] >= resemblance:
            break
    return shown


def _judge_readings(ctx: BuildContext, judged: RunRecord, handle: PartABackend, prompt: str,
                    original: torch.Tensor, edits: dict[int, torch.Tensor]) -> dict:
    """The digit the judge reads in the input and in each edit, with its probability, and the digit
    the prompt names (None for the generic prompt)."""
    probabilities = judge_probabilities(partb_models.load_judge(ctx, judged),
                                        torch.cat([original, *edits.values()]), handle.data_range)
    reads = probabilities.argmax(1)
    readings = [{"digit": int(reads[k]), "p": probabilities[k, reads[k]].item()} for k in range(len(reads))]
    return {"input": readings[0], "edits": {str(i): readings[k + 1] for k, i in enumerate(edits)},
            "prompt": handle.prompt_class(prompt)}


def _sdedit_run(ctx, plan, handle, name, image: InputImage, prompt: str) -> RunRecord:
    kept, skipped = valid_i_starts(plan, handle.timesteps)
    extension = sdedit_extension(plan, kept, len(handle.timesteps))
    judged = judge_for(ctx, plan)
    params = {"model": handle.identity, "image": input_identity(image), "prompt": prompt,
              "guidance": plan.guidance, "i_starts": kept, "extension": extension,
              "resemblance": plan.sdedit_resemblance, "timesteps": handle.timesteps,
              "photo_size": plan.photo_size, "judge": judged.key if judged else None}

    def compute(scratch: Scratch):
        model = handle.model
        original, info = model_image(image, handle.sample_shape, handle.data_range, plan.photo_size)
        # Every i_start in one batched loop: the extension's short loops cost little on top.
        edits = {i: edit.cpu().float() for i, edit in editing.sdedit_ladder(
            model, original, kept + extension, model.encode(prompt), scratch.generator(image.id),
            guidance=plan.guidance).items()}
        low, high = handle.data_range
        similarity = {i: editing.correlation(edit.clamp(low, high), original).item() for i, edit in edits.items()}
        scratch.save("sdedit.pt", {"original": original, "edits": edits})
        metrics = {**common_metrics(handle), "image_info": info, "skipped_i_starts": skipped,
                   "t_starts": {str(i): handle.timesteps[i] for i in edits},
                   "similarity": {str(i): r for i, r in similarity.items()},
                   "shown_i_starts": shown_i_starts(kept, extension, similarity, plan.sdedit_resemblance)}
        if judged is not None:
            metrics["judge"] = _judge_readings(ctx, judged, handle, prompt, original, edits)
        return metrics

    return cached_run(ctx, name, params, compute, backend=handle.name)


def sdedit(ctx: BuildContext, plan: PartAPlan, handle: PartABackend, image: InputImage) -> RunRecord:
    """1.7 / 1.7.1: SDEdit of `image` with the generic prompt and CFG, at the write-up's i_starts
    and the extension after them; each edit's similarity to the input (Pearson's r) and, where the
    plan has a judge, the digit it reads, decide and describe what the figure shows."""
    return _sdedit_run(ctx, plan, handle, "parta/sdedit", image, plan.generic_prompt)


def text_image_to_image(ctx: BuildContext, plan: PartAPlan, handle: PartABackend, edit: TextEdit) -> RunRecord:
    """1.7.3: SDEdit guided by a prompt of its own."""
    return _sdedit_run(ctx, plan, handle, "parta/text-image-to-image", edit.image, edit.prompt)


def inpaint(ctx: BuildContext, plan: PartAPlan, handle: PartABackend, pair: Inpainting) -> RunRecord:
    """1.7.2: regenerate the white part of the mask from pure noise, keeping the rest."""
    params = {"model": handle.identity, "image": input_identity(pair.image), "mask": input_identity(pair.mask),
              "prompt": plan.generic_prompt, "guidance": plan.guidance, "timesteps": handle.timesteps,
              "photo_size": plan.photo_size}

    def compute(scratch: Scratch):
        model = handle.model
        original, info = model_image(pair.image, handle.sample_shape, handle.data_range, plan.photo_size)
        mask_picture, _ = load_input(pair.mask, 1)
        mask = mask_to_model_space(mask_picture, handle.sample_shape)
        result = editing.inpaint(model, original, mask, model.encode(plan.generic_prompt),
                                 scratch.generator(f"{pair.image.id}/{pair.mask.id}"), guidance=plan.guidance)
        low, high = handle.data_range
        hole = original * (1 - mask) + (low + high) / 2 * mask  # the hole in mid-gray, visible on black
        scratch.save("inpaint.pt", {"original": original, "mask": mask, "mask_shown": low + (high - low) * mask,
                                    "hole": hole, "result": result.cpu().float()})
        return {**common_metrics(handle), "image_info": info}

    return cached_run(ctx, "parta/inpaint", params, compute, backend=handle.name)
