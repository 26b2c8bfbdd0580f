"""Peak resident memory of reference operations, as a multiple of the input's size (issue 9 item 9, README).

Each operation runs in a fresh interpreter on 2**N float32 standard normals (default N = 24, 64 MiB);
the figure is (peak RSS − RSS after making the input) / input bytes, so the input itself and the
interpreter are not counted.  Run ``python bench/peak_memory.py [N [NAME]]`` (NAME: only the
operations whose name contains it); the README quotes its table.
"""

from __future__ import annotations

import subprocess
import sys

OPS = {
    "quantize nf4": "npr.quantize(x, 'nf4')",
    "quantize float8_e4m3fn": "npr.quantize(x, 'float8_e4m3fn')",
    "quantize mxfp4": "npr.quantize(x, 'mxfp4')",
    "quantize nvfp4": "npr.quantize(x, 'nvfp4')",
    "quantize nf4_absmax64": "npr.quantize(x, 'nf4_absmax64')",
    "support_size": "npr.support_size(x)",
    "realized_support": "npr.realized_support(x)",
    "discretized_histogram": "npr.discretized_histogram(x, 0.01)",
    "discretized_entropy_bits": "npr.discretized_entropy_bits(x, 0.01)",
    "voronoi_margin nf4": "npr.voronoi_margin(x, 'nf4')",
    "min_voronoi_margin nf4": "npr.min_voronoi_margin(x, 'nf4')",
    # the census with its default listing (the 16 cells with most elements: all 16 of nf4's, the whole support)
    "injectivity_report nf4": "npr.injectivity_report(x, 'nf4')",
    "injectivity_report float8_e4m3fn": "npr.injectivity_report(x, 'float8_e4m3fn')",
    "injectivity_report int4": "npr.injectivity_report(x, 'int4')",
    "injectivity_report nf4_absmax64": "npr.injectivity_report(x, 'nf4_absmax64')",
    "injectivity_report mxfp4": "npr.injectivity_report(x, 'mxfp4')",
    "injectivity_report nvfp4": "npr.injectivity_report(x, 'nvfp4')",
}

CHILD = """
import resource, numpy as np, natprec.reference as npr
x = np.random.default_rng(0).standard_normal(1 << {n}, dtype=np.float32)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
r = {call}
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((peak - base) * 1024 / x.nbytes)
"""


def main(n: int = 24, only: str = "") -> None:
    print(f"2^{n} float32 elements ({(1 << n) * 4 / 2**20:.0f} MiB); extra peak RSS ÷ input bytes")
    for name, call in OPS.items():
        if only not in name:
            continue
        out = subprocess.run([sys.executable, "-c", CHILD.format(n=n, call=call)], capture_output=True, text=True, check=True)
        print(f"{name:34s} {float(out.stdout):6.2f}×", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 24, sys.argv[2] if len(sys.argv) > 2 else "")
