"""Which core a CPU has, from its vendor, family and model, and how much fp32 arithmetic that core does per cycle.

The roofline needs fp32 FLOP per cycle and core, and the ISA flags alone cannot say it: AVX-512 runs on two 512-bit
FMA pipes on Intel server cores and AMD Zen 5 (64 FLOP/cycle), on one on Intel client cores (32) and on 256-bit
pipes on Zen 4 (32). So the core is looked up by CPUID identity (vendor, family, model as /proc/cpuinfo gives them).
A VM may report a model that its flags contradict (a masked model number): then the identity is not trusted and
the ISA's upper bound is used. Sources per row: the vendors' optimization manuals (AMD Software Optimization Guides
for families 17h/19h/1Ah, the Intel 64 and IA-32 Architectures Optimization Reference Manual), Agner Fog's
microarchitecture manual, and the kernel's arch/x86/include/asm/intel-family.h for Intel model numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Core:
    """One microarchitecture: where it sits in CPUID, and its fp32 FMA throughput."""

    name: str
    vendor: str  # CPUID vendor string: AuthenticAMD | GenuineIntel
    family: int
    models: tuple[tuple[int, int], ...]  # inclusive model-number ranges
    fp32_per_cycle: float  # fp32 FLOP per cycle and core at its widest FMA (2 per FMA lane)
    why: str  # the FMA pipes behind the figure
    lacks: frozenset[str] = frozenset()  # CPU flags this core never has: seeing one means a masked identity


AMD, INTEL = "AuthenticAMD", "GenuineIntel"
NO_AVX512 = frozenset({"avx512f", "amx_tile"})
NO_AMX = frozenset({"amx_tile"})

CORES = (
    Core("Zen / Zen+", AMD, 0x17, ((0x00, 0x2F),), 16, "two 128-bit FMA pipes", NO_AVX512),
    Core("Zen 2", AMD, 0x17, ((0x30, 0xFF),), 32, "two 256-bit FMA pipes", NO_AVX512),
    Core("Zen 3", AMD, 0x19, ((0x00, 0x0F), (0x20, 0x5F)), 32, "two 256-bit FMA pipes", NO_AVX512),
    Core("Zen 4", AMD, 0x19, ((0x10, 0x1F), (0x60, 0x7F), (0xA0, 0xAF)), 32,
         "AVX-512 on two 256-bit FMA pipes (double-pumped)", NO_AMX),
    Core("Zen 5 (server / desktop)", AMD, 0x1A, ((0x00, 0x1F), (0x40, 0x4F), (0x70, 0x7F)), 64,
         "two 512-bit FMA pipes (full-width AVX-512 datapath)", NO_AMX),
    Core("Zen 5 (mobile)", AMD, 0x1A, ((0x20, 0x2F), (0x60, 0x6F)), 32,
         "AVX-512 on 256-bit FMA pipes (Strix / Krackan Point)", NO_AMX),
    Core("Haswell / Broadwell", INTEL, 6, ((0x3C, 0x3C), (0x3D, 0x3D), (0x3F, 0x3F), (0x45, 0x47), (0x4F, 0x4F),
                                           (0x56, 0x56)), 32, "two 256-bit FMA units", NO_AVX512),
    Core("Skylake / Kaby / Coffee / Comet Lake (client)", INTEL, 6, ((0x4E, 0x4E), (0x5E, 0x5E), (0x8E, 0x8E),
                                                                     (0x9E, 0x9E), (0xA5, 0xA6)),
         32, "two 256-bit FMA units", NO_AVX512),
    Core("Skylake-SP / Cascade Lake / Cooper Lake", INTEL, 6, ((0x55, 0x55),), 64,
         "two 512-bit FMA units (Gold 6xxx / Platinum; some Silver / Gold 5xxx have one: upper bound)", NO_AMX),
    Core("Ice Lake (server)", INTEL, 6, ((0x6A, 0x6A), (0x6C, 0x6C)), 64, "two 512-bit FMA units", NO_AMX),
    Core("Ice Lake / Tiger Lake / Rocket Lake (client)", INTEL, 6, ((0x7D, 0x7E), (0x8C, 0x8D), (0xA7, 0xA7)), 32,
         "one 512-bit FMA unit (ports 0+1 fused)", NO_AMX),
    Core("Sapphire / Emerald / Granite Rapids", INTEL, 6, ((0x8F, 0x8F), (0xCF, 0xCF), (0xAD, 0xAE)), 64,
         "two 512-bit FMA units"),
    Core("Alder / Raptor / Meteor / Arrow / Lunar Lake (P-cores)", INTEL, 6,
         ((0x97, 0x97), (0x9A, 0x9A), (0xAA, 0xAA), (0xAC, 0xAC), (0xB7, 0xB7), (0xBA, 0xBA), (0xBD, 0xBD),
          (0xBF, 0xBF), (0xC5, 0xC6)), 32, "two 256-bit FMA units (AVX-512 fused off)", NO_AVX512),
    Core("Sierra Forest (E-cores)", INTEL, 6, ((0xAF, 0xAF),), 16, "two 128-bit FMA units", NO_AVX512),
)


@dataclass(frozen=True)
class CpuId:
    """A CPU's CPUID identity as /proc/cpuinfo reports it."""

    vendor: str
    family: int
    model: int

    def __str__(self) -> str:
        return f"{self.vendor} family {self.family} (0x{self.family:X}) model {self.model} (0x{self.model:X})"


def read_identity(path: Path = Path("/proc/cpuinfo")) -> CpuId | None:
    """Vendor, family and model of the first CPU in /proc/cpuinfo (None where they are not reported)."""
    try:
        text = path.read_text()
    except OSError:
        return None
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("vendor_id", "cpu family", "model") and key not in fields:
            fields[key] = value.strip()
        if not line.strip() and fields:
            break
    try:
        return CpuId(fields["vendor_id"], int(fields["cpu family"]), int(fields["model"]))
    except (KeyError, ValueError):
        return None


def lookup(identity: CpuId | None, flags: set[str] | frozenset[str] = frozenset()) -> tuple[Core | None, str]:
    """The core of a CPU identity, and a sentence on how it was found: (None, why) when the identity is unknown,
    absent, or contradicted by the flags (a VM's masked model number)."""
    if identity is None:
        return None, "no CPUID identity reported"
    for core in CORES:
        if core.vendor == identity.vendor and core.family == identity.family and \
                any(low <= identity.model <= high for low, high in core.models):
            contradicted = sorted(core.lacks & set(flags))
            if contradicted:
                return None, (f"{identity} reads as {core.name}, which has no {', '.join(contradicted)}: the model "
                              "number is masked (a VM?), so the identity is not trusted")
            return core, f"{identity}: {core.name}, {core.why}"
    return None, f"{identity} is not in posebench's table of cores"
