"""The build's device (cuda, then mps, then cpu; each refused in one line where the machine lacks
it), its kind in the cache key, its line in each run's manifest, and the precision rule per device
type, on any machine: what the machine has is told to `choose_device`, not asked of it."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import subprocess
import sys

import pytest
import torch

from diffusion_lab.mnist import precision
from diffusion_lab.runcache import context as context_module
from diffusion_lab.runcache import machine
from diffusion_lab.runcache.context import (
    DEVICE_ORDER,
    PRECISION_RULES,
    Accelerators,
    BuildContext,
    BuildSettingError,
    choose_device,
    device_line,
)
from diffusion_lab.runcache.runs import cached_run

MACHINES = [Accelerators(cuda=cuda, mps=mps) for cuda, mps in itertools.product((0, 1, 2), (False, True))]


def _refusal(requested: str, available: Accelerators) -> str:
    with pytest.raises(BuildSettingError) as caught:
        choose_device(requested, available)
    message = str(caught.value)
    assert "\n" not in message and caught.value.variable == "DIFFUSION_LAB_DEVICE"
    assert message.startswith(f"bad build setting DIFFUSION_LAB_DEVICE={requested!r}: ")
    return message


# --- the choice -----------------------------------------------------------------------------------

@pytest.mark.parametrize("available", MACHINES, ids=str)
@pytest.mark.parametrize("requested", [None, "", "  "])
def test_the_default_is_cuda_then_mps_then_cpu(available, requested):
    expected = "cuda" if available.cuda else "mps" if available.mps else "cpu"
    assert choose_device(requested, available) == torch.device(expected)


@pytest.mark.parametrize("available", MACHINES, ids=str)
def test_every_device_the_machine_has_is_taken_and_every_other_refused(available):
    has = {"cpu": True, "cuda": available.cuda > 0, "cuda:0": available.cuda > 0, "cuda:1": available.cuda > 1,
           "mps": available.mps}
    for requested, present in has.items():
        if present:
            assert choose_device(requested, available) == torch.device(requested)
        else:
            message = _refusal(requested, available)
            assert message.endswith(f"use {available.allowed()}"), message


def test_what_is_allowed_here_in_words():
    assert Accelerators().allowed() == "cpu"
    assert Accelerators(mps=True).allowed() == "mps or cpu"
    assert Accelerators(cuda=1).allowed() == "cuda, cuda:0 or cpu"
    assert Accelerators(cuda=4, mps=True).allowed() == "cuda, cuda:0 to cuda:3, mps or cpu"


def test_mps_absent_names_the_variable_the_value_and_what_is_allowed():
    message = _refusal("mps", Accelerators(cuda=1))
    assert "MPS is not available here" in message and message.endswith("use cuda, cuda:0 or cpu")


def test_cuda_absent_where_mps_is_there_offers_mps():
    message = _refusal("cuda", Accelerators(mps=True))
    assert "CUDA is not available here" in message and message.endswith("use mps or cpu")


@pytest.mark.parametrize("requested, count", [("cuda:1", 1), ("cuda:2", 2), ("cuda:10", 2)])
def test_a_cuda_index_out_of_range(requested, count):
    message = _refusal(requested, Accelerators(cuda=count))
    assert f"this machine has {count} CUDA device{'s' if count > 1 else ''}" in message


@pytest.mark.parametrize("requested", ["gpu", "MPS", "mps:0", "cuda:", "cuda:-1", "cpu:0", "tpu"])
def test_an_unknown_value_lists_every_device_and_the_default_here(requested):
    message = _refusal(requested, Accelerators(mps=True))
    assert "the device must be cpu, cuda, cuda:N or mps; this machine allows mps or cpu" in message
    assert message.endswith("mps here)")


def test_from_env_takes_mps_from_the_accelerators_it_is_told(monkeypatch, tmp_path):
    monkeypatch.setenv("DIFFUSION_LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DIFFUSION_LAB_PROFILE", "tiny")
    monkeypatch.delenv("DIFFUSION_LAB_DEVICE", raising=False)
    assert BuildContext.from_env(accelerators=Accelerators(mps=True)).device == torch.device("mps")
    monkeypatch.setenv("DIFFUSION_LAB_DEVICE", "mps")
    assert BuildContext.from_env(accelerators=Accelerators(mps=True)).device == torch.device("mps")
    with pytest.raises(BuildSettingError, match="MPS is not available here"):
        BuildContext.from_env(accelerators=Accelerators(cuda=1))


def test_what_torch_sees_is_what_from_env_checks(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert Accelerators.detect() == Accelerators(cuda=0, mps=True)


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
def test_the_cli_refuses_mps_here_in_one_line(tmp_path):
    """`DIFFUSION_LAB_DEVICE=mps python -m diffusion_lab sample-digits ...` on a machine without MPS:
    exit 2, one line on stderr, nothing written (the site build says the same line: the mkdocs hook
    and the CLI both report BuildContext.from_env's BuildSettingError)."""
    out = tmp_path / "digits.npz"
    env = {**os.environ, "DIFFUSION_LAB_DEVICE": "mps", "DIFFUSION_LAB_PROFILE": "tiny",
           "DIFFUSION_LAB_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-m", "diffusion_lab", "sample-digits", "--out", str(out)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300, env=env)
    assert done.returncode == 2 and done.stdout == "", done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: bad build setting DIFFUSION_LAB_DEVICE='mps': MPS is not available here")
    assert not out.exists()


# --- the cache key and the manifest ---------------------------------------------------------------

def _ctx(device: str, tmp_path) -> BuildContext:
    return BuildContext(profile="tiny", backend="mnist", device=torch.device(device), seed=0,
                        cache_dir=tmp_path / "cache", force=False)


def test_the_device_line_names_model_precision_and_threads():
    assert device_line("cpu", "AMD EPYC 9654, AVX-512 BF16", "bf16", 1) == \
        "cpu (AMD EPYC 9654, AVX-512 BF16; bf16 autocast; 1 thread)"
    assert device_line("cpu", "Intel Xeon, AVX2", "fp32", 8) == "cpu (Intel Xeon, AVX2; fp32; 8 threads)"
    assert device_line("cuda", "NVIDIA H200", "bf16") == "cuda (NVIDIA H200; bf16 autocast)"
    assert device_line("mps", "Apple M2", "fp32") == "mps (Apple M2; fp32)"


def test_an_mps_context_describes_the_apple_chip_in_fp32(tmp_path, monkeypatch):
    monkeypatch.setattr(machine, "cpu_model", lambda: "Apple M2")
    ctx = _ctx("mps", tmp_path)
    assert ctx.device_description == "mps (Apple M2; fp32)" and ctx.precision == "fp32"


def test_a_cpu_context_describes_the_cpu_its_precision_and_threads(tmp_path, monkeypatch):
    monkeypatch.setattr(machine, "cpu_description", lambda: "Some CPU, AVX2")
    monkeypatch.setattr(precision, "bf16_is_fast", lambda device: False)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    ctx = _ctx("cpu", tmp_path)
    assert ctx.device_description == "cpu (Some CPU, AVX2; fp32; 3 threads)"
    assert ctx.describe_device("bf16") == "cpu (Some CPU, AVX2; bf16 autocast; 3 threads)"


def test_a_manifest_records_device_precision_and_threads(ctx):
    """Each run's manifest: the device line with the run's own precision, and the optional fields
    precision and threads (the Build page's columns); a training run's reported precision wins."""
    trained = cached_run(ctx, "test/trains", {}, lambda scratch: {"precision": "fp32"})
    sampled = cached_run(ctx, "test/samples", {}, lambda scratch: {"images": 4})
    for run, expected in ((trained, "fp32"), (sampled, ctx.precision)):
        manifest = json.loads(run.path("manifest.json").read_text())
        assert manifest["precision"] == expected == run.precision
        assert manifest["threads"] == torch.get_num_threads() == run.threads
        assert manifest["device"] == ctx.describe_device(expected) == run.device
    again = cached_run(ctx, "test/trains", {}, lambda scratch: {"precision": "fp32"})
    assert again.hit and (again.precision, again.threads) == ("fp32", torch.get_num_threads())


# --- the precision rule ---------------------------------------------------------------------------

def test_every_device_type_has_a_rule_in_words():
    assert set(PRECISION_RULES) == set(DEVICE_ORDER) == {"cuda", "mps", "cpu"}


@pytest.mark.parametrize("native", [True, False])
def test_the_cpu_rule_is_what_onednn_reports(monkeypatch, native):
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: native)
    assert precision.resolve_precision("auto", "cpu") == ("bf16" if native else "fp32")
    assert context_module.network_precision(torch.device("cpu")) == ("bf16" if native else "fp32")
    assert "oneDNN reports native bf16" in PRECISION_RULES["cpu"]


@pytest.mark.parametrize("supported", [True, False])
def test_the_cuda_rule_is_bf16_where_the_card_has_it_and_never_fp16(monkeypatch, supported):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: supported)
    assert precision.resolve_precision("auto", "cuda") == ("bf16" if supported else "fp32")
    assert "no fp16" in PRECISION_RULES["cuda"]


def test_mps_runs_fp32_with_a_null_context_and_the_plain_layout():
    assert not precision.bf16_is_fast("mps")
    assert precision.resolve_precision("auto", torch.device("mps")) == "fp32"
    assert isinstance(precision.autocast("mps", "fp32"), contextlib.nullcontext)
    assert precision.memory_format("fp32") == torch.contiguous_format
    assert PRECISION_RULES["mps"].startswith("fp32")


def test_every_random_draw_is_on_the_cpu_whatever_the_device():
    """Generators on "mps" exist but draw other numbers: the project draws on the CPU and moves the
    noise (seeding.randn), so an MPS build sees the CPU build's noise."""
    from diffusion_lab import seeding

    generator = seeding.make_generator(0, "x")
    assert generator.device == torch.device("cpu")
    assert seeding.randn((2,), generator).device == torch.device("cpu")
