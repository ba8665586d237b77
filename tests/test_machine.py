"""The CPU's model and vector instructions, read from sample /proc/cpuinfo texts and sysctl output."""

from __future__ import annotations

import pytest

from diffusion_lab.runcache import machine
from diffusion_lab.runcache.machine import describe_cpu, macos_cpu, parse_cpuinfo, vector_isa

# Trimmed from real machines: the fields the reader uses, in their order, with neighbours that
# look alike ("model" is a number on x86, "model name" the name).
GENOA = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC 9654 96-Core Processor
flags\t\t: fpu vme sse sse2 avx avx2 avx512f avx512dq avx512_bf16 avx512vl

processor\t: 1
model name\t: AMD EPYC 9654 96-Core Processor
flags\t\t: fpu
"""
SAPPHIRE_RAPIDS = """processor\t: 0
model\t\t: 143
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8
"""
SKYLAKE = """model name\t: Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz
flags\t\t: sse4_2 avx avx2 avx512f avx512cd
"""
HASWELL = """model name\t: Intel(R) Core(TM) i7-4770 CPU @ 3.40GHz
flags\t\t: sse4_2 avx avx2
"""
GRAVITON2 = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs
CPU implementer\t: 0x41
CPU part\t: 0xd0c
"""
GRAVITON3 = """processor\t: 0
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics sve sve2 bf16
CPU implementer\t: 0x41
"""
RASPBERRY_PI = """processor\t: 0
model name\t: ARMv7 Processor rev 3 (v7l)
Features\t: half thumb fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt vfpd32 lpae evtstrm crc32
Hardware\t: BCM2835
Model\t\t: Raspberry Pi 4 Model B Rev 1.4
"""


@pytest.mark.parametrize("text, model, isa", [
    (GENOA, "AMD EPYC 9654 96-Core Processor", "AVX-512 BF16"),
    (SAPPHIRE_RAPIDS, "Intel(R) Xeon(R) Platinum 8480+", "AMX"),
    (SKYLAKE, "Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz", "AVX-512"),
    (HASWELL, "Intel(R) Core(TM) i7-4770 CPU @ 3.40GHz", "AVX2"),
    (GRAVITON2, None, "NEON"),
    (GRAVITON3, None, "SVE"),
    (RASPBERRY_PI, "ARMv7 Processor rev 3 (v7l)", None),  # 32-bit NEON is "neon", not asimd
], ids=["genoa", "sapphire-rapids", "skylake", "haswell", "graviton2", "graviton3", "raspberry-pi"])
def test_cpuinfo_gives_the_model_and_the_widest_vector_instructions(text, model, isa):
    found_model, flags = parse_cpuinfo(text)
    assert found_model == model
    assert vector_isa(flags) == isa


def test_only_the_first_processor_is_read():
    model, flags = parse_cpuinfo(GENOA)
    assert "avx512_bf16" in flags and flags != {"fpu"}


def test_a_description_leaves_out_what_is_unknown():
    assert describe_cpu("AMD EPYC 9654 96-Core Processor", {"avx512_bf16"}) == \
        "AMD EPYC 9654 96-Core Processor, AVX-512 BF16"
    assert describe_cpu(None, {"asimd"}) == "NEON"
    assert describe_cpu("Some CPU", set()) == "Some CPU"
    assert describe_cpu(None, set()) == "unknown CPU"


def test_empty_or_odd_text_is_not_an_error():
    assert parse_cpuinfo("") == (None, set())
    assert parse_cpuinfo("no colon here\n:\nmodel name:   \n") == (None, set())


def test_macos_sysctl_on_apple_silicon_and_on_intel():
    assert macos_cpu("Apple M2\n", "", "arm64") == ("Apple M2", {"asimd"})
    model, flags = macos_cpu("Intel(R) Core(TM) i9-9880H CPU @ 2.30GHz\n",
                             "FPU VME SSE4.2 AVX1.0\nRDWRFSGS AVX2 BMI2\n", "x86_64")
    assert model.startswith("Intel(R) Core(TM) i9") and vector_isa(flags) == "AVX2"
    assert macos_cpu("", "", "arm64")[0] is None


def test_this_machine_is_described():
    """Whatever this machine is, it has a model and the description starts with it."""
    model, _ = machine.this_cpu()
    assert model and machine.cpu_description().startswith(model) and machine.cpu_model() == model
