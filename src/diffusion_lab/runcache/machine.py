"""What processor a build runs on, in a few words for its provenance: the CPU's model and the widest
vector instructions it offers ("AMD EPYC 9654 96-Core Processor, AVX-512 BF16"); and how many of its
cores this process may use (`usable_cores`).

On Linux both come from /proc/cpuinfo ("model name" and "flags", or "Features" on ARM); on macOS
from sysctl; elsewhere from `platform.processor()`, without an instruction set. The parsers take
their text as an argument, so tests feed them sample cpuinfo files; nothing here raises on odd input.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from contextlib import suppress
from functools import lru_cache
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
TOPOLOGY = Path("/sys/devices/system/cpu")

# Widest first: the first flag a CPU has names its vector instruction set. AMX implies AVX-512 BF16
# on every CPU that has it; oneDNN runs bf16 natively on either (see mnist/precision.py).
ISA_FLAGS = (
    ("amx_tile", "AMX"),
    ("avx512_bf16", "AVX-512 BF16"),
    ("avx512f", "AVX-512"),
    ("avx2", "AVX2"),
    ("sve", "SVE"),
    ("asimd", "NEON"),
)
# macOS's sysctl spells the x86 flags in capitals and with other names.
_MACOS_FLAGS = {"avx512bf16": "avx512_bf16", "avx512f": "avx512f", "avx2": "avx2", "amx": "amx_tile"}


def parse_cpuinfo(text: str) -> tuple[str | None, set[str]]:
    """(model, flags) of the first processor in a /proc/cpuinfo text: x86's "model name" and
    "flags", ARM's "Features" (and "Model" or "Hardware" where the kernel names the board)."""
    model, flags = None, set()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip().lower(), value.strip()
        if key in ("model name", "model", "hardware", "cpu model") and model is None and value \
                and not value.isdigit():
            model = " ".join(value.split())
        elif key in ("flags", "features") and not flags:
            flags = set(value.lower().split())
    return model, flags


def vector_isa(flags: set[str]) -> str | None:
    """The widest vector instruction set among `flags` (lower-case cpuinfo names), or None."""
    return next((name for flag, name in ISA_FLAGS if flag in flags), None)


def describe_cpu(model: str | None, flags: set[str]) -> str:
    """"<model>, <ISA>", either part left out when unknown."""
    return ", ".join(part for part in (model, vector_isa(flags)) if part) or "unknown CPU"


def _sysctl(*names: str) -> str:
    """sysctl's values of `names`, one a line; "" where sysctl is missing or fails."""
    try:
        done = subprocess.run(["sysctl", "-n", *names], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout if done.returncode == 0 else ""


def macos_cpu(brand: str, features: str, machine: str) -> tuple[str | None, set[str]]:
    """(model, cpuinfo-style flags) from sysctl's brand string ("Apple M2") and feature lists; Apple
    silicon (arm64) always has NEON."""
    flags = {_MACOS_FLAGS[word] for word in features.lower().replace(".", "").split() if word in _MACOS_FLAGS}
    if machine == "arm64":
        flags.add("asimd")
    return (brand.strip() or None), flags


@lru_cache(maxsize=1)
def this_cpu() -> tuple[str, set[str]]:
    """(model, flags) of this machine's CPU, read once; the model falls back to
    `platform.processor()`, then `platform.machine()`."""
    system, machine = platform.system(), platform.machine()
    model, flags = None, set()
    if system == "Linux" and CPUINFO.is_file():
        with suppress(OSError):
            model, flags = parse_cpuinfo(CPUINFO.read_text(errors="replace"))
    elif system == "Darwin":
        brand = _sysctl("machdep.cpu.brand_string")
        model, flags = macos_cpu(brand, _sysctl("machdep.cpu.features", "machdep.cpu.leaf7_features"), machine)
    return model or platform.processor() or machine or "unknown CPU", flags


def cpu_description() -> str:
    """This machine's CPU: "AMD EPYC 9654 96-Core Processor, AVX-512 BF16", "Apple M2, NEON"."""
    return describe_cpu(*this_cpu())


def cpu_model() -> str:
    """The CPU's model alone ("Apple M2"): what names an MPS device, whose GPU is on the same chip."""
    return this_cpu()[0]


# --- cores ----------------------------------------------------------------------------------------


def physical_cores_of(cpus: set[int], topology: Path = TOPOLOGY) -> int:
    """How many distinct physical cores the logical CPUs `cpus` lie on, by their (package, core) in
    Linux's topology folders; a CPU whose topology cannot be read counts as a core of its own."""
    cores = set()
    for cpu in cpus:
        folder = topology / f"cpu{cpu}" / "topology"
        try:
            cores.add((folder.joinpath("physical_package_id").read_text().strip(),
                       folder.joinpath("core_id").read_text().strip()))
        except OSError:
            cores.add(("cpu", str(cpu)))
    return max(1, len(cores))


def usable_cores() -> int:
    """The physical cores this process may run on, at least 1, counted where the system says which
    logical CPUs share one (a second hardware thread on a busy core adds little to these networks'
    arithmetic). Linux: the affinity mask (taskset, cgroup cpusets), SMT siblings counted once.
    macOS: the performance cores (`hw.perflevel0.physicalcpu`: a lane on an efficiency core would
    hold the others back), else `hw.physicalcpu`. Elsewhere (Windows): the logical CPUs the process
    may use (`os.process_cpu_count`, Python 3.13+, else `os.cpu_count`), SMT siblings included."""
    if hasattr(os, "sched_getaffinity"):
        return physical_cores_of(os.sched_getaffinity(0))
    if sys.platform == "darwin":
        for name in ("hw.perflevel0.physicalcpu", "hw.physicalcpu"):
            found = _sysctl(name).strip()
            if found.isdigit() and int(found) > 0:
                return int(found)
    count = os.process_cpu_count() if hasattr(os, "process_cpu_count") else os.cpu_count()
    return max(1, count or 1)
