"""Build settings (DIFFUSION_LAB_*) are checked once, each bad one reported in one line naming the
variable, its value and what is allowed: by BuildContext.from_env, and by mkdocs before any page."""

import errno
from pathlib import Path

import pytest
import torch

from diffusion_lab.runcache.context import MAX_SEED, BuildContext, BuildSettingError
from sitebuild import build_site

SETTINGS = ("DIFFUSION_LAB_PROFILE", "DIFFUSION_LAB_BACKEND", "DIFFUSION_LAB_DEVICE", "DIFFUSION_LAB_SEED",
            "DIFFUSION_LAB_CACHE", "DIFFUSION_LAB_FORCE")


@pytest.fixture
def env(monkeypatch, tmp_path):
    """A clean, valid environment (tiny, cpu, a fresh cache) that a test then spoils one setting of."""
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DIFFUSION_LAB_PROFILE", "tiny")
    monkeypatch.setenv("DIFFUSION_LAB_DEVICE", "cpu")
    monkeypatch.setenv("DIFFUSION_LAB_CACHE", str(tmp_path / "cache"))
    return monkeypatch


def _refused(variable: str, *fragments: str) -> str:
    with pytest.raises(BuildSettingError) as caught:
        BuildContext.from_env()
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"bad build setting {variable}=")
    for fragment in fragments:
        assert fragment in message, message
    assert caught.value.variable == variable
    return message


def test_valid_settings_are_read(env, tmp_path):
    env.setenv("DIFFUSION_LAB_SEED", str(MAX_SEED))
    env.setenv("DIFFUSION_LAB_BACKEND", "deepfloyd")
    ctx = BuildContext.from_env()
    assert (ctx.profile, ctx.backend, ctx.device, ctx.seed) == ("tiny", "deepfloyd", torch.device("cpu"), MAX_SEED)
    assert ctx.cache_dir == (tmp_path / "cache").resolve() and ctx.cache_dir.is_dir()


def test_empty_settings_take_the_defaults(env, monkeypatch, tmp_path):
    for name in SETTINGS:
        env.setenv(name, "")
    monkeypatch.chdir(tmp_path)
    ctx = BuildContext.from_env()
    assert ctx.profile in ("quick", "full") and ctx.backend == "mnist" and ctx.seed == 0 and not ctx.force
    assert ctx.cache_dir == tmp_path / ".cache"


@pytest.mark.parametrize("seed", ["abc", "-1", "1.5", "0x10", str(2**63), "1e3"])
def test_a_seed_that_is_not_an_integer_in_range(env, seed):
    env.setenv("DIFFUSION_LAB_SEED", seed)
    message = _refused("DIFFUSION_LAB_SEED", repr(seed), "(make SEED=...)", "an integer from 0 to 2**63-1")
    assert message == (f"bad build setting DIFFUSION_LAB_SEED={seed!r} (make SEED=...): "
                       f"the seed must be an integer from 0 to 2**63-1 ({MAX_SEED})")


def test_an_unknown_profile(env):
    env.setenv("DIFFUSION_LAB_PROFILE", "bogus")
    _refused("DIFFUSION_LAB_PROFILE", "'bogus'", "(make PROFILE=...)", "tiny, quick or full")


def test_an_unknown_backend(env):
    env.setenv("DIFFUSION_LAB_BACKEND", "stable-diffusion")
    _refused("DIFFUSION_LAB_BACKEND", "'stable-diffusion'", "(make BACKEND=...)", "mnist or deepfloyd")


@pytest.mark.parametrize("device", ["gpu", "metal", "mps:0", "cuda:x", "cpu:0", "CUDA"])
def test_an_unknown_device(env, device):
    env.setattr(torch.cuda, "is_available", lambda: False)
    env.setattr(torch.backends.mps, "is_available", lambda: False)
    env.setenv("DIFFUSION_LAB_DEVICE", device)
    message = _refused("DIFFUSION_LAB_DEVICE", repr(device), "cpu, cuda, cuda:N or mps")
    assert message.endswith("this machine allows cpu (empty: the first of cuda, mps and cpu it has, cpu here)")


@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_without_a_gpu(env, device):
    env.setattr(torch.cuda, "is_available", lambda: False)
    env.setattr(torch.backends.mps, "is_available", lambda: False)
    env.setenv("DIFFUSION_LAB_DEVICE", device)
    _refused("DIFFUSION_LAB_DEVICE", repr(device), "CUDA is not available here", "use cpu")


def test_mps_without_an_apple_gpu(env):
    """What `DIFFUSION_LAB_DEVICE=mps make site` says on this (non-Apple) machine: one line that
    names the variable, the value and the devices allowed here (tests/test_devices.py: the CLI)."""
    env.setattr(torch.backends.mps, "is_available", lambda: False)
    env.setattr(torch.cuda, "is_available", lambda: False)
    env.setenv("DIFFUSION_LAB_DEVICE", "mps")
    message = _refused("DIFFUSION_LAB_DEVICE", "'mps'", "MPS is not available here", "sees no Apple GPU")
    assert message.endswith("; use cpu")


def test_mps_where_there_is_one(env):
    env.setattr(torch.backends.mps, "is_available", lambda: True)
    env.setenv("DIFFUSION_LAB_DEVICE", "mps")
    assert BuildContext.from_env().device == torch.device("mps")


def test_the_mkdocs_hook_stops_on_mps_here_with_the_one_line(env):
    """What `DIFFUSION_LAB_DEVICE=mps mkdocs build --strict` does first on a machine without MPS,
    without building: gen/settings_hook.py's on_config raises mkdocs' one-line PluginError."""
    import importlib.util

    from mkdocs.exceptions import PluginError

    env.setattr(torch.backends.mps, "is_available", lambda: False)
    env.setattr(torch.cuda, "is_available", lambda: False)
    env.setenv("DIFFUSION_LAB_DEVICE", "mps")
    spec = importlib.util.spec_from_file_location("settings_hook", Path(__file__).parents[1] / "gen" / "settings_hook.py")
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    with pytest.raises(PluginError) as caught:
        hook.on_config({})
    assert str(caught.value) == ("bad build setting DIFFUSION_LAB_DEVICE='mps': MPS is not available here "
                                 f"(torch {torch.__version__} sees no Apple GPU; MPS needs an Apple-silicon Mac); use cpu")


def test_a_cuda_device_the_machine_lacks(env):
    env.setattr(torch.cuda, "is_available", lambda: True)
    env.setattr(torch.cuda, "device_count", lambda: 2)
    env.setattr(torch.backends.mps, "is_available", lambda: False)
    env.setenv("DIFFUSION_LAB_DEVICE", "cuda:2")
    _refused("DIFFUSION_LAB_DEVICE", "'cuda:2'", "this machine has 2 CUDA devices: use cuda, cuda:0 to cuda:1 or cpu")


def test_a_missing_cache_folder_is_created(env, tmp_path):
    env.setenv("DIFFUSION_LAB_CACHE", str(tmp_path / "a" / "b" / "cache"))
    assert BuildContext.from_env().cache_dir.is_dir()


def test_a_cache_that_is_a_file(env, tmp_path):
    blocker = tmp_path / "not-a-cache"
    blocker.write_text("x")
    env.setenv("DIFFUSION_LAB_CACHE", str(blocker))
    _refused("DIFFUSION_LAB_CACHE", "(make CACHE_DIR=...)", f"must be a folder, but {blocker} is a file")


def test_a_cache_under_a_file(env, tmp_path):
    blocker = tmp_path / "not-a-cache"
    blocker.write_text("x")
    env.setenv("DIFFUSION_LAB_CACHE", str(blocker / "cache"))
    _refused("DIFFUSION_LAB_CACHE", f"{blocker / 'cache'} cannot be created: {blocker} is a file")


def test_a_read_only_cache_is_accepted(env, tmp_path):
    """A cache that holds every run can be read without writing: refusing it would break shared,
    read-only caches. A miss in it is reported where it happens (test_run_cache)."""
    cache = tmp_path / "cache"
    cache.mkdir()
    env.setenv("DIFFUSION_LAB_CACHE", str(cache))
    assert BuildContext.from_env().cache_dir == cache


def test_a_cache_that_cannot_be_created(env, tmp_path):
    def refuse(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    env.setattr(Path, "mkdir", refuse)
    env.setenv("DIFFUSION_LAB_CACHE", str(tmp_path / "new"))
    _refused("DIFFUSION_LAB_CACHE", f"{tmp_path / 'new'} cannot be created: Permission denied in {tmp_path}")


def test_overridden_settings_are_not_read(env, tmp_path):
    env.setenv("DIFFUSION_LAB_SEED", "abc")
    env.setenv("DIFFUSION_LAB_PROFILE", "bogus")
    ctx = BuildContext.from_env(seed=3, profile="quick")
    assert (ctx.seed, ctx.profile) == (3, "quick")


# --- the site build stops at once, with the line and no traceback --------------------------------

@pytest.mark.parametrize("settings, message", [
    (dict(DIFFUSION_LAB_SEED="abc"),
     "bad build setting DIFFUSION_LAB_SEED='abc' (make SEED=...): "
     f"the seed must be an integer from 0 to 2**63-1 ({MAX_SEED})"),
    (dict(profile="bogus"),
     "bad build setting DIFFUSION_LAB_PROFILE='bogus' (make PROFILE=...): the profile must be tiny, quick or full"),
    (dict(backend="sd"),
     "bad build setting DIFFUSION_LAB_BACKEND='sd' (make BACKEND=...): the backend must be mnist or deepfloyd"),
], ids=["seed", "profile", "backend"])
def test_mkdocs_build_stops_with_one_line(tmp_path, settings, message):
    site = tmp_path / "site"
    result = build_site(site, tmp_path / "cache", **settings)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and message in errors[0], output
    assert not site.exists(), "the build went on past the bad setting"


def test_mkdocs_build_names_an_unusable_cache(tmp_path):
    blocker = tmp_path / "not-a-cache"
    blocker.write_text("x")
    result = build_site(tmp_path / "site", blocker / "cache")
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in output, output
    assert f"the run cache must be a folder, but {blocker / 'cache'} cannot be created: {blocker} is a file" in output


def test_mkdocs_build_on_deepfloyd_without_weights_stops_on_the_weights(tmp_path, monkeypatch):
    """BACKEND=deepfloyd with no DIFFUSION_LAB_IF_* settings on a machine without IF: the one error
    line is about the missing stage I weights (not about prompts), and it says both ways to go on."""
    import os

    for name in [name for name in os.environ if name.startswith("DIFFUSION_LAB_IF_")]:
        monkeypatch.delenv(name)
    site = tmp_path / "site"
    result = build_site(site, tmp_path / "cache", backend="deepfloyd", HF_HUB_OFFLINE="1",
                        DIFFUSION_LAB_IF_HF_CACHE=str(tmp_path / "empty-hf-cache"))
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1, output
    assert "BACKEND=deepfloyd cannot run: DeepFloyd IF stage I weights 'DeepFloyd/IF-I-XL-v1.0'" in errors[0]
    assert "DIFFUSION_LAB_IF_STAGE1" in errors[0] and "DIFFUSION_LAB_IF_PROMPT_EMBEDS" in errors[0]
    assert not site.exists(), "the build went on past the missing weights"
