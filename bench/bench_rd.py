"""Benchmarks for spec/10-rate-distortion.md (issue 3), as ratios against straightforward implementations.

* one BA point at D_ref on the 1401×451 grid (target < 2 s), accelerated (default) and plain;
* cost per BA iteration: the textbook loop vs the vectorised step;
* the seed-003 table (target < 30 s).

Run: ``python -m pytest bench/bench_rd.py --benchmark-only -q -s`` (``-s`` shows the ratios).
"""

from __future__ import annotations

import math
import time

import pytest

from natprec.rdtables import D_REF  # seed 003's reference distortion (spec/10, "Seed 003 errata")
from natprec.reference import ratedistortion as rd


@pytest.fixture(scope="module")
def src17():
    return rd.discretise_ggd(1.7, 1401, 451)


@pytest.mark.spec("DEF-RD-BA")
def test_bench_ba_point_1401x451(benchmark, src17):
    res = benchmark(rd.blahut_arimoto_at_distortion, src17.p, src17.x, src17.y, D_REF)
    assert res.converged
    print(f"\nBA point (accelerated): {res.iterations} BA-map evaluations, R = {res.rate_bits:.5f} "
          f"[{res.rate_lower_bits:.5f}, {res.rate_upper_bits:.5f}]")


@pytest.mark.spec("DEF-RD-BA")
def test_bench_ba_point_1401x451_plain(benchmark, src17):
    # The same point by the plain iteration (no extrapolation): the straightforward vectorised BA.
    res = benchmark.pedantic(
        rd.blahut_arimoto_at_distortion, (src17.p, src17.x, src17.y, D_REF), {"accelerate": False}, rounds=2
    )
    assert res.converged
    acc = rd.blahut_arimoto_at_distortion(src17.p, src17.x, src17.y, D_REF)
    # Both are certified to within the BA tolerance at D_ref: their brackets must overlap.
    assert acc.rate_lower_bits <= res.rate_upper_bits and res.rate_lower_bits <= acc.rate_upper_bits
    print(f"\nBA point (plain): {res.iterations} evaluations vs {acc.iterations} accelerated "
          f"({res.iterations / acc.iterations:.1f}x fewer), R = {res.rate_bits:.5f} "
          f"[{res.rate_lower_bits:.5f}, {res.rate_upper_bits:.5f}]")


@pytest.mark.spec("DEF-RD-BA")
def test_bench_ba_loop_vs_vectorised_per_iteration(src17):
    # The loop baseline is too slow to run to convergence: compare cost per iteration.
    src = src17
    s = -1.0 / (2.0 * D_REF)
    n = 2
    t0 = time.perf_counter()
    rd.blahut_arimoto_loop(src.p, src.x, src.y, s, tol_bits=1e-300, max_iter=n)
    loop_s = (time.perf_counter() - t0) / n
    m = 200
    t0 = time.perf_counter()
    rd.blahut_arimoto(src.p, src.x, src.y, s, tol_bits=1e-300, max_iter=m, accelerate=False)
    vec_s = (time.perf_counter() - t0) / m
    print(f"\nBA per iteration: loop {loop_s * 1e3:.1f} ms, vectorised {vec_s * 1e3:.3f} ms, ratio {loop_s / vec_s:.0f}x")
    assert vec_s < loop_s


@pytest.mark.spec("DEF-RD-CONTINUOUS", "DEF-RD-ECSQ")
def test_bench_seed003_table(benchmark):
    def table():
        rows = []
        for beta in (1.3, 1.7, 2.0):
            r = rd.rate_distortion_ggd(beta, D_REF)
            e = rd.ecsq_uniform_at_distortion(D_REF, rd.GGDSource(beta))
            rows.append((beta, r, e))
        return rows

    rows = benchmark.pedantic(table, rounds=1, iterations=1)
    for beta, r, e in rows:
        print(
            f"\nβ={beta}: h={r.slb_bits + 0.5 * math.log2(2 * math.pi * math.e * D_REF):.4f} "
            f"R_SLB={r.slb_bits:.4f} R={r.rate_bits:.5f} [{r.rate_lower_bits:.5f}, {r.rate_upper_bits:.5f}] "
            f"R−R_SLB={r.rate_bits - r.slb_bits:.1e} grid {r.grid} change {r.grid_change_bits:.1e} "
            f"ECSQ={e.entropy_bits:.4f} (gap {e.gap_to_slb_bits:.4f})"
        )
        assert r.converged
