import os
import subprocess
import sys

import pytest
import torch
from s3server import s3_server
from sitebuild import REPO, SITE_URL, build_site

from diffusion_lab.runcache.context import BuildContext

# Test tensors are tiny: one thread is faster than two (no sync cost), and a fixed count keeps
# float results the same from machine to machine.
torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def no_user_cache_or_store(tmp_path_factory):
    """`make test` exports the build's settings (DIFFUSION_LAB_CACHE=.cache, and CACHE_URL, PRECISION,
    FORCE where given): no test may read or write the user's run cache or shared store through them.
    Tests that want a setting set it themselves."""
    patch = pytest.MonkeyPatch()
    patch.setenv("DIFFUSION_LAB_CACHE", str(tmp_path_factory.mktemp("session-cache")))
    for name in ("DIFFUSION_LAB_CACHE_URL", "DIFFUSION_LAB_PRECISION", "DIFFUSION_LAB_FORCE"):
        patch.delenv(name, raising=False)
    yield
    patch.undo()


@pytest.fixture
def ctx(tmp_path):
    """A tiny-profile CPU build context whose cache lives in a fresh temporary folder."""
    return BuildContext(
        profile="tiny", backend="mnist", device=torch.device("cpu"), seed=0,
        cache_dir=tmp_path / "cache", force=False,
    )


@pytest.fixture(scope="session")
def s3():
    """moto's S3 server on 127.0.0.1 for the session (tests/s3server.py)."""
    with s3_server() as server:
        yield server


@pytest.fixture(scope="session")
def builds(tmp_path_factory, s3):
    """The tiny strict site, built once per session for every test that reads it (test_site_build,
    test_site_browser): (cold build, the build of a reader with an empty cache served by a store).
    Between them the cold build's cache is pushed to a fresh bucket of the S3 server with
    `python -m diffusion_lab cache-push` (what `make cache-push` runs), and the second build reads
    the store: `make site CACHE_URL=s3://...` from a fresh clone. Both are built for the sub-path
    GitHub Pages serves a project's site at (sitebuild.SITE_URL), where the browser tests serve them."""
    root = tmp_path_factory.mktemp("site")
    cold = build_site(root / "cold", root / "cache", SITE_URL=SITE_URL)
    assert cold.returncode == 0, cold.stdout + cold.stderr
    url = f"s3://{s3.new_bucket()}/tiny"
    pushed = subprocess.run([sys.executable, "-m", "diffusion_lab", "cache-push", "--to", url,
                             "--cache-dir", str(root / "cache")], cwd=REPO, capture_output=True, text=True,
                            timeout=600, env={**os.environ, **s3.env})
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    served = build_site(root / "served", root / "reader-cache", DIFFUSION_LAB_CACHE_URL=url, SITE_URL=SITE_URL,
                        **s3.env)
    assert served.returncode == 0, served.stdout + served.stderr
    (root / "served.log").write_text(served.stderr)
    return root / "cold", root / "served"
