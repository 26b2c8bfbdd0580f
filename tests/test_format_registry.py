"""One format registry: every format fact stated once (natprec.reference.registry), and spec/07 agrees with it.

spec/07-formats.md's tables — the registry table (structure, block size, scale, bits per
element, aliases), the element-format conventions table and the MX table — are parsed and
compared with the registry and with the format objects built from it.
"""

import math
import re
from pathlib import Path

import numpy as np
import pytest

import natprec.reference as ref
from natprec.reference import ratedistortion, registry

SPEC = (Path(__file__).resolve().parents[1] / "spec" / "07-formats.md").read_text()
NONE = "—"


def _table(first_header: str) -> list[dict]:
    """The markdown table of spec/07 whose header row starts with ``| first_header |``, as dicts."""
    lines = SPEC.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(f"| {first_header} |"))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = []
    for ln in lines[start + 2:]:
        if not ln.startswith("|"):
            break
        rows.append(dict(zip(header, (c.strip() for c in ln.strip("|").split("|")))))
    return rows


def _opt(cell: str):
    return None if cell == NONE else cell


REGISTRY_TABLE = _table("name | structure")
ELEMENT_TABLE = _table("name | nbits")
MX_TABLE = _table("name | element | emax_elem")


@pytest.mark.spec("DEF-FORMAT-ELEMENT", "DEF-FORMAT-BLOCK-ABSMAX", "DEF-FORMAT-MX", "DEF-FORMAT-NVFP4")
def test_registry_table_lists_every_format_in_registry_order():
    assert [r["name"] for r in REGISTRY_TABLE] == list(ref.FORMAT_NAMES) == list(registry.FORMAT_SPECS)


@pytest.mark.spec("DEF-FORMAT-ELEMENT", "DEF-FORMAT-BLOCK-ABSMAX", "DEF-FORMAT-MX", "DEF-FORMAT-NVFP4")
@pytest.mark.parametrize("row", REGISTRY_TABLE, ids=[r["name"] for r in REGISTRY_TABLE])
def test_registry_table_row_is_the_registry(row):
    spec = registry.FORMAT_SPECS[row["name"]]
    structure = registry.STRUCTURES[spec.structure]
    assert row["structure"] == spec.structure
    assert _opt(row["element"]) == getattr(spec, "element", None)
    assert _opt(row["block size"]) == (str(spec.block_size) if hasattr(spec, "block_size") else None)
    assert _opt(row["scale"]) == structure.scale
    assert _opt(row["scale rule"]) == getattr(spec, "scale_rule", None)
    assert _opt(row["tensor scale"]) == structure.tensor_scale
    assert float(row["bits per element"]) == registry.bits_per_element(row["name"]) == ref.get_format(row["name"]).bits_per_element
    assert (() if row["aliases"] == NONE else tuple(a.strip() for a in row["aliases"].split(","))) == spec.aliases


@pytest.mark.spec("DEF-FORMAT-ELEMENT", "DEF-FORMAT-BLOCK-ABSMAX", "DEF-FORMAT-MX", "DEF-FORMAT-NVFP4")
def test_element_table_lists_every_element_format():
    assert [r["name"] for r in ELEMENT_TABLE] == list(ref.element_format_names())


def _code(cell: str):
    return None if cell == NONE else int(cell, 16)


@pytest.mark.spec("DEF-FORMAT-ELEMENT", "DEF-FORMAT-BLOCK-ABSMAX", "DEF-FORMAT-MX", "DEF-FORMAT-NVFP4")
@pytest.mark.parametrize("row", ELEMENT_TABLE, ids=[r["name"] for r in ELEMENT_TABLE])
def test_element_table_row_is_the_format(row):
    f = ref.get_format(row["name"])
    c = f.conventions()
    assert int(row["nbits"]) == c["nbits"] == f.nbits
    assert int(row["finite values"]) == c["finite_values"] == len(f.codebook)
    m = re.fullmatch(r"(\S+)(?: \(min (\S+)\))?", row["max"])
    assert float(m.group(1)) == c["max_finite"]
    assert f.min_finite == (float(m.group(2).replace("−", "-")) if m.group(2) else -c["max_finite"])
    assert row["signed 0"] == ("yes" if c["signed_zero"] else "no")
    assert row["default saturate"] == ("yes" if c["default_saturate"] else "no")
    assert _opt(row["overflow"]) == c["overflow"]
    assert _code(row["Inf code"]) == f.inf_code
    assert _code(row["NaN code"]) == f.nan_code


@pytest.mark.spec("DEF-FORMAT-ELEMENT", "DEF-FORMAT-BLOCK-ABSMAX", "DEF-FORMAT-MX", "DEF-FORMAT-NVFP4")
def test_mx_table_is_the_registry():
    assert [r["name"] for r in MX_TABLE] == [n for n in ref.block_format_names() if registry.FORMAT_SPECS[n].structure == "mx"]
    for row in MX_TABLE:
        spec, f = registry.FORMAT_SPECS[row["name"]], ref.get_format(row["name"])
        assert row["element"] == spec.element == f.element.name
        assert int(row["emax_elem"]) == spec.emax_elem == f.emax_elem
        # emax_elem is the exponent of the element format's largest finite value
        assert spec.emax_elem == math.floor(math.log2(f.element.max_finite))


@pytest.mark.spec("DEF-FORMAT-ELEMENT", "DEF-FORMAT-BLOCK-ABSMAX", "DEF-FORMAT-MX", "DEF-FORMAT-NVFP4")
def test_names_lists_and_objects_derive_from_the_registry():
    assert ref.FORMAT_NAMES == registry.FORMAT_NAMES
    assert ref.element_format_names() + ref.block_format_names() == ref.FORMAT_NAMES
    for name, spec in registry.FORMAT_SPECS.items():
        f = ref.get_format(name)
        assert f.name == name
        assert isinstance(f, ref.ElementFormat) == (name in ref.element_format_names()) == (spec.structure == "element")
        if spec.structure != "element":
            assert f.element is ref.get_format(spec.element) and f.block_size == spec.block_size
            assert f.conventions()["scale"] == spec.scale
            assert f.conventions()["bits_per_element"] == spec.bits_per_element


@pytest.mark.parametrize("name, bits", [("nf4_absmax64", 4.5), ("fp4_bnb_absmax64", 4.5), ("mxfp4", 4.25),
                                        ("mxfp8_e4m3", 8.25), ("nvfp4", 4.5), ("nf4", 4), ("float16", 16)])
@pytest.mark.spec("DEF-FORMAT-ELEMENT", "DEF-FORMAT-BLOCK-ABSMAX", "DEF-FORMAT-MX", "DEF-FORMAT-NVFP4")
def test_bits_per_element_include_the_scale(name, bits):
    assert ref.bits_per_element(name) == bits


@pytest.mark.spec("DEF-FORMAT-ELEMENT", "DEF-FORMAT-BLOCK-ABSMAX", "DEF-FORMAT-MX", "DEF-FORMAT-NVFP4")
def test_bits_per_element_follow_the_block_size_option():
    assert ref.get_format("nf4_absmax64", block_size=32).conventions()["bits_per_element"] == 4 + 32 / 32
    assert ref.get_format("mxfp4", block_size=16).bits_per_element == 4 + 8 / 16
    assert ref.get_format("nvfp4", block_size=32).bits_per_element == 4 + 8 / 32


@pytest.mark.spec("DEF-FORMAT-ELEMENT", "DEF-FORMAT-BLOCK-ABSMAX", "DEF-FORMAT-MX", "DEF-FORMAT-NVFP4")
def test_aliases_resolve_to_one_format_everywhere():
    names = set(ref.FORMAT_NAMES)
    assert not names & set(ref.ALIASES), "an alias may not be another format's name"
    for alias, name in ref.ALIASES.items():
        for spelling in (alias, alias.upper(), f" {alias.replace('_', '-')} "):
            assert ref.get_format(spelling) is ref.get_format(name)
            assert ref.canonical_name(spelling) == name
        assert ref.resolve_format(alias) is ref.get_format(name)
    with pytest.raises(ref.UnknownFormatError) as exc:
        ref.get_format("fp8")  # ambiguous (E4M3 or E5M2): not a name
    assert exc.value.value == "fp8"


@pytest.mark.spec("DEF-FORMAT-ELEMENT", "DEF-FORMAT-BLOCK-ABSMAX", "DEF-FORMAT-MX", "DEF-FORMAT-NVFP4")
def test_the_nf4_table_is_defined_once():
    nf4 = ref.get_format("nf4").codebook
    assert ratedistortion.NF4_VALUES is registry.NF4_VALUES
    assert np.array_equal(nf4.values, registry.NF4_VALUES.astype(np.float64))
    assert ref.get_format("nf4_absmax64").element.codebook is nf4
    assert ratedistortion.nf4_mismatch(2.0) == ratedistortion.nf4_mismatch(2.0, codebook=nf4)
