"""Benchmarks for spec/10-rate-distortion.md: one BA point (1401×451) vs a textbook loop, and the seed-003 table."""

from __future__ import annotations

import time

import pytest

from natprec.reference import ratedistortion as rd

D_REF = 2.0 ** (-2 * 3.19)  # seed 003's β = 2 row: R_SLB = 3.19 bits for unit variance


@pytest.mark.spec("DEF-RD-BA")
def test_bench_ba_point_1401x451(benchmark):
    src = rd.discretise_ggd(1.7, 1401, 451)
    res = benchmark(rd.blahut_arimoto_at_distortion, src.p, src.x, src.y, D_REF)
    assert res.converged


@pytest.mark.spec("DEF-RD-BA")
def test_bench_ba_loop_vs_vectorised_per_iteration():
    # The loop baseline is too slow to run to convergence: compare cost per iteration.
    src = rd.discretise_ggd(1.7, 1401, 451)
    s = -1.0 / (2.0 * D_REF)
    n = 2
    t0 = time.perf_counter()
    rd.blahut_arimoto_loop(src.p, src.x, src.y, s, tol_bits=1e-300, max_iter=n)
    loop_s = (time.perf_counter() - t0) / n
    m = 200
    t0 = time.perf_counter()
    rd.blahut_arimoto(src.p, src.x, src.y, s, tol_bits=1e-300, max_iter=m)
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
            f"\nβ={beta}: R_SLB={r.slb_bits:.4f} R={r.rate_bits:.5f} [{r.rate_lower_bits:.5f}, {r.rate_upper_bits:.5f}] "
            f"grid change {r.grid_change_bits:.1e} ECSQ={e.entropy_bits:.4f} (gap {e.gap_to_slb_bits:.4f})"
        )
        assert r.converged
