"""The EMA of the weights (mnist/ema.py): its arithmetic, its warm-up, and that it never changes training."""

import pytest
import torch
from torch import nn

from diffusion_lab.mnist.ema import WeightAverage, warmup_decay


def test_warmup_decay_follows_the_formula_and_is_capped():
    assert warmup_decay(0.999, 1) == pytest.approx(2 / 11)
    assert warmup_decay(0.999, 10) == pytest.approx(11 / 20)
    assert warmup_decay(0.9, 1000) == 0.9  # capped by the decay once (1 + k) / (10 + k) exceeds it
    assert warmup_decay(0.0, 5) == 0.0


@pytest.mark.parametrize("decay, step", [(1.0, 1), (-0.1, 1), (0.9, 0)])
def test_warmup_decay_refuses_bad_arguments(decay, step):
    with pytest.raises(ValueError):
        warmup_decay(decay, step)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))


def test_update_is_the_exponential_average_with_the_warmup_decays():
    model = _model()
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    average = WeightAverage(model, decay=0.9)
    expected = {k: v.clone().float() for k, v in initial.items() if v.is_floating_point()}
    generator = torch.Generator().manual_seed(1)
    for step in range(1, 30):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn(p.shape, generator=generator))
            model[1].running_mean.add_(1.0)
            model[1].num_batches_tracked.add_(1)
        average.update(model)
        d = min(0.9, (1 + step) / (10 + step))
        for key, value in model.state_dict().items():
            if value.is_floating_point():
                expected[key] = d * expected[key] + (1 - d) * value.float()
    state = average.state_dict(model)
    for key, value in expected.items():
        torch.testing.assert_close(state[key], value, rtol=1e-6, atol=1e-6)
    assert int(state["1.num_batches_tracked"]) == 29  # integer buffers are copied, not averaged
    assert state["0.weight"].dtype == model[0].weight.dtype and state["0.weight"].device.type == "cpu"


def test_warmup_forgets_the_initial_weights_quickly():
    """Without the warm-up a decay of 0.999 keeps 0.999**k of the init; with it, after 100 steps
    of constant new weights the init's share is prod d_k, which is below 1e-3."""
    model = _model()
    init = model[0].weight.detach().clone()
    average = WeightAverage(model, decay=0.999)
    with torch.no_grad():
        model[0].weight.copy_(init + 1.0)
    for _ in range(100):
        average.update(model)
    share_of_init = (init + 1.0 - average.state["0.weight"]).abs().max().item()
    assert share_of_init < 1e-3
    assert 0.999**100 > 0.9  # what a plain 0.999 average would still hold
