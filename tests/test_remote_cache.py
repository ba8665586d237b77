"""The shared run cache (runcache/remote.py) against real servers on 127.0.0.1: moto's S3 server and
Python's http.server (tests/s3server.py), plus hand-made servers that stop mid-answer or answer
too slowly. Each test reads a store with an empty local cache, as a reader's fresh clone would."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import s3fs
import torch
from s3server import free_port, http_server

from diffusion_lab.runcache import context, remote, runs
from diffusion_lab.runcache.context import BuildContext, BuildSettingError
from diffusion_lab.runcache.entries import CHECKSUM, manifest_checksum
from diffusion_lab.runcache.provenance import key_versions
from diffusion_lab.runcache.runs import cached_run

REPO = Path(__file__).resolve().parents[1]


class Compute:
    """A run body that counts its calls and writes a tensor from its generator and a JSON file in a
    subfolder (so entries have nested file names)."""

    def __init__(self, size: int = 1000):
        self.calls, self.size = 0, size

    def __call__(self, scratch):
        self.calls += 1
        scratch.save("values.pt", torch.randn(self.size, generator=scratch.generator("values")))
        scratch.save("info/meta.json", {"size": self.size})
        return {"size": self.size}


@pytest.fixture(autouse=True)
def fresh_stores(monkeypatch):
    """Each test asks its stores afresh (a store found down stays down for a process), and logs its
    own runs only."""
    remote.store_for.cache_clear()
    context._store_precision.cache_clear()
    monkeypatch.setattr(runs, "BUILD_LOG", [])
    monkeypatch.setattr(runs, "FETCHED_THIS_BUILD", set())
    yield
    remote.store_for.cache_clear()
    context._store_precision.cache_clear()


@pytest.fixture
def s3_env(s3, monkeypatch):
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    return s3


def _ctx(cache: Path, url: str = "", **changes) -> BuildContext:
    ctx = BuildContext(profile="tiny", backend="mnist", device=torch.device("cpu"), seed=0, cache_dir=cache,
                       force=False, precision_setting="fp32", cache_url=url)
    return dataclasses.replace(ctx, **changes)


def _produce(cache: Path, url: str, names=("a", "b", "c")) -> dict[str, runs.RunRecord]:
    """Compute one run per name in `cache` and push them all to the store at `url`."""
    producer = _ctx(cache)
    made = {name: cached_run(producer, f"exp/{name}", {"n": name}, Compute()) for name in names}
    remote.push(cache, remote.Store(url), say=lambda line: None)
    return made


def _lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("run cache:")]


# --- S3 (moto's server) ----------------------------------------------------------------------------


def test_a_reader_downloads_every_run_and_computes_none(s3_env, tmp_path):
    url = f"s3://{s3_env.new_bucket()}/runs"
    made = _produce(tmp_path / "producer", url)
    reader = _ctx(tmp_path / "reader", url)
    compute = Compute()
    read = {name: cached_run(reader, f"exp/{name}", {"n": name}, compute) for name in made}
    assert compute.calls == 0
    assert [record.origin for record in read.values()] == ["remote"] * 3
    for name, record in read.items():
        assert record.key == made[name].key and record.device == made[name].device
        assert torch.equal(record.load("values.pt"), made[name].load("values.pt"))
        assert record.load("info/meta.json") == {"size": 1000}
    # Published into the reader's cache: read again, it is a local hit.
    assert cached_run(reader, "exp/a", {"n": "a"}, compute).origin == "local"


def test_a_partial_store_serves_what_it_has_and_the_rest_is_computed(s3_env, tmp_path):
    url = f"s3://{s3_env.new_bucket()}/runs"
    _produce(tmp_path / "producer", url, names=("a", "b"))
    reader = _ctx(tmp_path / "reader", url)
    compute = Compute()
    origins = [cached_run(reader, f"exp/{name}", {"n": name}, compute).origin for name in ("a", "b", "c")]
    assert origins == ["remote", "remote", "computed"] and compute.calls == 1


def test_force_asks_the_store_nothing(s3_env, tmp_path):
    url = f"s3://{s3_env.new_bucket()}/runs"
    _produce(tmp_path / "producer", url, names=("a",))
    compute = Compute()
    assert cached_run(_ctx(tmp_path / "reader", url, force=True), "exp/a", {"n": "a"}, compute).origin == "computed"
    assert compute.calls == 1


def test_a_tampered_file_is_refused_with_one_line_and_computed_here(s3_env, tmp_path, capsys):
    url = f"s3://{s3_env.new_bucket()}/runs"
    made = _produce(tmp_path / "producer", url, names=("a",))
    manifest = json.loads(made["a"].path("manifest.json").read_text())
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    checksum = manifest["files"]["values.pt"]
    object_path = f"{url[len('s3://'):]}/objects/{checksum[:2]}/{checksum}"
    fs.pipe_file(object_path, torch.zeros(1).numpy().tobytes() + fs.cat_file(object_path)[4:])
    capsys.readouterr()
    compute = Compute()
    record = cached_run(_ctx(tmp_path / "reader", url), "exp/a", {"n": "a"}, compute)
    assert record.origin == "computed" and compute.calls == 1
    assert torch.equal(record.load("values.pt"), made["a"].load("values.pt"))
    lines = _lines(capsys)
    assert len(lines) == 1, lines
    assert "refused exp__a-" in lines[0] and "values.pt does not match its checksum" in lines[0]


def _plant(fs, url: str, name: str, key: str, files: dict[str, bytes], **manifest_fields) -> None:
    """Put into the store a manifest for (name, key) listing `files`, with a valid checksum of its own."""
    root = url[len("s3://"):]
    listing = {}
    for filename, data in files.items():
        checksum = hashlib.sha256(data).hexdigest()
        fs.pipe_file(f"{root}/objects/{checksum[:2]}/{checksum}", data)
        listing[filename] = checksum
    manifest = {"name": name, "key": key, "params": {}, "seed": 0, "files": listing, "compute_s": 0.0,
                "device": "cpu", "versions": {}, "commit": "x", "created": "now", "metrics": {}, **manifest_fields}
    manifest[CHECKSUM] = manifest_checksum(manifest)
    fs.pipe_file(f"{root}/runs/{remote.entry_name(name, key)}.json", json.dumps(manifest).encode())


def _key(ctx: BuildContext, name: str, params: dict, compute) -> str:
    return runs.cache_key(name, params, ctx.seed, ctx.precision, runs.compute_modules(compute))


def test_an_entry_whose_file_names_escape_it_is_refused_and_nothing_is_written_outside(s3_env, tmp_path, capsys):
    url = f"s3://{s3_env.new_bucket()}/runs"
    reader = _ctx(tmp_path / "cache" / "reader", url)
    compute = Compute()
    key = _key(reader, "exp/a", {"n": "a"}, compute)
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    _plant(fs, url, "exp/a", key, {"../x": b"escaped", "values.pt": b"0"})
    capsys.readouterr()
    record = cached_run(reader, "exp/a", {"n": "a"}, compute)
    assert record.origin == "computed" and compute.calls == 1
    lines = _lines(capsys)
    assert len(lines) == 1 and "refused exp__a-" in lines[0] and "'../x' would escape the entry" in lines[0]
    assert not [path for path in tmp_path.rglob("x") if path.is_file()]


@pytest.mark.parametrize("files, why", [
    ({"/etc/passwd": b"x"}, "would escape"),
    ({"a\\..\\..\\x": b"x"}, "would escape"),
    ({"C:x": b"x"}, "would escape"),
    ({"manifest.json": b"{}"}, "would escape"),
])
def test_file_names_that_are_not_plain_are_refused(s3_env, tmp_path, capsys, files, why):
    url = f"s3://{s3_env.new_bucket()}/runs"
    reader = _ctx(tmp_path / "reader", url)
    compute = Compute()
    _plant(s3fs.S3FileSystem(skip_instance_cache=True), url, "exp/a", _key(reader, "exp/a", {"n": "a"}, compute), files)
    capsys.readouterr()
    assert cached_run(reader, "exp/a", {"n": "a"}, compute).origin == "computed"
    assert why in _lines(capsys)[0]


def test_malformed_and_foreign_manifests_are_refused(s3_env, tmp_path, capsys):
    url = f"s3://{s3_env.new_bucket()}/runs"
    reader = _ctx(tmp_path / "reader", url)
    compute = Compute()
    fs = s3fs.S3FileSystem(skip_instance_cache=True)

    def manifest_path(name: str) -> str:
        key = _key(reader, f"exp/{name}", {"n": name}, compute)
        return f"{url[len('s3://'):]}/runs/{remote.entry_name(f'exp/{name}', key)}.json"

    fs.pipe_file(manifest_path("a"), b"{not json")
    fs.pipe_file(manifest_path("b"), json.dumps({"name": "exp/b"}).encode())
    fs.pipe_file(manifest_path("e"), b"[" * 100_000)  # deeper than the JSON parser recurses
    # A valid manifest of another run (c), stored under this run's (d) name.
    _plant(fs, url, "exp/c", _key(reader, "exp/c", {"n": "c"}, compute), {"values.pt": b"0"})
    fs.pipe_file(manifest_path("d"), fs.cat_file(manifest_path("c")))
    capsys.readouterr()
    for name in ("a", "b", "d", "e"):
        assert cached_run(reader, f"exp/{name}", {"n": name}, compute).origin == "computed"
    lines = _lines(capsys)
    assert len(lines) == 4
    assert "its manifest is not JSON" in lines[0]
    assert "checksum does not match" in lines[1]
    assert "not one of this run" in lines[2]
    assert "its manifest is not JSON" in lines[3]


def test_an_oversized_file_is_refused(s3_env, tmp_path, capsys):
    url = f"s3://{s3_env.new_bucket()}/runs"
    made = _produce(tmp_path / "producer", url, names=("a",))
    store = remote.Store(url, max_file_bytes=1000)
    reader = _ctx(tmp_path / "reader", url)
    assert store.fetch("exp/a", made["a"].key, reader.cache_dir / "runs" / "x", reader.cache_dir) is None
    assert "over the limit of 1,000" in capsys.readouterr().err


def test_concurrent_pushers_of_one_key_leave_one_valid_entry(s3_env, tmp_path):
    """Two producers computed the same key with different bytes (a nondeterministic run) and push at
    the same time, from two processes: a reader then gets one complete, valid entry."""
    url = f"s3://{s3_env.new_bucket()}/runs"
    for producer, size in (("one", 1000), ("two", 2000)):
        cached_run(_ctx(tmp_path / producer), "exp/a", {"n": "a"}, Compute(size))
    command = [sys.executable, "-m", "diffusion_lab", "cache-push", "--to", url, "--cache-dir"]
    pushers = [subprocess.Popen([*command, str(tmp_path / producer)], cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for producer in ("one", "two")]
    for pusher in pushers:
        out, err = pusher.communicate(timeout=300)
        assert pusher.returncode == 0, out + err
    compute = Compute()
    record = cached_run(_ctx(tmp_path / "reader", url), "exp/a", {"n": "a"}, compute)
    assert record.origin == "remote" and compute.calls == 0
    assert record.load("values.pt").shape[0] == record.load("info/meta.json")["size"] in (1000, 2000)


def test_push_skips_what_the_store_has_and_notes_profiles_and_precisions(s3_env, tmp_path):
    url = f"s3://{s3_env.new_bucket()}/runs"
    made = _produce(tmp_path / "producer", url, names=("a", "b"))
    again = remote.push(tmp_path / "producer", remote.Store(url), say=lambda line: None)
    assert again.uploaded == [] and len(again.present) == 2
    index = remote.Store(url).index()
    assert sorted(index["runs"]["tiny"]["fp32"]) == sorted(record.key for record in made.values())


def test_a_cpu_whose_own_precision_the_store_lacks_adopts_the_stores(s3_env, tmp_path, monkeypatch, capsys):
    """A store filled at bf16 (a GPU, say) serves a CPU whose rule says fp32: with PRECISION=auto the
    reader computes at bf16 too, and says so; PRECISION=fp32 keeps fp32 and reads nothing."""
    url = f"s3://{s3_env.new_bucket()}/runs"
    producer = _ctx(tmp_path / "producer", precision_setting="bf16")
    made = cached_run(producer, "exp/a", {"n": "a"}, Compute())
    remote.push(tmp_path / "producer", remote.Store(url), say=lambda line: None)
    monkeypatch.setattr(context, "network_precision", lambda device: "fp32")
    reader = _ctx(tmp_path / "reader", url, precision_setting="auto")
    assert reader.precision == "bf16"
    assert "holds the tiny runs at bf16" in capsys.readouterr().err
    compute = Compute()
    assert cached_run(reader, "exp/a", {"n": "a"}, compute).key == made.key and compute.calls == 0
    pinned = _ctx(tmp_path / "pinned", url, precision_setting="fp32")
    assert cached_run(pinned, "exp/a", {"n": "a"}, compute).origin == "computed"


# --- what is key and what is provenance ------------------------------------------------------------


def test_the_key_holds_the_precision_but_not_the_device(tmp_path):
    compute = Compute()
    cpu = _ctx(tmp_path / "cache")
    mps = dataclasses.replace(cpu, device=torch.device("mps"))
    assert _key(cpu, "exp/a", {}, compute) == _key(mps, "exp/a", {}, compute)
    bf16 = dataclasses.replace(cpu, precision_setting="bf16")
    assert _key(cpu, "exp/a", {}, compute) != _key(bf16, "exp/a", {}, compute)


def test_the_key_holds_releases_not_local_tags(monkeypatch):
    from diffusion_lab.runcache import provenance

    monkeypatch.setattr(provenance, "library_versions", lambda: {"python": "3.11.7", "torch": "2.14.1+cu130"})
    assert key_versions() == {"python": "3.11", "torch": "2.14.1"}


def test_auto_in_a_recipe_runs_at_the_precision_in_the_key(tmp_path):
    from diffusion_lab.mnist.precision import resolve_precision

    seen = []

    def compute(scratch):
        seen.append(resolve_precision("auto", "cpu"))

    for precision in ("bf16", "fp32"):
        cached_run(_ctx(tmp_path / precision, precision_setting=precision), "exp/p", {}, compute)
    assert seen == ["bf16", "fp32"]


def test_bad_store_urls_and_precisions_are_one_line_settings_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFUSION_LAB_CACHE", str(tmp_path))
    for variable, value, words in (("DIFFUSION_LAB_CACHE_URL", "ftp://host/x", "starts with s3://"),
                                   ("DIFFUSION_LAB_CACHE_URL", "bucket/prefix", "a store is a URL"),
                                   ("DIFFUSION_LAB_PRECISION", "fp16", "must be auto, bf16 or fp32")):
        monkeypatch.setenv(variable, value)
        with pytest.raises(BuildSettingError) as raised:
            BuildContext.from_env()
        assert words in str(raised.value) and "\n" not in str(raised.value)
        monkeypatch.delenv(variable)


# --- read-only https (http.server) and stores that fail -------------------------------------------


def test_a_static_web_server_serves_a_store_read_only(tmp_path, capsys):
    folder = tmp_path / "store"
    made = _produce(tmp_path / "producer", folder.as_uri(), names=("a", "b"))
    with http_server(folder) as url:
        compute = Compute()
        reader = _ctx(tmp_path / "reader", url)
        records = [cached_run(reader, f"exp/{name}", {"n": name}, compute) for name in ("a", "b")]
        assert [record.origin for record in records] == ["remote", "remote"] and compute.calls == 0
        assert torch.equal(records[0].load("values.pt"), made["a"].load("values.pt"))
        pushed = subprocess.run([sys.executable, "-m", "diffusion_lab", "cache-push", "--to", url, "--cache-dir",
                                 str(tmp_path / "producer")], capture_output=True, text=True, timeout=120)
    assert pushed.returncode == 2 and "read-only" in pushed.stderr and pushed.stderr.count("\n") == 1


class _Misbehaving(http.server.SimpleHTTPRequestHandler):
    """Serves a store's folder, but its objects badly: `mode` "cut" sends half an object and closes
    the connection; "slow" waits before answering."""

    mode = "cut"

    def do_GET(self):
        if "/objects/" not in self.path:
            return super().do_GET()
        if self.mode == "slow":
            time.sleep(3)
            return super().do_GET()
        data = Path(self.translate_path(self.path)).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        """Quiet: the tests read the build's lines on stderr, not the server's."""


@pytest.mark.parametrize("mode", ["cut", "slow"])
def test_a_server_that_stops_or_stalls_mid_download_costs_one_line_and_a_local_run(
        tmp_path, capsys, monkeypatch, mode):
    folder = tmp_path / "store"
    _produce(tmp_path / "producer", folder.as_uri(), names=("a", "b"))
    monkeypatch.setattr(remote, "READ_TIMEOUT_S", 1.0)
    handler = type("Handler", (_Misbehaving,), {"mode": mode})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()),
                                             lambda *args: handler(*args, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        compute = Compute()
        reader = _ctx(tmp_path / "reader", url)
        capsys.readouterr()
        started = time.monotonic()
        origins = [cached_run(reader, f"exp/{name}", {"n": name}, compute).origin for name in ("a", "b")]
        elapsed = time.monotonic() - started
    finally:
        server.shutdown()
    assert origins == ["computed", "computed"] and compute.calls == 2
    lines = _lines(capsys)
    assert len(lines) == 1 and f"the store {url} failed" in lines[0], lines
    assert elapsed < 30, "a stalled store must not hang the build"
    assert not list((tmp_path / "reader" / "tmp").glob("*")), "no half-written scratch folder is left"


def test_a_store_that_is_down_is_said_once_and_not_asked_again(tmp_path, capsys):
    url = f"http://127.0.0.1:{free_port()}"
    compute = Compute()
    reader = _ctx(tmp_path / "reader", url)
    origins = [cached_run(reader, f"exp/{name}", {"n": name}, compute).origin for name in ("a", "b", "c")]
    assert origins == ["computed"] * 3
    lines = _lines(capsys)
    assert len(lines) == 1 and "failed" in lines[0] and "asks the store nothing more" in lines[0]
    assert remote.store_for(url).down is not None


def test_a_file_store_is_written_by_renames(tmp_path):
    """file:// stores get each object whole: no temporary file is left, the manifest is valid JSON."""
    folder = tmp_path / "store"
    _produce(tmp_path / "producer", folder.as_uri(), names=("a",))
    assert not [path for path in folder.rglob(".*")]
    (manifest,) = (folder / "runs").iterdir()
    assert json.loads(manifest.read_text())["name"] == "exp/a"

