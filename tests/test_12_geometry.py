"""DEF-LANCZOS, DEF-STUDY-GEOMETRY — our Lanczos against torch.linalg.eigvalsh (dense problems and a tiny network's
exact Hessian), Hutchinson against its exact variance, the empirical Fisher against its explicit matrix, the
water-filling allocation against brute force, and the study on a tiny MLP."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from natprec.reference.errors import InvalidParameterError, UnknownFormatError

torch = pytest.importorskip("torch", reason="natprec.model needs torch (pip install natprec[torch])")

from natprec.cli import main  # noqa: E402
from natprec.model import MeasuredModel  # noqa: E402
from natprec.studies import STUDIES  # noqa: E402
from natprec.studies import geometry as gmod  # noqa: E402
from natprec.studies.geometry import (  # noqa: E402
    fisher_gram,
    geometry_study,
    hutchinson,
    lanczos,
    slq_density,
    waterfill_bits,
)
from natprec.studies.weightlayers import layer_runner, linear_weight_sites  # noqa: E402


def sym(n, seed=0, spectrum=None):
    g = torch.Generator().manual_seed(seed)
    if spectrum is None:
        a = torch.randn(n, n, generator=g, dtype=torch.float64)
        return (a + a.T) / 2
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    return q @ torch.diag(torch.as_tensor(spectrum, dtype=torch.float64)) @ q.T


def tiny_mlp(dtype=torch.float32, batches=2):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 10), torch.nn.Tanh(), torch.nn.Linear(10, 3)).to(dtype)
    g = torch.Generator().manual_seed(1)
    return MeasuredModel(model=model, batches=[torch.randn(8, 6, generator=g, dtype=dtype) for _ in range(batches)],
                         distortion="mse", description="tiny mlp")


@pytest.mark.spec("DEF-LANCZOS")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lanczos_with_n_steps_gives_every_eigenvalue(seed):
    a = sym(30, seed)
    theta, w, V, T = lanczos(lambda v: a @ v, 30, 30, seed=seed)
    ref = torch.linalg.eigvalsh(a)
    assert theta.shape == (30,) and torch.allclose(theta, ref, atol=1e-9 * float(ref.abs().max()))
    assert torch.allclose(w.sum(), torch.tensor(1.0, dtype=torch.float64))
    # Ritz vectors are eigenvectors: ‖A v − θ v‖ small, and orthonormal (full reorthogonalization).
    assert float((a @ V - V * theta).norm()) < 1e-8 * float(ref.abs().max())
    assert torch.allclose(V.T @ V, torch.eye(30, dtype=torch.float64), atol=1e-10)


@pytest.mark.spec("DEF-LANCZOS")
def test_lanczos_finds_separated_top_eigenvalues_in_few_steps_and_quadrature_moments():
    spec = [100.0, -60.0, 40.0] + list(np.linspace(-1, 1, 197))
    a = sym(200, 3, spec)
    theta, w, V, T = lanczos(lambda v: a @ v, 200, 25, seed=4)
    top = sorted(theta.tolist(), key=abs, reverse=True)[:3]
    assert np.allclose(top, [100.0, -60.0, 40.0], rtol=1e-9)
    # Gauss quadrature: Σ τ_j θ_j^p = q0ᵀ A^p q0 for p ≤ 2m − 1 (q0 the normalised Rademacher start).
    g = torch.Generator().manual_seed(4)
    q0 = torch.randint(0, 2, (200,), generator=g, dtype=torch.float64) * 2 - 1
    q0 = q0 / q0.norm()
    v = q0.clone()
    for p in range(1, 8):
        v = a @ v
        assert float((w * theta**p).sum()) == pytest.approx(float(q0 @ v), rel=1e-8, abs=1e-10)
    # The density integrates to 1 and n Σ τθ is the start vector's Hutchinson sample.
    grid = np.linspace(-120, 120, 24001)
    dens = slq_density(theta, w, 200, grid, 0.5)
    assert np.trapezoid(dens, grid) == pytest.approx(1.0, rel=1e-6)
    assert 200 * float((w * theta).sum()) == pytest.approx(float(200 * q0 @ a @ q0), rel=1e-9)


@pytest.mark.spec("DEF-LANCZOS")
def test_lanczos_on_a_tiny_networks_exact_hessian():
    torch.manual_seed(5)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double()
    x = torch.randn(16, 3, dtype=torch.float64)
    y = torch.randn(16, 2, dtype=torch.float64)
    names = [n for n, _ in net.named_parameters()]
    shapes = [p.shape for p in net.parameters()]
    flat0 = torch.cat([p.detach().flatten() for p in net.parameters()])

    def loss(flat):
        parts, i = {}, 0
        for n, s in zip(names, shapes):
            parts[n] = flat[i:i + math.prod(s)].reshape(s)
            i += math.prod(s)
        return ((torch.func.functional_call(net, parts, (x,)) - y) ** 2).sum()

    h = torch.autograd.functional.hessian(loss, flat0)
    flat = flat0.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss(flat), flat, create_graph=True)

    def hvp(v):
        return torch.autograd.grad(g, flat, grad_outputs=v, retain_graph=True)[0]

    n = flat0.numel()
    theta, *_ = lanczos(hvp, n, n, seed=0)
    ref = torch.linalg.eigvalsh(h)
    assert torch.allclose(theta, ref, atol=1e-8 * float(ref.abs().max()))


@pytest.mark.spec("DEF-STUDY-GEOMETRY")
def test_the_studys_hessian_operator_is_the_layers_exact_hessian():
    mm = tiny_mlp(torch.float64, batches=1)
    site = linear_weight_sites(mm, "0.weight")[0]
    runner = layer_runner(mm, [site])
    p = mm.model[0].weight
    with gmod._OnlyParam(mm.model, p), torch.enable_grad():
        matvec, grad = gmod._hessian_operator(runner, site, [0])
        H = torch.stack([matvec(e) for e in torch.eye(p.numel(), dtype=torch.float64)], 1)
        theta, *_ = lanczos(matvec, p.numel(), p.numel(), seed=1)
    # The default loss: Σ ⟨r, y⟩ with r ~ N(0, I) seeded PROBE_SEED + batch.
    r = torch.randn(runner.reference[0].shape, generator=torch.Generator().manual_seed(gmod.PROBE_SEED), dtype=torch.float64)

    def probe(w):
        out = torch.func.functional_call(mm.model, {"0.weight": w}, (mm.batches[0],))
        return (r * out).sum()

    exact = torch.autograd.functional.hessian(probe, p.detach().clone()).reshape(p.numel(), p.numel())
    assert torch.allclose(H, exact, atol=1e-10) and torch.allclose(theta, torch.linalg.eigvalsh(exact), atol=1e-9)
    assert all(q.requires_grad for q in mm.model.parameters())  # flags restored


@pytest.mark.spec("DEF-LANCZOS")
def test_hutchinson_is_unbiased_within_its_exact_variance():
    a = sym(40, 7)
    P = 2000
    h = hutchinson(lambda v: a @ v, 40, P, seed=3)
    # Rademacher: Var(zᵀAz) = 2 Σ_{i≠j} A_ij².
    off = a - torch.diag(torch.diag(a))
    sd = math.sqrt(2 * float((off**2).sum()) / P)
    assert abs(h["trace"] - float(torch.trace(a))) < 5 * sd
    assert h["std_error"] == pytest.approx(sd, rel=0.1)
    d = torch.diag(torch.arange(1.0, 11.0, dtype=torch.float64))
    exact = hutchinson(lambda v: d @ v, 10, 3, seed=0)
    assert exact["trace"] == 55.0 and exact["std_error"] == 0.0


@pytest.mark.spec("DEF-STUDY-GEOMETRY")
def test_fisher_gram_matches_the_explicit_matrix():
    rng = np.random.default_rng(0)
    g = rng.standard_normal((6, 30)) * np.linspace(0.1, 3, 30)
    f = fisher_gram(g)
    F = g.T @ g / 6
    lam = np.linalg.eigvalsh(F)[::-1]
    assert np.allclose(f["eigenvalues"], lam[:6], atol=1e-12) and f["rank"] == 6
    assert np.allclose(F @ f["vectors"], f["vectors"] * f["eigenvalues"][None, :6], atol=1e-10)
    assert np.allclose(f["vectors"].T @ f["vectors"], np.eye(6), atol=1e-10)
    assert np.allclose(f["diag"], np.diag(F)) and f["kappa"] == pytest.approx(lam[0] / lam[5])
    assert f["effective_rank"] == pytest.approx(lam[:6].sum() ** 2 / np.sum(lam[:6] ** 2))
    dup = fisher_gram(np.vstack([g[:2], g[:2]]))  # rank 2 of 4 samples
    assert dup["rank"] == 2 and dup["vectors"].shape == (30, 2)
    z = g.copy()
    z[:, 3] = 0
    assert fisher_gram(z)["diag_below_floor"] == pytest.approx(1 / 30) and fisher_gram(z)["kappa_diag"] <= 1 / gmod.KAPPA_FLOOR


@pytest.mark.spec("DEF-STUDY-GEOMETRY")
def test_waterfilling_is_optimal_against_brute_force():
    rng = np.random.default_rng(1)
    for _ in range(5):
        c = rng.random(3) * 10.0 ** rng.integers(-2, 3, 3)
        b = waterfill_bits(c, 4)
        assert b.sum() == 12 and np.all((2 <= b) & (b <= 8))
        best = min(sum(ci * 4.0 ** -bi for ci, bi in zip(c, bb))
                   for bb in itertools.product(range(2, 9), repeat=3) if sum(bb) == 12)
        assert sum(ci * 4.0 ** -bi for ci, bi in zip(c, b)) == pytest.approx(best, rel=1e-12)
    assert list(waterfill_bits(np.ones(4), 5)) == [5, 5, 5, 5]


@pytest.mark.spec("DEF-LANCZOS")
def test_bad_input_is_named():
    with pytest.raises(InvalidParameterError, match="n must") as e:
        lanczos(lambda v: v, 0, 3)
    assert e.value.value == 0
    with pytest.raises(InvalidParameterError, match="steps"):
        lanczos(lambda v: v, 3, 0)
    with pytest.raises(InvalidParameterError, match="start"):
        lanczos(lambda v: v, 3, 2, start=[1.0, 2.0])
    with pytest.raises(InvalidParameterError, match="non-finite"):
        lanczos(lambda v: v * float("nan"), 3, 2)
    with pytest.raises(InvalidParameterError, match="probes"):
        hutchinson(lambda v: v, 3, 0)
    with pytest.raises(InvalidParameterError, match="non-finite"):
        fisher_gram(np.array([[1.0, np.inf]]))
    with pytest.raises(InvalidParameterError, match="mean bits") as e:
        waterfill_bits(np.ones(3), 9)
    assert e.value.value == 9
    mm = tiny_mlp()
    with pytest.raises(InvalidParameterError, match="--k 9 exceeds --steps 4") as e:
        geometry_study(mm, sites="*", k=9, steps=4)
    assert e.value.value == 9
    with pytest.raises(UnknownFormatError):
        geometry_study(mm, sites="*", format="bogus9")
    with pytest.raises(InvalidParameterError, match="--min-bits") as e:
        geometry_study(mm, sites="*", mean_bits=3, min_bits=4)
    assert e.value.value == 4
    with pytest.raises(InvalidParameterError, match="--fisher-samples") as e:
        geometry_study(mm, sites="*", fisher_samples=1)
    assert e.value.value == 1


@pytest.mark.spec("DEF-STUDY-GEOMETRY")
def test_study_on_a_tiny_mlp_and_a_failing_layer_lands_in_errors(monkeypatch):
    doc = geometry_study(tiny_mlp(), sites="*", k=3, steps=6, probes=4, fisher_samples=12, mean_bits=4, min_bits=2)
    assert [r["site"] for r in doc["results"]["layers"]] == ["0.weight", "2.weight"] and not doc["errors"]
    r = doc["results"]["layers"][0]
    assert len(r["hessian"]["top"]) == 3 and r["fisher"]["samples"] == 12 and r["fisher"]["rank"] <= 12
    assert doc["results"]["layers"][1]["hessian"]["top"] == [0.0]  # the probe loss is linear in the last layer: H = 0
    assert 0 <= r["overlap"]["hessian"] <= 1 and r["overlap"]["random"] == 3 / 60
    a = r["allocation"]
    assert a["uniform"]["total_bits"] == a["waterfill"]["total_bits"] == 4 * 10 and a["uniform"]["measured"] >= 0
    assert min(int(b) for b in a["waterfill"]["bits_histogram"]) >= 2 and a["min_bits"] == 2
    assert {c["id"] for c in doc["claims"]} == {"C-002-9.2-1", "C-003-opp5-1", "C-003-opp5-2"}
    json.dumps(doc, allow_nan=False)
    real = gmod.lanczos
    monkeypatch.setattr(gmod, "lanczos", lambda mv, n, s, **k: (_ for _ in ()).throw(RuntimeError("no double backward"))
                        if n == 30 else real(mv, n, s, **k))
    doc = geometry_study(tiny_mlp(), sites="*", k=3, steps=6, probes=4, fisher_samples=12)
    assert doc["errors"] == [{"what": "2.weight", "error": "RuntimeError: no double backward"}]
    assert len(doc["results"]["layers"]) == 1


@pytest.mark.spec("DEF-STUDY-GEOMETRY")
def test_cli_runs_the_study_on_a_tiny_model(tmp_path, capsys, monkeypatch):
    import natprec.cli.report as cli_report

    monkeypatch.setattr(cli_report, "load_model", lambda *a, **k: tiny_mlp())
    assert STUDIES["geometry"].run is geometry_study
    assert main(["study", "geometry", "--sites", "*", "--k", "2", "--steps", "5", "--probes", "3", "--fisher-samples", "8",
                 "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "C-003-opp5-1" in text and "Hessian: top-2" in text
    assert (tmp_path / "geometry.json").exists() and (tmp_path / "geometry_fisher_spectrum.png").exists()
