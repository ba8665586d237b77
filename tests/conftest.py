import pytest
import torch
from sitebuild import build_site

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


@pytest.fixture(scope="session")
def builds(tmp_path_factory):
    """The tiny strict site, built once per session for every test that reads it (test_site_build,
    test_site_browser): (cold build, warm rebuild from the cold build's cache)."""
    root = tmp_path_factory.mktemp("site")
    cold = build_site(root / "cold", root / "cache")
    assert cold.returncode == 0, cold.stdout + cold.stderr
    warm = build_site(root / "warm", root / "cache")
    assert warm.returncode == 0, warm.stdout + warm.stderr
    return root / "cold", root / "warm"
