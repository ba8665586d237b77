import pytest
import torch

from diffusion_lab.runcache.context import BuildContext

# Test tensors are tiny: one thread is faster than two (no sync cost), and a fixed count keeps
# float results the same from machine to machine.
torch.set_num_threads(1)


@pytest.fixture
def ctx(tmp_path):
    """A tiny-profile CPU build context whose cache lives in a fresh temporary folder."""
    return BuildContext(
        profile="tiny", backend="mnist", device=torch.device("cpu"), seed=0,
        cache_dir=tmp_path / "cache", force=False,
    )
