"""Part B UNets: every block's shape, each model's output, and where conditioning enters."""

from __future__ import annotations

import pytest
import torch

from diffusion_lab.mnist.unet import (
    ClassConditionalUNet,
    Conv,
    ConvBlock,
    DownBlock,
    DownConv,
    FCBlock,
    Flatten,
    TimeConditionalUNet,
    UnconditionalUNet,
    Unflatten,
    UpBlock,
    UpConv,
    count_parameters,
    fold_batchnorm,
    one_hot,
)

N = 3


def _x(channels: int, size: int) -> torch.Tensor:
    return torch.randn(N, channels, size, size, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    "block, x, expected",
    [
        (Conv(3, 5), _x(3, 28), (N, 5, 28, 28)),
        (DownConv(4, 6), _x(4, 28), (N, 6, 14, 14)),
        (DownConv(4, 6), _x(4, 14), (N, 6, 7, 7)),
        (UpConv(6, 4), _x(6, 7), (N, 4, 14, 14)),
        (UpConv(6, 4), _x(6, 14), (N, 4, 28, 28)),
        (Flatten(), _x(8, 7), (N, 8, 1, 1)),
        (Unflatten(8), _x(8, 1), (N, 8, 7, 7)),
        (ConvBlock(2, 5), _x(2, 28), (N, 5, 28, 28)),
        (DownBlock(5, 10), _x(5, 28), (N, 10, 14, 14)),
        (UpBlock(10, 5), _x(10, 14), (N, 5, 28, 28)),
        (FCBlock(1, 16), torch.rand(N, 1), (N, 16)),
        (FCBlock(10, 8), torch.rand(N, 10), (N, 8)),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, torch.nn.Module) else None,
)
def test_block_shapes(block, x, expected):
    assert block(x).shape == expected


def test_block_composition_matches_spec():
    assert [type(m) for m in ConvBlock(1, 4)] == [Conv, Conv]
    assert [type(m) for m in DownBlock(4, 8)] == [DownConv, ConvBlock]
    assert [type(m) for m in UpBlock(8, 4)] == [UpConv, ConvBlock]
    up = UpConv(8, 4)[0]
    assert (up.kernel_size, up.stride, up.padding) == ((4, 4), (2, 2), (1, 1))
    unflatten = Unflatten(8)[0]
    assert (unflatten.kernel_size, unflatten.stride, unflatten.padding) == ((7, 7), (7, 7), (0, 0))


def test_model_outputs_keep_the_input_shape():
    x = _x(1, 28)
    t = torch.rand(N)
    c = one_hot(torch.tensor([0, 5, -1]))
    assert UnconditionalUNet(1, 8)(x).shape == x.shape
    assert TimeConditionalUNet(1, 8)(x, t).shape == x.shape
    assert ClassConditionalUNet(1, 10, 8)(x, t, c).shape == x.shape


def test_time_accepts_column_or_vector_and_changes_the_output():
    model = TimeConditionalUNet(1, 8).eval()
    x, t = _x(1, 28), torch.tensor([0.1, 0.5, 1.0])
    assert torch.equal(model(x, t), model(x, t[:, None]))
    assert not torch.allclose(model(x, t), model(x, 1 - t))


def test_one_hot_rows_and_the_unconditional_zero_row():
    rows = one_hot(torch.tensor([3, -1, 9]))
    assert rows.tolist()[0] == [0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
    assert rows[1].abs().sum() == 0 and rows[2, 9] == 1


def test_class_conditioning_is_c1_times_unflatten_plus_t1_and_c2_times_up1_plus_t2():
    torch.manual_seed(0)
    model = ClassConditionalUNet(1, 10, 8).eval()
    seen = {}
    for name in ("unflatten", "c1", "t1", "c2", "t2"):
        getattr(model, name).register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, o))
    model.up1.register_forward_hook(lambda m, i, o: seen.__setitem__("up1", o))
    model.up1.register_forward_pre_hook(lambda m, i: seen.__setitem__("up1_in", i[0]))
    model.up2.register_forward_pre_hook(lambda m, i: seen.__setitem__("up2_in", i[0]))
    model(_x(1, 28), torch.rand(N), one_hot(torch.tensor([1, 2, -1])))

    d = 8
    expected_u = seen["c1"][:, :, None, None] * seen["unflatten"] + seen["t1"][:, :, None, None]
    torch.testing.assert_close(seen["up1_in"][:, 2 * d :], expected_u)
    expected_up1 = seen["c2"][:, :, None, None] * seen["up1"] + seen["t2"][:, :, None, None]
    torch.testing.assert_close(seen["up2_in"][:, d:], expected_up1)


def test_time_conditioning_adds_t1_to_unflatten_and_t2_to_up1():
    model = TimeConditionalUNet(1, 8).eval()
    seen = {}
    for name in ("unflatten", "t1", "t2", "up1"):
        getattr(model, name).register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, o))
    model.up1.register_forward_pre_hook(lambda m, i: seen.__setitem__("up1_in", i[0]))
    model.up2.register_forward_pre_hook(lambda m, i: seen.__setitem__("up2_in", i[0]))
    model(_x(1, 28), torch.rand(N))
    torch.testing.assert_close(seen["up1_in"][:, 16:], seen["unflatten"] + seen["t1"][:, :, None, None])
    torch.testing.assert_close(seen["up2_in"][:, 8:], seen["up1"] + seen["t2"][:, :, None, None])


def test_parameter_counts_grow_with_conditioning_and_width():
    plain, timed, classed = UnconditionalUNet(1, 16), TimeConditionalUNet(1, 16), ClassConditionalUNet(1, 10, 16)
    d = 16
    fc = lambda i, o: (i * o + o) + (o * o + o)  # noqa: E731
    assert count_parameters(timed) - count_parameters(plain) == fc(1, 2 * d) + fc(1, d)
    assert count_parameters(classed) - count_parameters(timed) == fc(10, 2 * d) + fc(10, d)
    assert count_parameters(UnconditionalUNet(1, 32)) > 3.5 * count_parameters(plain)


def test_folding_batchnorm_keeps_the_function_and_leaves_the_original_alone():
    generator = torch.Generator().manual_seed(0)
    model = ClassConditionalUNet(1, 10, 8).eval()
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        # Non-trivial statistics and affine terms, as after training.
        bn.running_mean.copy_(torch.randn(bn.num_features, generator=generator))
        bn.running_var.copy_(torch.rand(bn.num_features, generator=generator) + 0.5)
        bn.weight.data.copy_(torch.randn(bn.num_features, generator=generator))
        bn.bias.data.copy_(torch.randn(bn.num_features, generator=generator))
    x, t, c = _x(1, 28), torch.rand(N), one_hot(torch.tensor([4, -1, 8]))
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == 17
    torch.testing.assert_close(folded(x, t, c), model(x, t, c), atol=1e-4, rtol=1e-4)


def test_the_unets_gelu_is_torchs_on_every_layout():
    """unet.GELU computes a channels_last tensor through its contiguous (N, H, W, C) view: the same
    values and gradients as nn.GELU to float rounding, and the layout is kept."""
    from diffusion_lab.mnist.unet import GELU

    for layout in (torch.channels_last, torch.contiguous_format):
        x = torch.randn(3, 5, 7, 7, generator=torch.Generator().manual_seed(0)).to(memory_format=layout)
        mine, theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
        y, reference = GELU()(mine), torch.nn.GELU()(theirs)
        assert torch.allclose(y, reference, atol=1e-6) and y.is_contiguous(memory_format=layout)
        upstream = torch.randn(y.shape, generator=torch.Generator().manual_seed(1))
        y.backward(upstream)
        reference.backward(upstream)
        assert torch.allclose(mine.grad, theirs.grad, atol=1e-6)


# --- the FiLM variant of the time-conditioned UNet (the course's graduate question) -----------------


def test_film_unet_keeps_the_course_shapes_and_hears_the_time_everywhere():
    from diffusion_lab.mnist.unet_film import TimeFiLMUNet

    torch.manual_seed(0)
    for attention in (False, True):
        model = TimeFiLMUNet(1, 8, attention=attention).eval()
        x = torch.randn(3, 1, 28, 28)
        assert model(x, torch.rand(3)).shape == (3, 1, 28, 28)
        # FiLM starts at zero: the time enters only through training; then every block hears it
        early, late = model(x, torch.zeros(3)), model(x, torch.ones(3))
        torch.testing.assert_close(early, late)
        for block in (model.conv_in.first, model.up2.second):
            torch.nn.init.normal_(block.film.weight)
            assert not torch.allclose(model(x, torch.zeros(3)), model(x, torch.ones(3)))
            torch.nn.init.zeros_(block.film.weight)


def test_the_recipe_picks_the_architecture_of_the_time_model_only():
    import dataclasses

    from diffusion_lab.mnist import training
    from diffusion_lab.mnist.unet_film import TimeFiLMUNet
    from diffusion_lab.profiles import get_profile

    time_recipe = get_profile("tiny").partb.time_ddpm
    assert type(training.make_ddpm_unet(time_recipe, False)).__name__ == "TimeConditionalUNet"
    film = dataclasses.replace(time_recipe, architecture="film")
    assert isinstance(training.make_ddpm_unet(film, False), TimeFiLMUNet)
    with pytest.raises(ValueError, match="only the course's architecture"):
        training.make_ddpm_unet(film, True)
    with pytest.raises(ValueError, match="architecture must be one of"):
        dataclasses.replace(time_recipe, architecture="resnet")
