"""Bench runs record what the performance table's header needs (bench/perf_table.py): library versions, the
cores this process may use and the load average, beside pytest-benchmark's own machine and commit information."""

import os


def pytest_benchmark_update_machine_info(config, machine_info):
    import importlib.metadata as md

    versions = {}
    for dist in ("numpy", "torch", "ml_dtypes", "scipy", "natprec"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    machine_info["natprec_versions"] = versions
    machine_info["natprec_cores"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    machine_info["natprec_omp_num_threads"] = os.environ.get("OMP_NUM_THREADS")
    machine_info["natprec_malloc_mmap_threshold"] = os.environ.get("MALLOC_MMAP_THRESHOLD_")
    if hasattr(os, "getloadavg"):  # on a shared machine the ratios move with the load: the table says what it was
        machine_info["natprec_loadavg"] = list(os.getloadavg())
