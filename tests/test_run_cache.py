import dataclasses
import pytest
import torch

from diffusion_lab.runcache import runs
from diffusion_lab.runcache.code_fingerprint import source_fingerprint
from diffusion_lab.runcache.runs import cached_run


class CountingCompute:
    """A run body that records how often it ran and writes one tensor drawn from its generator."""

    def __init__(self):
        self.calls = 0

    def __call__(self, scratch):
        self.calls += 1
        scratch.save("values.pt", torch.randn(1000, generator=scratch.generator("values")))
        return {"calls": self.calls}


def test_identical_params_hit_the_cache(ctx):
    compute = CountingCompute()
    first = cached_run(ctx, "exp", {"a": 1, "b": [1, 2]}, compute)
    second = cached_run(ctx, "exp", {"b": [1, 2], "a": 1}, compute)
    assert (first.hit, second.hit) == (False, True)
    assert compute.calls == 1
    assert second.key == first.key
    assert torch.equal(first.load("values.pt"), second.load("values.pt"))
    assert second.metrics == {"calls": 1}


@pytest.mark.parametrize(
    "change",
    [
        dict(params={"a": 2}),
        dict(params={"a": 1, "extra": 0}),
        dict(name="other-exp"),
        dict(seed=1),
    ],
)
def test_any_changed_param_misses(ctx, change):
    compute = CountingCompute()
    cached_run(ctx, "exp", {"a": 1}, compute)
    again = cached_run(ctx, change.get("name", "exp"), change.get("params", {"a": 1}), compute, seed=change.get("seed"))
    assert not again.hit
    assert compute.calls == 2


def test_changed_package_source_misses(ctx, monkeypatch):
    compute = CountingCompute()
    cached_run(ctx, "exp", {"a": 1}, compute)
    monkeypatch.setattr(runs, "loaded_source_fingerprint", lambda modules=None: "a-different-source")
    again = cached_run(ctx, "exp", {"a": 1}, compute)
    assert not again.hit and compute.calls == 2


def test_source_fingerprint_follows_computation_code_only(tmp_path):
    package = tmp_path / "pkg"
    (package / "report").mkdir(parents=True)
    (package / "sampling.py").write_text("x = 1\n")
    (package / "report" / "page.py").write_text("y = 1\n")
    before = source_fingerprint(package)
    (package / "report" / "page.py").write_text("y = 2\n")
    assert source_fingerprint(package) == before, "rendering code must not invalidate runs"
    (package / "sampling.py").write_text("x = 2\n")
    assert source_fingerprint(package) != before


def _package(root, files: dict[str, str]):
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_a_runs_fingerprint_follows_only_the_code_it_imports(tmp_path):
    package = _package(tmp_path / "pkg", {
        "__init__.py": "",
        "training.py": "def train():\n    from pkg.unet import UNet  # a lazy import counts too\n",
        "unet.py": "class UNet: pass\n",
        "sampling.py": "from . import unet\n",  # relative imports resolve
        "editing.py": "x = 1\n",
    })
    training = source_fingerprint(package, ["pkg.training"])
    sampling = source_fingerprint(package, ["pkg.sampling"])
    everything = source_fingerprint(package)
    (package / "editing.py").write_text("x = 2\n")
    assert source_fingerprint(package, ["pkg.training"]) == training, "unrelated code must not retrain"
    assert source_fingerprint(package) != everything
    (package / "unet.py").write_text("class UNet: width = 2\n")
    assert source_fingerprint(package, ["pkg.training"]) != training
    assert source_fingerprint(package, ["pkg.sampling"]) != sampling
    assert source_fingerprint(package, ["tests.somewhere"]) == source_fingerprint(package), (
        "code outside the package is not followed: the whole package counts"
    )


def test_compute_modules_include_what_the_compute_function_holds():
    from diffusion_lab.experiments.parta_plan import MNIST_PLAN

    plan = MNIST_PLAN

    def compute(scratch):
        return {"prompt": plan.generic_prompt}

    assert runs.compute_modules(compute) == ("diffusion_lab.experiments.parta_plan", __name__)
    assert runs.compute_modules(CountingCompute()) == (__name__,)


def test_truncated_entry_is_recomputed(ctx):
    compute = CountingCompute()
    first = cached_run(ctx, "exp", {"a": 1}, compute)
    original = first.load("values.pt")
    data = first.path("values.pt").read_bytes()
    first.path("values.pt").write_bytes(data[: len(data) // 2])
    again = cached_run(ctx, "exp", {"a": 1}, compute)
    assert not again.hit and compute.calls == 2
    assert torch.equal(again.load("values.pt"), original)
    assert cached_run(ctx, "exp", {"a": 1}, compute).hit


def test_entry_without_manifest_is_recomputed(ctx):
    compute = CountingCompute()
    first = cached_run(ctx, "exp", {"a": 1}, compute)
    first.path(runs.MANIFEST).unlink()
    assert not cached_run(ctx, "exp", {"a": 1}, compute).hit


def test_force_recomputes(ctx):
    compute = CountingCompute()
    cached_run(ctx, "exp", {"a": 1}, compute)
    forced = cached_run(dataclasses.replace(ctx, force=True), "exp", {"a": 1}, compute)
    assert not forced.hit and compute.calls == 2


def test_a_crash_leaves_nothing_behind(ctx):
    def crashes(scratch):
        scratch.save("partial.pt", torch.zeros(3))
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        cached_run(ctx, "exp", {"a": 1}, crashes)
    assert not (ctx.cache_dir / "runs").exists() or not list((ctx.cache_dir / "runs").iterdir())
    assert not list((ctx.cache_dir / "tmp").iterdir())
    compute = CountingCompute()
    assert not cached_run(ctx, "exp", {"a": 1}, compute).hit


def test_runs_are_logged_for_the_build_page(ctx):
    runs.BUILD_LOG.clear()
    compute = CountingCompute()
    cached_run(ctx, "exp", {"a": 1}, compute)
    cached_run(ctx, "exp", {"a": 1}, compute)
    assert [record.hit for record in runs.BUILD_LOG] == [False, True]
    runs.BUILD_LOG.clear()


def test_unserialisable_params_are_refused(ctx):
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        cached_run(ctx, "exp", {"a": object()}, CountingCompute())
