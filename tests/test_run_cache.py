import dataclasses
import errno
import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from diffusion_lab.runcache import entries, runs
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


def test_documenting_code_keeps_its_runs_and_changing_it_does_not(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "sampling.py").write_text('def step(x):\n    return x + 1\n')
    before = source_fingerprint(package)
    (package / "sampling.py").write_text(
        '"""Sampling."""\n\n\ndef step(x):\n    """x: (N,) float."""\n    # why: one more\n    return x + 1\n'
    )
    assert source_fingerprint(package) == before, "a docstring or a comment must not retrain anything"
    (package / "sampling.py").write_text('def step(x):\n    return x + 2\n')
    assert source_fingerprint(package) != before
    (package / "sampling.py").write_text('def step(x):\n    "a string that is not first"\n    return x + 1\n')
    assert source_fingerprint(package) == before
    (package / "sampling.py").write_text('def step(x):\n    x = "no docstring"\n    return x + 1\n')
    assert source_fingerprint(package) != before, "a string the code uses is code"


# Argument parsers print their module's docstring: no run reads it.
_DOCSTRING_READERS_ALLOWED = {"backends/tiny_if.py"}


def test_no_computation_reads_a_docstring():
    """The run cache's key ignores docstrings (`executable_code`), which is only right while no
    computation reads one: a run that stored a docstring would keep a stale copy."""
    import ast

    from diffusion_lab.runcache.code_fingerprint import PACKAGE_ROOT, computation_sources

    readers = []
    for path in computation_sources():
        relative = path.relative_to(PACKAGE_ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""
            if name in ("__doc__", "getdoc") and relative not in _DOCSTRING_READERS_ALLOWED:
                readers.append(f"{relative}:{node.lineno}")
    assert not readers, f"computation code reads docstrings at {readers}: move that to report/"


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
    first.path(entries.MANIFEST).unlink()
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


def test_runs_are_logged_for_the_build_page_once_each(ctx):
    runs.BUILD_LOG.clear()
    compute = CountingCompute()
    first = cached_run(ctx, "exp", {"a": 1}, compute)
    assert cached_run(ctx, "exp", {"a": 1}, compute).hit
    cached_run(dataclasses.replace(ctx, force=True), "exp", {"a": 1}, compute)
    other = cached_run(ctx, "exp", {"a": 2}, compute)
    assert runs.BUILD_LOG == [first, other], "a run read again is the run computed: listed once, as computed"
    runs.BUILD_LOG.clear()


def test_unserialisable_params_are_refused(ctx):
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        cached_run(ctx, "exp", {"a": object()}, CountingCompute())


def _published_copies(ctx) -> list:
    """The copies of every entry kept under versions/ (the lock files aside)."""
    return [path for path in (ctx.cache_dir / "versions").glob("*/*") if path.name != ".lock"]


def test_an_edited_manifest_is_recomputed_and_said_once(ctx, capsys):
    compute = CountingCompute()
    first = cached_run(ctx, "exp", {"a": 1}, compute)
    manifest = json.loads(first.path(entries.MANIFEST).read_text())
    assert manifest["metrics"] == {"calls": 1}
    manifest["metrics"]["calls"] = 99  # valid JSON, every file intact: only a metric changed
    first.path(entries.MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    again = cached_run(ctx, "exp", {"a": 1}, compute)
    assert not again.hit and compute.calls == 2 and again.metrics == {"calls": 2}
    third = cached_run(ctx, "exp", {"a": 1}, compute)
    assert third.hit and third.metrics == {"calls": 2}
    said = [line for line in capsys.readouterr().err.splitlines() if first.entry.name in line]
    assert len(said) == 1 and "checksum" in said[0], said


def test_a_second_writer_uses_the_copy_published_first(ctx):
    """Two writers of one key: the one publishing second discards its copy (with FORCE it replaces)."""
    first_writer = CountingCompute()

    def slower_writer(scratch):
        scratch.save("values.pt", torch.zeros(3))  # not what the first writer publishes
        cached_run(ctx, "exp", {"a": 1}, first_writer)  # publishes while this one computes
        return {"calls": -1}

    slower_writer.__module__ = CountingCompute.__module__  # same code, same key
    record = cached_run(ctx, "exp", {"a": 1}, slower_writer)
    assert not record.hit and record.metrics == {"calls": 1} and record.load("values.pt").shape == (1000,)
    assert len(_published_copies(ctx)) == 1 and not list((ctx.cache_dir / "tmp").iterdir())

    forced = cached_run(dataclasses.replace(ctx, force=True), "exp", {"a": 1}, slower_writer)
    assert forced.metrics == {"calls": -1} and torch.equal(forced.load("values.pt"), torch.zeros(3))
    assert len(_published_copies(ctx)) == 1 and not list((ctx.cache_dir / "tmp").iterdir())


def test_a_reader_whose_copy_is_replaced_reads_the_entry_again(ctx, monkeypatch, capsys):
    compute = CountingCompute()
    cached_run(ctx, "exp", {"a": 1}, compute)
    checksum = entries.file_sha256
    replaced = []

    def replaced_while_read(path):
        if not replaced:  # a FORCE build replaces the entry (and deletes this copy) mid-read
            replaced.append(path)
            cached_run(dataclasses.replace(ctx, force=True), "exp", {"a": 1}, compute)
        return checksum(path)

    monkeypatch.setattr(entries, "file_sha256", replaced_while_read)
    record = cached_run(ctx, "exp", {"a": 1}, compute)
    assert replaced and record.hit and record.metrics == {"calls": 2}
    assert "recomputing" not in capsys.readouterr().err


def _is_pointer(record) -> bool:
    """Whether the run's entry is published as a pointer (a file naming its copy), not a link or folder."""
    in_versions = record.dir.parent == entries.versions_dir(record.entry)
    return record.entry.is_file() and not record.entry.is_symlink() and in_versions


def test_an_entry_is_a_pointer_file_naming_the_copy_read(ctx):
    record = cached_run(ctx, "exp", {"a": 1}, CountingCompute())
    assert _is_pointer(record) and record.entry.read_text().strip() == record.dir.name
    assert (record.dir / entries.MANIFEST).is_file() and record.path("values.pt") == record.dir / "values.pt"


def test_an_entry_in_the_folder_layout_is_rebuilt_as_a_pointer(ctx):
    """Caches written before entries were links hold a folder whose manifest has no checksum."""
    compute = CountingCompute()
    first = cached_run(ctx, "exp", {"a": 1}, compute)
    manifest = json.loads(first.path(entries.MANIFEST).read_text())
    del manifest[entries.CHECKSUM]
    first.path(entries.MANIFEST).write_text(json.dumps(manifest))
    first.entry.unlink()
    first.dir.rename(first.entry)
    stale = first.entry.with_name(f".{first.entry.name}.stale-0123abcd")  # left by replacing an entry then
    (stale / "nested").mkdir(parents=True)
    again = cached_run(ctx, "exp", {"a": 1}, compute)
    assert not again.hit and _is_pointer(again) and cached_run(ctx, "exp", {"a": 1}, compute).hit
    assert not stale.exists()
    assert len(_published_copies(ctx)) == 1 and not list((ctx.cache_dir / "tmp").iterdir())


def _as_link(record) -> None:
    """Publish a run's entry as caches written before pointers did: runs/<entry> -> ../versions/<entry>/<copy>."""
    record.entry.unlink()
    os.symlink(os.path.relpath(record.dir, record.entry.parent), record.entry)


def test_an_entry_published_as_a_link_is_read_and_becomes_a_pointer_when_replaced(ctx):
    """Developers' caches written before pointers keep their trained models."""
    compute = CountingCompute()
    first = cached_run(ctx, "exp", {"a": 1}, compute)
    _as_link(first)
    read = cached_run(ctx, "exp", {"a": 1}, compute)
    assert read.hit and compute.calls == 1 and read.dir == first.dir and read.entry.is_symlink()
    assert torch.equal(read.load("values.pt"), first.load("values.pt"))
    forced = cached_run(dataclasses.replace(ctx, force=True), "exp", {"a": 1}, compute)
    assert not forced.hit and compute.calls == 2 and _is_pointer(forced) and not first.dir.exists()
    assert len(_published_copies(ctx)) == 1 and not list((ctx.cache_dir / "tmp").iterdir())


def test_a_writer_that_finds_a_link_keeps_its_copy_and_makes_it_a_pointer(ctx):
    compute = CountingCompute()
    first = cached_run(ctx, "exp", {"a": 1}, compute)
    _as_link(first)
    scratch = entries.new_scratch(ctx.cache_dir, "label", "exp")  # a second writer of the same run
    try:
        manifest = entries.write_manifest(scratch, dict(json.loads(first.path(entries.MANIFEST).read_text()),
                                                        metrics={"calls": -1}))
        published = entries.publish(scratch, manifest, first.entry, force=False)
    finally:
        entries.end_scratch(scratch)
    assert published.folder == first.dir and published.manifest["metrics"] == {"calls": 1}
    assert first.entry.is_file() and not first.entry.is_symlink() and cached_run(ctx, "exp", {"a": 1}, compute).hit
    assert len(_published_copies(ctx)) == 1 and not list((ctx.cache_dir / "tmp").iterdir())


def test_a_record_follows_its_entry_when_a_force_build_replaced_its_copy(ctx):
    compute = CountingCompute()
    first = cached_run(ctx, "exp", {"a": 1}, compute)
    forced = cached_run(dataclasses.replace(ctx, force=True), "exp", {"a": 1}, compute)
    assert not first.dir.exists() and first.path("values.pt") == forced.dir / "values.pt"
    assert torch.equal(first.load("values.pt"), forced.load("values.pt"))


def _ended_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_scratch_of_an_ended_process_is_cleaned_and_others_kept(ctx):
    tmp = ctx.cache_dir / "tmp"
    host = socket.gethostname()
    dead = tmp / f"{_ended_pid()}@{host}@abcdef123456-0001"
    live = tmp / f"{os.getpid()}@{host}@abcdef123456-0002"
    elsewhere = tmp / f"{_ended_pid()}@not-{host}@abcdef123456-0003"
    for folder in (dead, live, elsewhere):
        (folder / "nested").mkdir(parents=True)
        (folder / "nested" / "partial.pt").write_bytes(b"half")
    cached_run(ctx, "exp", {"a": 1}, CountingCompute())
    assert not dead.exists()
    assert live.exists() and elsewhere.exists(), "a live run's folder, or another host's, is never deleted"


@pytest.mark.parametrize("umask, folder_mode, file_mode", [(0o022, 0o755, 0o644), (0o002, 0o775, 0o664)])
def test_entries_follow_the_umask(ctx, umask, folder_mode, file_mode):
    def nested(scratch):
        scratch.save("sub/values.pt", torch.zeros(3))
        return {}

    previous = os.umask(umask)
    try:
        record = cached_run(ctx, "exp", {"a": 1}, nested)
        cached_run(dataclasses.replace(ctx, force=True), "exp", {"a": 1}, nested)
    finally:
        os.umask(previous)
    paths = [ctx.cache_dir, *ctx.cache_dir.rglob("*")]
    assert record.path("sub/values.pt").resolve() in paths and record.path(entries.MANIFEST).resolve() in paths
    assert not [path for path in paths if path.is_symlink()], "entries are pointers, not links"
    for path in paths:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (folder_mode if path.is_dir() else file_mode), f"{path}: {oct(mode)}"


def test_a_read_only_cache_serves_its_runs_and_names_the_one_it_cannot_store(ctx, monkeypatch):
    """Simulated, since root writes through chmod: every folder creation in the cache is refused."""
    present = cached_run(ctx, "exp", {"a": 1}, CountingCompute())

    def read_only(self, *args, **kwargs):
        raise PermissionError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "mkdir", read_only)
    again = cached_run(ctx, "exp", {"a": 1}, CountingCompute())
    assert again.hit and again.key == present.key
    with pytest.raises(entries.CacheNotWritable) as refused:
        cached_run(ctx, "exp", {"a": 2}, CountingCompute())
    message = str(refused.value)
    assert "\n" not in message and "Traceback" not in message
    assert f"the run cache {ctx.cache_dir} cannot store the run exp, which it lacks: Read-only file system at" in message
    assert "point DIFFUSION_LAB_CACHE" in message
