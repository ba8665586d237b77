"""Part A runs, sections 1.8 and 1.9: visual anagrams and hybrid images, every candidate judged.

Each illusion is sampled for `plan.illusion_candidates` seeds at once; all of them are kept and
shown. Where the plan has a judge (MNIST), Part B's classifier reads each candidate in each view
and the run records its probabilities, which candidates read as intended in both views, and
the one it rates best (the lower of its two target probabilities is highest).
Hybrids first go through a sweep of low-pass settings (`hybrid_sweep`), from which the judge
picks each hybrid's setting; the hybrid runs take it from the sweep's result.
"""

from __future__ import annotations

import torch

from diffusion_lab import editing, illusions
from diffusion_lab.blur import gaussian_blur, gaussian_blur_each
from diffusion_lab.experiments import partb_models
from diffusion_lab.experiments.parta import (
    common_metrics,
    judge_for,
    judge_probabilities,
    model_image,
)
from diffusion_lab.experiments.parta_backend import PartABackend
from diffusion_lab.experiments.parta_inputs import input_identity
from diffusion_lab.experiments.parta_plan import Anagram, Hybrid, PartAPlan
from diffusion_lab.runcache.context import BuildContext
from diffusion_lab.runcache.runs import RunRecord, Scratch, cached_run


def judge_two_views(probs_1: torch.Tensor, probs_2: torch.Tensor, target_1: int, target_2: int) -> dict:
    """Per candidate: the probability of each view's target digit, what the judge reads in each
    view, and whether both read as intended; plus the count of those and the judge-best candidate."""
    reads_1, reads_2 = probs_1.argmax(1), probs_2.argmax(1)
    candidates = []
    for i in range(probs_1.shape[0]):
        p_1, p_2 = probs_1[i, target_1].item(), probs_2[i, target_2].item()
        candidates.append({
            "p_1": p_1, "p_2": p_2, "read_1": int(reads_1[i]), "read_2": int(reads_2[i]),
            "p_read_1": probs_1[i, reads_1[i]].item(), "p_read_2": probs_2[i, reads_2[i]].item(),
            "both": bool(reads_1[i] == target_1 and reads_2[i] == target_2), "score": min(p_1, p_2),
        })
    best = max(range(len(candidates)), key=lambda i: candidates[i]["score"])
    return {"targets": [target_1, target_2], "candidates": candidates, "best": best,
            "both_count": sum(c["both"] for c in candidates),
            "mean_p_1": probs_1[:, target_1].mean().item(), "mean_p_2": probs_2[:, target_2].mean().item()}


def _targets(handle: PartABackend, prompts: list[str]) -> list[int] | None:
    classes = [handle.prompt_class(prompt) for prompt in prompts]
    return None if any(c is None for c in classes) else classes


def _judged_views(ctx: BuildContext, judged: RunRecord | None, handle: PartABackend, prompts: list[str],
                  view_1: torch.Tensor, view_2: torch.Tensor) -> dict:
    """{"judge": verdict} for the two views of an illusion, or {} where there is no judge or the
    prompts name no digits."""
    targets = _targets(handle, prompts)
    if judged is None or not targets:
        return {}
    judge = partb_models.load_judge(ctx, judged)
    return {"judge": judge_two_views(judge_probabilities(judge, view_1, handle.data_range),
                                     judge_probabilities(judge, view_2, handle.data_range), *targets)}


# --- 1.8 visual anagrams --------------------------------------------------------------------------


def anagram(ctx: BuildContext, plan: PartAPlan, handle: PartABackend, spec: Anagram) -> RunRecord:
    """eps = (eps_1(x) + view^-1(eps_2(view(x)))) / 2 with CFG per view, for every candidate seed."""
    view = illusions.VIEWS[spec.view]
    prompts = [spec.prompt_1, spec.prompt_2]
    judged = judge_for(ctx, plan)
    params = {"model": handle.identity, "prompts": prompts, "view": spec.view, "guidance": plan.guidance,
              "candidates": plan.illusion_candidates, "timesteps": handle.timesteps,
              "judge": judged.key if judged else None}

    def compute(scratch: Scratch):
        model = handle.model
        images = illusions.visual_anagram(
            model, plan.illusion_candidates, model.encode(spec.prompt_1), model.encode(spec.prompt_2),
            scratch.generator("candidates"), view=view, guidance=plan.guidance,
        ).cpu().float()
        viewed = view.apply(images)
        scratch.save("anagram.pt", {"images": images, "viewed": viewed})
        return {**common_metrics(handle), "view_range": view_range(spec.view, handle.data_range),
                **_judged_views(ctx, judged, handle, prompts, images, viewed)}

    return cached_run(ctx, "parta/anagram", params, compute, backend=handle.name)


def view_range(view: str, data_range) -> list[float] | None:
    """The range the model's images lie in through `view` where it moves the data range, else None."""
    maps = illusions.VIEWS[view].maps_range
    moved = None if maps is None else maps(tuple(data_range))
    return None if moved is None or tuple(moved) == tuple(data_range) else [float(v) + 0.0 for v in moved]  # no -0


NOISE_DRAWS = 200
# A matrix of D x D float64 entries: the IF's 3 x 64 x 64 images would take 1.2 GB, so orthogonality
# is measured on one channel of at most 32 x 32 pixels, where the views act the same way per channel.
MATRIX_PIXELS = 32


def view_statistics(ctx: BuildContext, plan: PartAPlan, handle: PartABackend) -> RunRecord:
    """For each anagram view of the plan and for the blur counterexample: its orthogonality
    (max |M^T M - I| of its matrix) and what it does to N(0, I) noise of the model's image shape."""
    views = list(dict.fromkeys(spec.view for spec in plan.anagrams))
    shape = list(handle.sample_shape)
    side = min(shape[-1], MATRIX_PIXELS)
    params = {"views": views, "blur_kernel": list(illusions.BLUR_KERNEL), "shape": shape, "draws": NOISE_DRAWS,
              "matrix_shape": [1, side, side], "patch_grid": illusions.PATCH_GRID}

    def compute(scratch: Scratch):
        maps = {name: illusions.VIEWS[name].apply for name in views} | {"blur": illusions.blur_view}
        rows = []
        for name, apply in maps.items():
            noise = illusions.noise_statistics(apply, shape, NOISE_DRAWS, scratch.generator(f"noise-{name}"))
            rows.append({"view": name, "orthogonality_error": illusions.orthogonality_error(apply, [1, side, side]),
                         "noise_std": noise.noise_std, "neighbour_correlation": noise.neighbour_correlation,
                         "view_range": None if name == "blur" else view_range(name, handle.data_range)})
        return {"rows": rows, "data_range": list(handle.data_range)}

    return cached_run(ctx, "parta/view-statistics", params, compute, backend=handle.name)


# --- 1.9 hybrid images ---------------------------------------------------------------------------

HYBRID_SELECTION_RULE = (
    "the setting with the most candidates that read as both digits; on a tie, the one whose candidates "
    "the judge rates higher on average (each by the lower of its two target probabilities); then the "
    "smaller σ"
)


def pick_hybrid_setting(rows: list[dict]) -> dict:
    """Of one hybrid's sweep rows (one per low-pass setting), the one HYBRID_SELECTION_RULE picks."""
    return max(rows, key=lambda row: (row["both_count"], row["mean_score"], -row["sigma"]))


def sweep_kernel(sigma: float, image_size: int) -> int:
    """A kernel size for `sigma` in the write-up's proportion (33 for sigma 2: 8 sigma either side),
    capped at what reflect padding allows on the image."""
    return min(2 * round(8 * sigma) + 1, 2 * (image_size - 1) + 1)


def hybrid_sweep(ctx: BuildContext, plan: PartAPlan, handle: PartABackend) -> RunRecord | None:
    """Every hybrid of the plan at each of the plan's sweep sigmas (kernel from `sweep_kernel`),
    `plan.hybrid_sweep_candidates` seeds each, all in one batched sampling loop; the judge reads
    each candidate from afar (its low-pass) and up close, and for each hybrid the run picks the
    setting its figures use (`pick_hybrid_setting`). None where the plan sweeps nothing."""
    if not plan.hybrid_sweep_sigmas:
        return None
    judged = judge_for(ctx, plan)
    size = handle.sample_shape[-1]
    sweep = [{"sigma": sigma, "kernel_size": sweep_kernel(sigma, size)} for sigma in plan.hybrid_sweep_sigmas]
    pairs = [[spec.far, spec.near] for spec in plan.hybrids]
    k = plan.hybrid_sweep_candidates
    params = {"model": handle.identity, "pairs": pairs, "sweep": sweep, "candidates": k, "guidance": plan.guidance,
              "timesteps": handle.timesteps, "judge": judged.key if judged else None,
              "rule": HYBRID_SELECTION_RULE}

    def compute(scratch: Scratch):
        model = handle.model
        # One batch, setting by setting, then hybrid by hybrid, then seed by seed.
        order = [(point, pair) for point in sweep for pair in pairs for _ in range(k)]
        kernels = [(point["kernel_size"], point["sigma"]) for point, _ in order]
        far = torch.cat([model.encode(pair[0]) for _, pair in order])
        near = torch.cat([model.encode(pair[1]) for _, pair in order])
        images = illusions.hybrid_image(model, len(order), far, near, scratch.generator("candidates"),
                                        kernels=kernels, guidance=plan.guidance).cpu().float()
        lowpass = gaussian_blur_each(images, kernels)
        block = len(pairs) * k
        scratch.save("sweep.pt", {
            "images": {str(point["sigma"]): images[i * block:(i + 1) * block] for i, point in enumerate(sweep)},
            "lowpass": {str(point["sigma"]): lowpass[i * block:(i + 1) * block] for i, point in enumerate(sweep)},
        })
        targets = [_targets(handle, pair) for pair in pairs]
        if judged is None or None in targets:
            return {**common_metrics(handle), "rows": [], "selected": []}
        judge = partb_models.load_judge(ctx, judged)
        p_far = judge_probabilities(judge, lowpass, handle.data_range)
        p_near = judge_probabilities(judge, images, handle.data_range)
        rows = []
        for i, point in enumerate(sweep):
            for j, (d_far, d_near) in enumerate(targets):
                part = slice(i * block + j * k, i * block + (j + 1) * k)
                verdict = judge_two_views(p_far[part], p_near[part], d_far, d_near)
                candidates = verdict["candidates"]
                rows.append({"sigma": point["sigma"], "kernel_size": point["kernel_size"], "pair": j,
                             "both_count": verdict["both_count"],
                             "mean_score": sum(c["score"] for c in candidates) / k,
                             "far_reads_far": sum(c["read_1"] == d_far for c in candidates),
                             "near_reads_near": sum(c["read_2"] == d_near for c in candidates),
                             "reads": [[c["read_1"], c["read_2"]] for c in candidates]})
        selected = [pick_hybrid_setting([row for row in rows if row["pair"] == j]) for j in range(len(pairs))]
        return {**common_metrics(handle), "rows": rows, "selected": selected}

    return cached_run(ctx, "parta/hybrid-sweep", params, compute, backend=handle.name)


def hybrid_setting(plan: PartAPlan, handle: PartABackend, spec: Hybrid, sweep: RunRecord | None) -> tuple[int, float]:
    """(kernel_size, sigma) of a hybrid's figures: the one its sweep picked, or where there is no
    judged sweep, the write-up's kernel scaled to the model's image size (`illusions.hybrid_kernel`)."""
    if sweep is None or not sweep.metrics["selected"]:
        return illusions.hybrid_kernel(handle.sample_shape[-1])
    picked = sweep.metrics["selected"][sweep.params["pairs"].index([spec.far, spec.near])]
    return picked["kernel_size"], picked["sigma"]


def hybrid(ctx: BuildContext, plan: PartAPlan, handle: PartABackend, spec: Hybrid) -> RunRecord:
    """eps = lowpass(eps_far) + highpass(eps_near) at the low-pass `hybrid_setting` gives (the
    sweep's pick where the plan sweeps), for every candidate seed. The judge reads the low-passed
    image as the view from afar and the image itself up close."""
    sweep = hybrid_sweep(ctx, plan, handle)
    kernel_size, sigma = hybrid_setting(plan, handle, spec, sweep)
    prompts = [spec.far, spec.near]
    judged = judge_for(ctx, plan)
    params = {"model": handle.identity, "prompts": prompts, "kernel_size": kernel_size, "sigma": sigma,
              "setting_from": sweep.key if sweep else None,
              "guidance": plan.guidance, "candidates": plan.illusion_candidates, "timesteps": handle.timesteps,
              "judge": judged.key if judged else None}

    def compute(scratch: Scratch):
        model = handle.model
        images = illusions.hybrid_image(
            model, plan.illusion_candidates, model.encode(spec.far), model.encode(spec.near),
            scratch.generator("candidates"), kernel_size=kernel_size, sigma=sigma, guidance=plan.guidance,
        ).cpu().float()
        lowpass = gaussian_blur(images, kernel_size, sigma)
        low, high = handle.data_range
        scratch.save("hybrid.pt", {"images": images, "lowpass": lowpass, "highpass": images - lowpass,
                                   "highpass_shown": images - lowpass + (low + high) / 2})
        return {**common_metrics(handle), "kernel_size": kernel_size, "sigma": sigma,
                **_judged_views(ctx, judged, handle, prompts, lowpass, images)}

    return cached_run(ctx, "parta/hybrid", params, compute, backend=handle.name)


def kernel_in_frame(kernel_size: int, sigma: float, image_size: int) -> torch.Tensor:
    """The 2-D Gaussian the low-pass uses, drawn at its footprint in an image_size x image_size
    frame (peak = 1): the low-pass's response to a unit impulse at the center."""
    impulse = torch.zeros(1, 1, image_size, image_size)
    impulse[..., image_size // 2, image_size // 2] = 1.0
    response = gaussian_blur(impulse, kernel_size, sigma)[0]
    return response / response.max()


def hybrid_kernel_scaling(ctx: BuildContext, plan: PartAPlan, handle: PartABackend) -> RunRecord:
    """Why 1.9's low-pass is rescaled: the write-up's kernel at 64x64 beside the scaled one at the
    model's size, and the low/high-pass split of a photo and of the test image with each."""
    size = handle.sample_shape[-1]
    write_up = illusions.hybrid_kernel(64)
    scaled = illusions.hybrid_kernel(size)
    photo = plan.if_schedule_photo or plan.test_image
    params = {"photo": input_identity(photo), "photo_size": plan.photo_size, "image": input_identity(plan.test_image),
              "sample_shape": list(handle.sample_shape), "write_up_kernel": list(write_up),
              "scaled_kernel": list(scaled)}

    def compute(scratch: Scratch):
        photo_shape = (3, plan.photo_size, plan.photo_size)
        photo_image, _ = model_image(photo, photo_shape, (-1.0, 1.0), plan.photo_size)
        test_image, _ = model_image(plan.test_image, handle.sample_shape, handle.data_range, plan.photo_size)
        rows = []
        for label, image, data_range, (k, s) in (
            (f"{plan.photo_size}x{plan.photo_size} photo, kernel {write_up[0]}, sigma {write_up[1]:g}",
             photo_image, (-1.0, 1.0), write_up),
            (f"{size}x{size} image, scaled kernel {scaled[0]}, sigma {scaled[1]:g}", test_image,
             handle.data_range, scaled),
            (f"{size}x{size} image, unscaled kernel {write_up[0]}, sigma {write_up[1]:g}", test_image,
             handle.data_range, write_up),
        ):
            lowpass = gaussian_blur(image, k, s)
            middle = sum(data_range) / 2  # the high-pass is centered on zero: shown around mid-gray
            rows.append({"label": label, "image": image, "lowpass": lowpass, "highpass_shown": image - lowpass + middle,
                         "data_range": list(data_range)})
        scratch.save("split.pt", {"rows": rows, "kernels": {
            "write_up": kernel_in_frame(*write_up, 64), "scaled": kernel_in_frame(*scaled, size),
            "unscaled": kernel_in_frame(*write_up, size)}})
        # How much of each picture its low-pass keeps: Pearson's r of the two, 1 = all of it.
        kept = [editing.correlation(row["lowpass"], row["image"]).item() for row in rows]
        return {"write_up_kernel": list(write_up), "scaled_kernel": list(scaled), "size": size,
                "row_labels": [row["label"] for row in rows], "lowpass_similarity": kept}

    return cached_run(ctx, "parta/hybrid-kernel-scaling", params, compute)

