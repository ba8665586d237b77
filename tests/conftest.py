import os

import pytest
import torch

from diffusion_lab.report.context import BuildContext

# Two cores: more threads only fight each other, and a fixed count keeps float results stable.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def ctx(tmp_path):
    """A tiny-profile CPU build context whose cache lives in a fresh temporary folder."""
    return BuildContext(
        profile="tiny", backend="mnist", device=torch.device("cpu"), seed=0,
        cache_dir=tmp_path / "cache", force=False,
    )
