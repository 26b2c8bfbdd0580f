"""DEF-FTZ-GUARD — the reference refuses to run under flush-to-zero or denormals-are-zero."""

import ctypes
import platform
import shutil
import subprocess

import numpy as np
import pytest

from natprec.reference import FlushToZeroError, assert_subnormals_survive, quantize

C_SOURCE = r"""
#include <xmmintrin.h>
unsigned get_csr(void) { return _mm_getcsr(); }
void set_csr(unsigned v) { _mm_setcsr(v); }
"""
FTZ, DAZ = 0x8000, 0x0040


@pytest.fixture(scope="module")
def mxcsr(tmp_path_factory):
    if platform.machine() not in ("x86_64", "AMD64") or shutil.which("cc") is None:
        pytest.skip("needs an x86-64 host with a C compiler to toggle MXCSR")
    d = tmp_path_factory.mktemp("mxcsr")
    (d / "csr.c").write_text(C_SOURCE)
    subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", str(d / "csr.so"), str(d / "csr.c")], check=True)
    lib = ctypes.CDLL(str(d / "csr.so"))
    lib.get_csr.restype = ctypes.c_uint
    lib.set_csr.argtypes = [ctypes.c_uint]
    return lib


@pytest.mark.spec("DEF-FTZ-GUARD")
@pytest.mark.parametrize("flag, label", [(FTZ, "FTZ"), (DAZ, "DAZ"), (FTZ | DAZ, "FTZ")])
def test_guard_fails_loudly_under_ftz_and_daz(mxcsr, flag, label):
    saved = mxcsr.get_csr()
    try:
        mxcsr.set_csr(saved | flag)
        with pytest.raises(FlushToZeroError) as e:
            assert_subnormals_survive()
        assert e.value.value == label
        with pytest.raises(FlushToZeroError):
            quantize(np.array([1e-40], dtype=np.float32), "float16")
    finally:
        mxcsr.set_csr(saved)
    assert_subnormals_survive()  # restored


@pytest.mark.spec("DEF-FTZ-GUARD")
def test_guard_passes_in_ieee_mode():
    assert_subnormals_survive()
    # bfloat16 keeps float32 subnormals down to 2**-133; 2**-130 must survive as a subnormal code
    assert quantize(np.array([2.0**-130], dtype=np.float32), "bfloat16").tolist() == [0x0008]
