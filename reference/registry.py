"""DEF-FORMAT-ELEMENT, DEF-FORMAT-BLOCK-ABSMAX, DEF-FORMAT-MX, DEF-FORMAT-NVFP4 — the format registry.

Chapter: spec/07-formats.md, whose tables tests/test_format_registry.py checks against
this module.  Every fact about a named format is stated here once: its name and
aliases, its structure (element, absmax block, MX, NVFP4), how its codebook and
encodings are built, its block size, scale format and scale rule, and its bits per
element.  ``formats.py`` builds the format objects from these rows; ``get_format``,
``FORMAT_NAMES``, every name list and each format's ``conventions()`` derive from them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import UnknownFormatError

__all__ = [
    "NF4_VALUES",
    "BNB_FP4_MAGNITUDES",
    "Structure",
    "STRUCTURES",
    "ElementSpec",
    "BlockSpec",
    "FORMAT_SPECS",
    "FORMAT_NAMES",
    "ALIASES",
    "canonical_name",
    "format_spec",
    "element_format_names",
    "block_format_names",
    "bits_per_element",
]

#: bitsandbytes' NF4 table (code order = ascending order), float32 constants.
NF4_VALUES = np.array(
    [
        -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
        -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
        0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
        0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
    ],
    dtype=np.float32,
)  # fmt: skip
NF4_VALUES.flags.writeable = False

#: bitsandbytes' FP4 (not E2M1): magnitude of each 3-bit code, float32 constants; the sign is bit 3.
BNB_FP4_MAGNITUDES = np.array([0.0, 0.005208333333, 0.6666667, 1.0, 0.33333333, 0.5, 0.16666667, 0.25], dtype=np.float32)
BNB_FP4_MAGNITUDES.flags.writeable = False


@dataclass(frozen=True)
class Structure:
    """How a structure stores a tensor: its per-block scale (None for element formats) and that scale's bits.

    A tensor-level scale (NVFP4's float32) is one number per tensor: it adds 0 bits per
    element in the limit and is not counted.
    """

    name: str
    scale: str | None
    scale_bits: int
    tensor_scale: str | None = None

    def bits_per_element(self, element_nbits: int, block_size: int | None = None) -> float | int:
        """Element bits plus the block scale's bits amortised over ``block_size`` elements."""
        return element_nbits if self.scale is None else element_nbits + self.scale_bits / block_size


STRUCTURES = {
    "element": Structure("element", None, 0),
    "absmax": Structure("absmax", "float32 absmax", 32),
    "mx": Structure("mx", "E8M0", 8),
    "nvfp4": Structure("nvfp4", "float8_e4m3fn", 8, tensor_scale="float32"),
}


@dataclass(frozen=True)
class ElementSpec:
    """An element format: how its codebook and encodings are built.

    ``construction``:

    * ``"minifloat"`` — sign, ``ebits`` exponent bits (bias ``bias``), ``mbits`` mantissa bits;
      ``ieee``: the all-ones exponent is Inf/NaN, otherwise (OCP ``fn``) only S.1…1.1…1 is
      NaN when the format has 8 bits, and there is no Inf or NaN below 8 bits;
    * ``"integer"`` — two's complement integers, encoding = value mod 2**nbits;
    * ``"table"`` — the listed ``values`` (float32 constants, ascending) with ``encodings``
      (None: the index);
    * ``"sign_magnitude_table"`` — code = sign bit ``nbits − 1`` | the index of the magnitude
      in ``values`` (float32 constants), signed zero.
    """

    name: str
    nbits: int
    construction: str
    description: str
    ebits: int = 0
    mbits: int = 0
    bias: int = 0
    ieee: bool = False
    values: tuple[float, ...] = ()
    encodings: tuple[int, ...] | None = None
    aliases: tuple[str, ...] = ()

    structure = "element"

    @property
    def bits_per_element(self) -> int:
        return self.nbits


@dataclass(frozen=True)
class BlockSpec:
    """A block format: ``structure`` (a key of STRUCTURES), element format, default block size and scale rule.

    ``emax_elem`` (MX only) is the exponent of the element format's largest power of two.
    """

    name: str
    structure: str
    element: str
    block_size: int
    scale_rule: str | None = None
    emax_elem: int | None = None
    aliases: tuple[str, ...] = ()

    @property
    def scale(self) -> str:
        return STRUCTURES[self.structure].scale

    @property
    def bits_per_element(self) -> float:
        return STRUCTURES[self.structure].bits_per_element(FORMAT_SPECS[self.element].nbits, self.block_size)


def _minifloat(name, ebits, mbits, bias, ieee, description, aliases=()) -> ElementSpec:
    return ElementSpec(name, 1 + ebits + mbits, "minifloat", description, ebits=ebits, mbits=mbits, bias=bias, ieee=ieee,
                       aliases=aliases)


_SPECS = (
    _minifloat("float16", 5, 10, 15, True, "IEEE binary16", ("fp16",)),
    _minifloat("bfloat16", 8, 7, 127, True, "bfloat16 (IEEE-style, 8-bit exponent)", ("bf16",)),
    _minifloat("float8_e4m3fn", 4, 3, 7, False, "OCP FP8 E4M3 (no Inf, NaN = S.1111.111)", ("fp8_e4m3",)),
    _minifloat("float8_e5m2", 5, 2, 15, True, "OCP FP8 E5M2 (IEEE-style)", ("fp8_e5m2",)),
    _minifloat("float6_e2m3fn", 2, 3, 1, False, "OCP FP6 E2M3 (no Inf/NaN)", ("fp6_e2m3",)),
    _minifloat("float6_e3m2fn", 3, 2, 3, False, "OCP FP6 E3M2 (no Inf/NaN)", ("fp6_e3m2",)),
    _minifloat("float4_e2m1fn", 2, 1, 1, False, "OCP FP4 E2M1 (no Inf/NaN)", ("fp4_e2m1",)),
    ElementSpec("int8", 8, "integer", "two's complement integers -128..127"),
    ElementSpec("int4", 4, "integer", "two's complement integers -8..7"),
    ElementSpec("nf4", 4, "table", "bitsandbytes NormalFloat4 (codes 0..15 ascending)", values=tuple(NF4_VALUES.tolist())),
    ElementSpec("fp4_bnb", 4, "sign_magnitude_table",
                "bitsandbytes FP4 (sign + 3-bit code, normalised to max 1; not OCP E2M1)",
                values=tuple(BNB_FP4_MAGNITUDES.tolist())),
    # The encoding is the sign bit, so the tie at 0 goes to +1 (even code 0).
    ElementSpec("binary", 1, "table", "{-1, +1}, code = sign bit", values=(-1.0, 1.0), encodings=(1, 0)),
    # Sign-magnitude: 0 -> 00, +1 -> 01, -1 -> 11; ties at ±0.5 go to 0.
    ElementSpec("ternary", 2, "table", "{-1, 0, +1}, sign-magnitude codes", values=(-1.0, 0.0, 1.0), encodings=(3, 0, 1)),
    BlockSpec("nf4_absmax64", "absmax", "nf4", 64),
    BlockSpec("fp4_bnb_absmax64", "absmax", "fp4_bnb", 64),
    BlockSpec("mxfp8_e4m3", "mx", "float8_e4m3fn", 32, scale_rule="floor", emax_elem=8),
    BlockSpec("mxfp8_e5m2", "mx", "float8_e5m2", 32, scale_rule="floor", emax_elem=15),
    BlockSpec("mxfp6_e2m3", "mx", "float6_e2m3fn", 32, scale_rule="floor", emax_elem=2),
    BlockSpec("mxfp6_e3m2", "mx", "float6_e3m2fn", 32, scale_rule="floor", emax_elem=4),
    BlockSpec("mxfp4", "mx", "float4_e2m1fn", 32, scale_rule="floor", emax_elem=2),
    BlockSpec("nvfp4", "nvfp4", "float4_e2m1fn", 16),
)

#: Every named format, in the order ``natprec formats`` lists them: element formats, then block formats.
FORMAT_SPECS: dict[str, ElementSpec | BlockSpec] = {s.name: s for s in _SPECS}
FORMAT_NAMES = tuple(FORMAT_SPECS)
#: Alternative spellings → canonical names (after case folding and ``-`` → ``_``).
ALIASES = {a: s.name for s in _SPECS for a in s.aliases}


def canonical_name(name) -> str:
    """DEF-FORMAT-ELEMENT — the canonical name of a format name or alias (case, spaces and ``-``/``_`` ignored)."""
    if not isinstance(name, str):
        raise UnknownFormatError(f"format name must be a string; got {name!r}", value=name)
    key = name.strip().lower().replace("-", "_")
    key = ALIASES.get(key, key)
    if key not in FORMAT_SPECS:
        raise UnknownFormatError(f"unknown format {name!r}; known: {', '.join(FORMAT_NAMES)}", value=name)
    return key


def format_spec(name) -> ElementSpec | BlockSpec:
    """DEF-FORMAT-ELEMENT — the registry row of a format name or alias."""
    return FORMAT_SPECS[canonical_name(name)]


def element_format_names() -> tuple[str, ...]:
    """DEF-FORMAT-ELEMENT — canonical names of the element formats, in registry order."""
    return tuple(n for n, s in FORMAT_SPECS.items() if isinstance(s, ElementSpec))


def block_format_names() -> tuple[str, ...]:
    """DEF-FORMAT-BLOCK-ABSMAX / DEF-FORMAT-MX / DEF-FORMAT-NVFP4 — canonical names of the block formats, in registry order."""
    return tuple(n for n, s in FORMAT_SPECS.items() if isinstance(s, BlockSpec))


def bits_per_element(name) -> float | int:
    """DEF-FORMAT-BLOCK-ABSMAX — storage bits per element of a named format at its default block size, scale included.

    nf4_absmax64: 4 + 32/64 = 4.5; mxfp4: 4 + 8/32 = 4.25; nvfp4: 4 + 8/16 = 4.5 (its one
    float32 tensor scale amortises to 0).
    """
    return format_spec(name).bits_per_element
