"""SDEdit, inpainting, visual anagrams, hybrid images and the blur baseline on the stand-in model."""

from __future__ import annotations

import pytest
import torch
from test_schedule_sampling import TinyNoiseModel

from diffusion_lab import blur, editing, illusions, schedule
from diffusion_lab.backends.base import UnknownPrompt
from diffusion_lab.metrics import psnr
from diffusion_lab.sampling import sample
from diffusion_lab.seeding import make_generator

# 12 steps keep these tests fast; the 34-step list is exercised in test_schedule_sampling.py.
TIMESTEPS = schedule.strided_timesteps(990, 90, 1000)
G = 5.0


@pytest.fixture(scope="module")
def model():
    return TinyNoiseModel()


@pytest.fixture(scope="module")
def image():
    return torch.rand(1, 3, 8, 8, generator=make_generator(0, "image")) * 2 - 1


def _sample(model, prompt, seed, **options):
    return sample(
        model, 2, model.encode(prompt), make_generator(seed, "s"), timesteps=TIMESTEPS, guidance=G, **options
    )


# --- editing -------------------------------------------------------------------------------------


def test_sdedit_is_repeatable_and_depends_on_the_seed(model, image):
    cond = model.encode("an old man")
    runs = [
        editing.sdedit(model, image, 3, cond, make_generator(seed, "e"), timesteps=TIMESTEPS, guidance=G)
        for seed in (1, 1, 2)
    ]
    assert torch.equal(runs[0], runs[1])
    assert not torch.allclose(runs[0], runs[2], atol=1e-3)


def test_sdedit_series_draws_each_edit_from_its_own_generator(model, image):
    cond = model.encode("an old man")
    series = editing.sdedit_series(model, image, [1, 5], cond, 3, "campanile", timesteps=TIMESTEPS, guidance=G)
    assert list(series) == [1, 5]
    alone = editing.sdedit(
        model, image, 5, cond, make_generator(3, "campanile/i_start=5"), timesteps=TIMESTEPS, guidance=G
    )
    assert torch.equal(series[5], alone)
    # more noise (smaller i_start) strays further from the image
    assert (series[1] - image).abs().mean() > (series[5] - image).abs().mean()


def test_text_image_to_image_is_sdedit_with_the_prompt(model, image):
    ours = editing.text_image_to_image(model, image, "a campfire", [2], 4, "rocket", timesteps=TIMESTEPS, guidance=G)
    expected = editing.sdedit_series(
        model, image, [2], model.encode("a campfire"), 4, "rocket", timesteps=TIMESTEPS, guidance=G
    )
    assert torch.equal(ours[2], expected[2])
    with pytest.raises(UnknownPrompt):
        editing.text_image_to_image(model, image, "a rocket ship", [2], 4, "rocket", timesteps=TIMESTEPS)


def test_an_sdedit_ladder_of_one_i_start_is_sdedit(model, image):
    cond = model.encode("an old man")
    ladder = editing.sdedit_ladder(model, image, [4], cond, make_generator(5, "e"), timesteps=TIMESTEPS, guidance=G)
    alone = editing.sdedit(model, image, 4, cond, make_generator(5, "e"), timesteps=TIMESTEPS, guidance=G)
    assert list(ladder) == [4]
    torch.testing.assert_close(ladder[4], alone, rtol=1e-6, atol=1e-6)


def test_an_sdedit_ladder_edits_at_every_i_start_and_repeats_per_seed(model, image):
    cond = model.encode("an old man")

    def ladder(seed):
        return editing.sdedit_ladder(model, image, [9, 1, 5], cond, make_generator(seed, "e"),
                                     timesteps=TIMESTEPS, guidance=G)

    first, again, other = ladder(0), ladder(0), ladder(1)
    assert list(first) == [1, 5, 9] and all(edit.shape == image.shape for edit in first.values())
    assert all(torch.equal(first[i], again[i]) for i in first)
    assert not torch.allclose(first[1], other[1])
    # more noise (smaller i_start) strays further from the image
    distance = {i: (edit - image).abs().mean() for i, edit in first.items()}
    assert distance[1] > distance[9]
    with pytest.raises(ValueError, match="i_starts must index"):
        editing.sdedit_ladder(model, image, [len(TIMESTEPS)], cond, make_generator(0, "e"), timesteps=TIMESTEPS)


def test_correlation_is_one_for_the_same_picture_and_minus_one_for_its_negative(image):
    assert editing.correlation(image, image).item() == pytest.approx(1.0)
    assert editing.correlation(image, 3 * image + 1).item() == pytest.approx(1.0)
    assert editing.correlation(image, -image).item() == pytest.approx(-1.0)
    noise = torch.randn(64, 3, 8, 8, generator=make_generator(1, "n"))
    assert editing.correlation(noise, torch.randn(64, 3, 8, 8, generator=make_generator(2, "n"))).abs().mean() < 0.2


@pytest.mark.parametrize("i_start", [0, 4])
def test_inpainting_keeps_the_unmasked_region(model, image, i_start):
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 2:6, 3:7] = 1
    result = editing.inpaint(
        model, image, mask, model.encode("a campfire"), make_generator(5, "inpaint"),
        timesteps=TIMESTEPS, i_start=i_start, guidance=G,
    )
    keep = (mask == 0).expand_as(image)
    assert torch.equal(result[keep], image[keep])
    assert not torch.allclose(result[~keep], image[~keep], atol=1e-2)


def test_inpainting_reinjects_the_noised_original(model, image):
    """Every projection sees x_t' = m x + (1 - m) forward(image, t'): outside the hole the
    intermediate images carry noise of level t', not the clean image."""
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 2:6, 3:7] = 1
    seen = []
    editing.inpaint(
        model, image, mask, model.encode(""), make_generator(6, "inpaint"),
        timesteps=TIMESTEPS, callback=lambda i, t, x: seen.append((t, x)),
    )
    keep = (mask == 0).expand_as(image)
    for t, x in seen[1:]:
        residual = x[keep] - schedule.abar_at(model.alphas_cumprod, t) ** 0.5 * image[keep]
        assert residual.std() == pytest.approx((1 - float(model.alphas_cumprod[t])) ** 0.5, rel=0.5)


# --- illusions -----------------------------------------------------------------------------------


@pytest.mark.parametrize("view", list(illusions.VIEWS.values()), ids=list(illusions.VIEWS))
def test_views_are_invertible(view):
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(view.invert(view.apply(x)), x)


@pytest.mark.parametrize("view", list(illusions.VIEWS.values()), ids=list(illusions.VIEWS))
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 8, 8)])
def test_every_view_is_orthogonal_and_keeps_noise_white(view, shape):
    """The rule a view must keep: M^T M = I exactly, so N(0, I) noise stays N(0, I): unit std,
    uncorrelated neighbours (within what 400 draws can tell)."""
    stats = illusions.noise_statistics(view.apply, shape, 400, torch.Generator().manual_seed(3))
    assert illusions.orthogonality_error(view.apply, shape) == 0.0
    assert stats.noise_std == pytest.approx(1.0, abs=0.02)
    assert abs(stats.neighbour_correlation) < 0.02


def test_blur_is_the_counterexample_it_is_shown_as():
    stats = illusions.noise_statistics(illusions.blur_view, (1, 28, 28), 400, torch.Generator().manual_seed(3))
    assert illusions.orthogonality_error(illusions.blur_view, (1, 28, 28)) > 0.5
    assert stats.noise_std < 0.5 and stats.neighbour_correlation > 0.5


def test_view_matrix_is_the_map():
    x = torch.randn(1, 1, 4, 4, dtype=torch.float64)
    matrix = illusions.view_matrix(illusions.ROT90.apply, (1, 4, 4))
    torch.testing.assert_close(matrix @ x.flatten(), illusions.ROT90.apply(x).flatten())


def test_patch_view_moves_whole_patches_to_the_places_of_its_order():
    g = illusions.PATCH_GRID
    # each 2 x 2 patch filled with its own row-major number
    x = torch.arange(g * g, dtype=torch.float32).reshape(1, 1, g, g).repeat_interleave(2, 2).repeat_interleave(2, 3)
    moved = illusions.PATCH.apply(x)
    assert moved[0, 0, ::2, ::2].flatten().tolist() == [float(i) for i in illusions.PATCH_ORDER]
    assert all(i != place for place, i in enumerate(illusions.PATCH_ORDER))  # no patch stays put
    with pytest.raises(ValueError, match="not divisible by 4"):
        illusions.PATCH.apply(torch.zeros(1, 1, 6, 6))


def test_negation_sends_the_data_range_to_its_mirror():
    assert illusions.NEGATE.maps_range((0.0, 1.0)) == (-1.0, -0.0)
    assert illusions.FLIP.maps_range is None


def test_flip_is_upside_down():
    x = torch.arange(4.0).reshape(1, 1, 2, 2)
    assert torch.equal(illusions.FLIP.apply(x), torch.tensor([[[[2.0, 3.0], [0.0, 1.0]]]]))


def test_anagram_with_identity_view_of_one_prompt_is_plain_sampling(model):
    anagram = illusions.visual_anagram(
        model, 2, model.encode("a campfire"), model.encode("a campfire"), make_generator(7, "s"),
        view=illusions.IDENTITY, guidance=G, timesteps=TIMESTEPS,
    )
    torch.testing.assert_close(anagram, _sample(model, "a campfire", 7), rtol=1e-6, atol=1e-6)


def test_flipped_anagram_is_the_anagram_of_swapped_prompts_with_flipped_noise(model):
    p1, p2 = model.encode("a campfire"), model.encode("an old man")
    options = dict(guidance=G, timesteps=TIMESTEPS)
    first = illusions.visual_anagram(model, 2, p1, p2, make_generator(8, "s"), **options)
    swapped = illusions.visual_anagram(
        model, 2, p2, p1, make_generator(8, "s"), noise_view=illusions.FLIP.apply, **options
    )
    torch.testing.assert_close(illusions.FLIP.apply(first), swapped, rtol=1e-6, atol=1e-6)
    # not a symmetry of any image: without the flipped noise it does not hold
    unflipped = illusions.visual_anagram(model, 2, p2, p1, make_generator(8, "s"), **options)
    assert not torch.allclose(illusions.FLIP.apply(first), unflipped, atol=1e-3)


def test_hybrid_of_a_prompt_with_itself_is_plain_sampling(model):
    cond = model.encode("a snowy village")
    hybrid = illusions.hybrid_image(
        model, 2, cond, cond, make_generator(9, "s"), kernel_size=7, sigma=1.5, guidance=G, timesteps=TIMESTEPS
    )
    torch.testing.assert_close(hybrid, _sample(model, "a snowy village", 9), rtol=1e-5, atol=1e-5)
    mixed = illusions.hybrid_image(
        model, 2, cond, model.encode("a campfire"), make_generator(9, "s"), kernel_size=7, sigma=1.5,
        guidance=G, timesteps=TIMESTEPS,
    )
    assert not torch.allclose(mixed, hybrid, atol=1e-3)


def test_hybrid_splits_frequencies(model):
    far, near = model.encode("a campfire"), model.encode("an old man")
    x = torch.randn(1, 3, 8, 8, generator=make_generator(10, "x"))
    estimate = illusions.hybrid_estimate(
        lambda x_t, t: model.predict(x_t, t, far), lambda x_t, t: model.predict(x_t, t, near), 7, 1.5
    )
    out = estimate(x, 500)
    eps_far, eps_near = model.predict(x, 500, far), model.predict(x, 500, near)
    lowpass = lambda e: blur.gaussian_blur(e, 7, 1.5)  # noqa: E731
    torch.testing.assert_close(out.eps - lowpass(eps_far.eps), eps_near.eps - lowpass(eps_near.eps))
    torch.testing.assert_close(out.variance, (eps_far.variance + eps_near.variance) / 2)


def test_a_batch_of_hybrids_may_give_each_image_its_own_low_pass(model):
    far, near = model.encode("a campfire"), model.encode("an old man")
    kernels = [(3, 0.5), (7, 1.5)]
    batch = illusions.hybrid_image(model, 2, far, near, make_generator(4, "s"), kernels=kernels, guidance=G,
                                   timesteps=TIMESTEPS)
    for index, (kernel_size, sigma) in enumerate(kernels):
        alone = illusions.hybrid_image(model, 2, far, near, make_generator(4, "s"), kernel_size=kernel_size,
                                       sigma=sigma, guidance=G, timesteps=TIMESTEPS)
        torch.testing.assert_close(batch[index], alone[index], rtol=1e-5, atol=1e-5)


def test_blurring_each_image_with_its_own_kernel_is_blurring_them_one_by_one():
    x = torch.randn(3, 2, 9, 9, generator=make_generator(6, "x"))
    kernels = [(5, 1.0), (9, 2.0), (5, 1.0)]
    each = blur.gaussian_blur_each(x, kernels)
    for i, (kernel_size, sigma) in enumerate(kernels):
        torch.testing.assert_close(each[i:i + 1], blur.gaussian_blur(x[i:i + 1], kernel_size, sigma))
    with pytest.raises(ValueError, match="one kernel per image"):
        blur.gaussian_blur_each(x, kernels[:2])


def test_hybrid_kernel_scales_with_the_image():
    assert illusions.hybrid_kernel(64) == (33, 2.0)
    assert illusions.hybrid_kernel(28) == (15, 0.875)


# --- blur baseline -------------------------------------------------------------------------------


def test_best_blur_is_the_best_of_its_grid(model):
    y, x = torch.meshgrid(torch.linspace(-1, 1, 16), torch.linspace(-1, 1, 16), indexing="ij")
    clean = torch.stack([x, y, x * y])[None] * 0.8
    noisy = schedule.forward(clean, 500, model.alphas_cumprod, make_generator(11, "n"))
    choice = blur.best_blur(noisy, clean, (-1.0, 1.0), kernel_sizes=(3, 5, 9, 33), sigmas=(0.5, 1.0, 2.0))
    assert choice.kernel_size != 33  # does not fit a 16x16 image with reflect padding
    for k in (3, 5, 9):
        for s in (0.5, 1.0, 2.0):
            candidate = blur.gaussian_blur(noisy, k, s).clamp(-1, 1)
            assert psnr(candidate, clean, 2.0).mean().item() <= choice.psnr
    assert choice.psnr > psnr(noisy.clamp(-1, 1), clean, 2.0).mean().item()
