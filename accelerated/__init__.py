"""natprec.accelerated — the GPU tier (CUDA kernels launched through PyCUDA).

The kernels of issue 12 (element kernel rewrite, two-pass 16-bit support, block formats,
float32 radix-sort support) have NOT run on a GPU: see accelerated/RESULTS.md.  What is
verified without one: every kernel compiles (accelerated/compile_kernels.sh, sm_80 and sm_90,
warnings are errors), the per-element and per-block arithmetic (kernels/natprec_scalar.cuh)
matches the reference bit for bit on the host, and this tier's host logic (kernel parameters,
post-processing) matches the reference when its launches are served by the host build of the
same header (tests/test_accelerated_host.py, _blocks.py, _sort.py, _sweep.py).

The tier exposes the reference's names and signatures.  Each function calls the reference's
``prepare_*`` (for block formats ``prepare_block_input``: every check, no scale) — so bad
input raises the reference's exception on the host before any launch — and executes the
plan on the device, or with the reference's ``execute_*`` where no kernel covers it.
Integer results (codes, scales, counts, bins, index searches) come from the device; logs and
entropies are the reference's functions on the host.

Device paths:
  quantize / dequantize     element formats and Codebooks (float16/bfloat16/float32 input;
                            fused kernel: codes + cell histogram + margin + min margin);
                            block formats' quantize (absmax in the last-axis and the flat
                            layout, MX floor/RCEIL, NVFP4; any accepted input, as the
                            reference's float32 values)
  voronoi_margin, min_voronoi_margin   element formats and Codebooks
  realized_support, support_size       float16 and bfloat16 (65536 keys), float32 (radix sort)
  discretized_histogram                bins on the device; quotients within 8 ulp of an
                                       integer are decided on the host with rationals
  code_histogram            (tier extra) cell counts of the fused kernel
  injectivity_report        the (cell, value) pairs on the device (element formats: the device
                            support quantized by the element kernel; block formats: census.cu),
                            the report by the reference's finish_census (accelerated/census.py)
Everything else — float64 input, block formats' dequantize and margins, float64 support,
entropies — is the reference on the host
(``HOST_PATHS`` lists them; ``last_path()`` says which path ran).

Rooms: ``device`` (PyCUDA backend, imported lazily: importable with no driver; the choice of
backend), ``host`` (the g++ build of the kernels' header, for tests), ``plans`` (kernel
parameters from the reference's plans), ``tier`` (the functions above), ``sweep`` (the
all-float32 check against an independent float64 oracle, for the GPU machine).
"""

from .device import KERNEL_DIR, NVCC_OPTIONS, CudaBackend, backend_override, current_backend, gpu_available, use_backend
from .host import HostBackend, build_host_library
from .plans import ElementPlan, element_plan
from .tier import (
    HOST_PATHS,
    code_histogram,
    dequantize,
    discretized_histogram,
    entropy_bits_from_counts,
    injectivity_report,
    last_path,
    min_voronoi_margin,
    quantize,
    realized_support,
    support_size,
    voronoi_margin,
)

__all__ = [
    "gpu_available",
    "quantize",
    "dequantize",
    "voronoi_margin",
    "min_voronoi_margin",
    "realized_support",
    "support_size",
    "discretized_histogram",
    "code_histogram",
    "injectivity_report",
    "entropy_bits_from_counts",
    "HOST_PATHS",
    "KERNEL_DIR",
    "NVCC_OPTIONS",
    "last_path",
    "use_backend",
    "backend_override",
    "current_backend",
    "CudaBackend",
    "HostBackend",
    "build_host_library",
    "ElementPlan",
    "element_plan",
]
