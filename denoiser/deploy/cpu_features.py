"""What this CPU can do, read at run time: integer dot-product instructions and its peak.

INT8 on x86 multiplies uint8 activations by int8 weights. With VNNI (AVX-512 VNNI, or AVX-VNNI
on newer client CPUs) `vpdpbusd` adds four such products straight into int32 lanes, exactly.
Without it, ONNX Runtime's kernels use `vpmaddubsw`, which sums pairs of products in int16
and saturates when both weights are near +-127: that is why 7-bit weights (`reduce_range`)
are needed there, and only there (lower.py).

The peak is cores x FMA lanes x 2 FLOPs x clock: what `denoiser bench` compares rows with.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

VNNI_FLAGS = ("avx512_vnni", "avx_vnni")  # Linux /proc/cpuinfo names (AVX-VNNI is "avx_vnni")


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux names them; empty where /proc/cpuinfo is not there."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    match = re.search(r"^flags\s*:\s*(.*)$", text, re.M)
    return frozenset(match.group(1).split()) if match else frozenset()


def has_vnni(flags: frozenset[str] | None = None) -> bool:
    """True where uint8 x int8 dot products accumulate in int32 without saturating."""
    flags = cpu_flags() if flags is None else flags
    if os.environ.get("DENOISER_INT8_NO_VNNI"):  # to make (and test) the 7-bit file on any machine
        return False
    return any(f in flags for f in VNNI_FLAGS)


def int8_weight_bits(flags: frozenset[str] | None = None) -> int:
    """8 where the CPU has VNNI, else 7 (see the module docstring)."""
    return 8 if has_vnni(flags) else 7


@dataclass(frozen=True)
class Peak:
    cores: int
    ghz: float
    fp32_lanes: int  # float32 FMA lanes per core per cycle, all FMA units together
    int8_macs: int  # uint8 x int8 multiply-adds per core per cycle
    isa: str

    @property
    def fp32_gflops(self) -> float:
        return self.cores * self.fp32_lanes * 2 * self.ghz

    @property
    def int8_gops(self) -> float:
        return self.cores * self.int8_macs * 2 * self.ghz


def _clock_ghz(text: str) -> float:
    """Nominal clock: the model name's "@ 2.60GHz" where it says one, else "cpu MHz" (what the
    kernel reads now), else BogoMIPS / 2 (a VM's usual stand-in)."""
    named = re.search(r"model name\s*:.*@\s*([\d.]+)\s*GHz", text)
    if named:
        return float(named.group(1))
    mhz = re.search(r"^cpu MHz\s*:\s*([\d.]+)", text, re.M)
    if mhz and float(mhz.group(1)) > 0:
        return float(mhz.group(1)) / 1000
    bogo = re.search(r"^bogomips\s*:\s*([\d.]+)", text, re.M | re.I)
    return float(bogo.group(1)) / 2000 if bogo else 0.0


def physical_cores() -> int:
    """Cores this process may run on, counting SMT siblings once."""
    allowed = len(os.sched_getaffinity(0))
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return allowed
    per_core = re.findall(r"^siblings\s*:\s*(\d+)", text, re.M), re.findall(r"^cpu cores\s*:\s*(\d+)", text, re.M)
    if per_core[0] and per_core[1] and int(per_core[1][0]):
        return max(1, allowed * int(per_core[1][0]) // int(per_core[0][0]))
    return allowed


def peak(flags: frozenset[str] | None = None) -> Peak:
    """The theoretical peak of the cores this process may use.

    Two FMA units per core (every x86 core since Haswell / Zen 2). AVX-512 counts 16 lanes
    per unit, AVX2 8. INT8: with VNNI each 32-bit lane does 4 multiply-adds per instruction;
    without it `vpmaddubsw` + `vpmaddwd` take two instructions for the same 4 (half the rate).
    AMD's Zen 4 runs AVX-512 on 256-bit units, so its peak is the AVX2 width: named here.
    """
    flags = cpu_flags() if flags is None else flags
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    amd = "AuthenticAMD" in text
    wide = "avx512f" in flags and not amd  # Zen 4 splits 512-bit ops into two 256-bit halves
    lanes = 16 if wide else 8 if "avx2" in flags or "fma" in flags else 4
    isa = ("AVX-512" if wide else "AVX-512 on 256-bit units" if "avx512f" in flags else
           "AVX2" if "avx2" in flags else "SSE")
    int8 = 2 * lanes * 4 // (1 if has_vnni(flags) else 2)
    return Peak(physical_cores(), round(_clock_ghz(text), 3), 2 * lanes, int8,
                isa + (" + VNNI" if has_vnni(flags) else ""))
