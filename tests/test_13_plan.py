"""spec/13 — the information IR: bundles and gauges, capture, edge entropies, derived plans, epilogue synthesis."""

from __future__ import annotations

import math

import numpy as np
import pytest

from natprec.plan import (
    FLOAT32,
    SEMANTIC_TYPES,
    GaugeTypeError,
    InformationBundle,
    check_gauge,
    derive_plan,
    gauge,
    pareto_front,
    smallest_covering,
)
from natprec.plan.epilogue import epilogue_channel, synthesize_epilogue
from natprec.reference.errors import EmptyInputError, InvalidParameterError, NonFiniteInputError, UnknownFormatError

torch = pytest.importorskip("torch", reason="the IR captures torch models (pip install natprec[torch])")

from natprec.model import MeasuredModel  # noqa: E402
from natprec.plan import GraphRuns, capture, measure_graph, plan_model  # noqa: E402


@pytest.mark.spec("DEF-GAUGE")
def test_gauge_capacity_is_log2_of_distinct_values():
    assert gauge("int4").capacity_bits == 4.0 and gauge("nf4").capacity_bits == 4.0
    assert gauge("float8_e4m3fn").capacity_bits == pytest.approx(math.log2(253))  # 256 codes − 2 NaN − one duplicate zero
    assert gauge(FLOAT32).capacity_bits == pytest.approx(math.log2(2 * (2 ** 31 - 2 ** 23) - 1))
    assert gauge("mxfp4").bits_per_element == 4.25
    with pytest.raises(UnknownFormatError):
        gauge("int99x")


@pytest.mark.spec("DEF-GAUGE-CHECK")
def test_the_seeds_type_error():
    b = InformationBundle((8, 384), 24.0, SEMANTIC_TYPES["activations"])
    with pytest.raises(GaugeTypeError, match=r"expects H ≤ 4 \(int4\) but received H = 24") as e:
        check_gauge(b, gauge("int4"))
    assert e.value.value == 24.0 and isinstance(e.value, TypeError)
    check_gauge(InformationBundle((8,), 4.0, SEMANTIC_TYPES["weights"]), gauge("int4"))  # equality fits
    assert smallest_covering(4.0).format == "int4" and smallest_covering(4.01).format == "int5"
    assert smallest_covering(40).format == FLOAT32


@pytest.mark.spec("DEF-INFO-BUNDLE")
def test_bundles_check_their_entropy():
    with pytest.raises(InvalidParameterError, match="mask carry at most 1 bits"):
        InformationBundle((4,), 1.5, SEMANTIC_TYPES["mask"])
    for bad in (-1.0, math.nan, math.inf, True):
        with pytest.raises(InvalidParameterError):
            InformationBundle((4,), bad, SEMANTIC_TYPES["activations"])


class Residual(torch.nn.Module):
    """x → Linear → ReLU → Linear, plus x: a contraction, an element-wise activation, a residual add."""

    def __init__(self, w1=None):
        super().__init__()
        self.a = torch.nn.Linear(16, 32)
        self.b = torch.nn.Linear(32, 16)
        if w1 is not None:
            with torch.no_grad():
                self.a.weight.copy_(w1)

    def forward(self, x):
        return x + self.b(torch.relu(self.a(x)))


def tiny_mm(w1=None, batches=2):
    torch.manual_seed(0)
    model = Residual(w1)
    g = torch.Generator().manual_seed(1)
    return MeasuredModel(model=model, batches=[torch.randn(12, 16, generator=g) for _ in range(batches)], description="residual")


@pytest.mark.spec("DEF-IR-CAPTURE")
def test_capture_classes_every_edge_and_reproduces_the_model_bit_for_bit():
    mm = tiny_mm()
    g = capture(mm)
    ops = {n.op: n.op_class for n in g.nodes.values()}
    assert ops["linear"] == "contraction" and ops["relu"] == "elementwise" and ops["add"] == "elementwise"
    roles = {n.role for n in g.nodes.values()}
    assert roles == {"input", "parameter", "activation", "output"}
    add = next(n for n in g.nodes.values() if n.op == "add")
    assert add.role == "output" and len(add.inputs) == 2 and "x" in add.inputs
    with torch.no_grad():
        for b in range(2):
            assert torch.equal(g.run(mm, b), mm.model(mm.batches[b]))


@pytest.mark.spec("DEF-IR-CAPTURE")
def test_unsupported_constructs_are_reported_and_the_rest_is_planned():
    class Odd(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(8, 8)

        def forward(self, x):
            v, i = torch.max(self.lin(x), dim=1)  # a node whose value is a tuple
            return torch.erf(v)[:, None]  # an op none of the classes lists

    torch.manual_seed(0)
    mm = MeasuredModel(model=Odd(), batches=[torch.randn(6, 8)], description="odd")
    g = capture(mm)
    reasons = {u["node"]: u["reason"] for u in g.unsupported}
    assert any("not one tensor" in r for r in reasons.values()) and any("no known class" in r for r in reasons.values())
    runs = GraphRuns(g, mm)
    m = measure_graph(runs, tolerance=1e-3, backward_tolerance=1e-2, budget="each")
    assert m["edges"]["linear"]["step"] is not None and m["edges"]["erf"]["entropy_bits"] is not None


def sixteen_values():
    """A 32×16 weight holding each of the 16 values k/8, k = −8 … 7, exactly 32 times."""
    v = np.repeat(np.arange(-8, 8) / 8.0, 32)
    return torch.from_numpy(np.random.default_rng(0).permutation(v).reshape(32, 16).astype(np.float32))


@pytest.mark.spec("DEF-PLAN-DERIVE", "DEF-IR-ENTROPY")
def test_a_tensor_with_16_realized_values_gets_a_4_bit_gauge():
    mm = tiny_mm(sixteen_values())
    runs = GraphRuns(capture(mm), mm)
    m = measure_graph(runs, tolerance=1e-9, backward_tolerance=1e-2, budget="each")
    w = m["edges"]["a_weight"]
    # Any step ≤ 1/8 (the values' spacing) keeps the 16 values apart; the tolerance forces one that fine.
    assert w["step"] <= 0.125 and w["cells_bits"] == 4 and w["entropy_bits"] == 4.0  # uniform over 16 cells
    for rule in ("entropy", "support"):
        assert derive_plan(m, rule=rule)["edges"]["a_weight"]["gauge"] == "int4"


def _measurement(edges):
    """A measurement document for derive_plan: {name: (op, op_class, inputs, H, H_bwd, cells, b*)}."""
    out = {}
    for name, (op, cls, inputs, h, hb, cells, bstar) in edges.items():
        out[name] = {"node": name, "op": op, "op_class": cls, "role": "parameter" if op == "parameter" else "activation",
                     "inputs": list(inputs), "value_of": name, "dtype": "float32", "elements": 64, "elements_per_sample": 8.0,
                     "semantic": "activations", "constant": False, "entropy_bits": h, "backward": {"entropy_bits": hb},
                     "cells_bits": cells, "b_star": bstar, "error": None}
    return {"edges": out, "tolerance": 1e-3}


@pytest.mark.spec("DEF-PLAN-BOUNDARY")
def test_a_bijective_remap_is_a_free_boundary_and_an_erasure_is_not():
    m = _measurement({
        "x": ("linear", "contraction", (), 3.9, 3.0, 4, 4),
        "y": ("mul", "elementwise", ("x",), 3.9, 3.0, 4, 6),  # y = 2x + 1: the same 3.9 bits, a wider gauge
        "z": ("linear", "contraction", ("y",), 7.5, 3.0, 8, 3),
    })
    plan = derive_plan(m, rule="measured")
    assert [plan["edges"][k]["gauge"] for k in "xyz"] == ["int4", "int6", "int3"]
    (xy, yz) = plan["boundaries"]
    assert xy["free"] and xy["cost_j"] == 0.0 and xy["fusion"] == "fuse"
    assert not yz["free"] and yz["fusion"] == "not free" and yz["cost_j_per_element"] > 0  # 7.5 bits into 3
    assert len(plan["domains"]) == 3
    from natprec.plan.derive import disagreements

    dis = disagreements(plan, m)  # measured rule: every gauge is b*_v itself
    assert dis == [] and [d["edge"] for d in disagreements(derive_plan(m, rule="entropy"), m)] == ["z", "y"]
    same = derive_plan(m, rule="entropy")  # x and y both need int4: one domain, no boundary between them
    assert same["edges"]["x"]["domain"] == same["edges"]["y"]["domain"] and len(same["boundaries"]) == 1
    with pytest.raises(InvalidParameterError, match="--rule must be one of"):
        derive_plan(m, rule="guess")


@pytest.mark.spec("DEF-PLAN-DERIVE")
def test_the_seed_rule_takes_the_smaller_of_forward_and_backward_entropy():
    m = _measurement({"x": ("linear", "contraction", (), 6.2, 2.5, 7, 7)})
    assert derive_plan(m, rule="seed")["edges"]["x"]["gauge"] == "int3"
    assert derive_plan(m, rule="entropy")["edges"]["x"]["gauge"] == "int7"
    assert derive_plan(m, rule="support")["edges"]["x"]["gauge"] == "int7"


@pytest.mark.spec("DEF-EPILOGUE-SYNTHESIS")
def test_requantization_with_more_values_than_codewords_is_impossible():
    r = epilogue_channel(np.arange(20) * 0.37, "int4")
    assert not r["injective"] and r["collisions"] == 4 and r["impossible"].startswith("pigeonhole: |S| = 20")
    r = epilogue_channel(np.linspace(-1, 1, 16), "nf4", "silu")  # silu ≥ −0.278 reaches 12 of nf4's 16 cells
    assert r["reachable_cells"] == 12 and r["impossible"] and r["collisions"] == 4


@pytest.mark.spec("DEF-EPILOGUE-SYNTHESIS")
def test_epilogue_synthesis_finds_injective_maps_with_a_margin():
    from natprec.reference import quantize, voronoi_margin
    from natprec.reference.epilogue import activation_f32

    for values, act in (([0.1, 0.2, 0.3], "identity"), ([0, 1, 1.5, 2, 2.0001], "gelu"), ([-3, -2, -1, 0, 1], "relu")):
        r = epilogue_channel(values, "int4", act)
        assert r["injective"] and r["proved"] and r["impossible"] is None
        s = np.unique(np.asarray(values, dtype=np.float32))
        t = np.add(np.multiply(s, np.float32(r["scale"]), dtype=np.float32), np.float32(r["bias"]), dtype=np.float32)
        y = activation_f32(t, act)
        assert np.unique(quantize(y, "int4", saturate=True)).size == s.size  # the returned (a, b) is injective
        assert float(voronoi_margin(y, "int4").min()) == pytest.approx(r["min_margin"])
    both = synthesize_epilogue(np.array([[0.1, 5.0], [0.2, 6.0], [0.3, 7.0]]), "int4")
    assert both["injective"] == 2 and both["unresolved"] == 0
    with pytest.raises(EmptyInputError):
        epilogue_channel([], "int4")
    with pytest.raises(NonFiniteInputError):
        epilogue_channel([1.0, math.inf], "int4")
    with pytest.raises(InvalidParameterError, match="activation must be one of"):
        epilogue_channel([1.0], "int4", "tanh")


@pytest.mark.spec("DEF-PLAN-APPLY")
def test_pareto_front():
    pts = [{"bits": 4, "distortion": 0.1}, {"bits": 8, "distortion": 0.01}, {"bits": 8, "distortion": 0.02},
           {"bits": 3, "distortion": None}, {"bits": 4, "distortion": 0.1}]
    assert pareto_front(pts) == [0, 1, 4]  # equal points do not dominate each other


@pytest.mark.spec("DEF-PLAN")
def test_plan_model_end_to_end_on_a_small_network():
    doc = plan_model(tiny_mm(), tolerance=1e-3, export=False)
    res = {r["plan"]: r for r in doc["comparison"]}
    assert set(res) >= {"entropy", "seed", "support", "measured", "uniform int8", "resolution entropy-coded"}
    m = doc["measurement"]
    n = sum(1 for e in m["edges"].values() if "constant" in e)
    assert m["edge_tolerance"] == pytest.approx(1e-3 / n)
    # Each edge kept D ≤ ε/N alone; all at once the errors add to first order, so the whole plan stays within ε.
    assert res["resolution entropy-coded"]["distortion"] <= 1e-3
    assert res["resolution entropy-coded"]["bits"] <= res["resolution fixed-rate"]["bits"]
    assert any(r["pareto"] for r in doc["comparison"])
    for b in doc["plan"]["boundaries"]:  # THM-FREE-BOUNDARY on every boundary of the plan
        assert b["free"] == (b["h_source_bits"] <= b["b_target_bits"]) and (b["cost_j"] == 0.0) == b["free"]
    assert doc["epilogue"]["site"].startswith("a") and len(doc["epilogue"]["channels"]) == 8
    with pytest.raises(InvalidParameterError, match="--budget"):
        measure_graph(GraphRuns(capture(tiny_mm()), tiny_mm()), tolerance=1e-3, backward_tolerance=1e-2, budget="all")
    with pytest.raises(InvalidParameterError, match="--rules: unknown rule"):
        plan_model(tiny_mm(), rules=("entropy", "magic"))
    with pytest.raises(InvalidParameterError, match="--tolerance"):
        plan_model(tiny_mm(), tolerance=0)


@pytest.mark.spec("DEF-PLAN-EXPORT")
def test_the_torchao_export_gives_the_distortion_measured_for_it():
    pytest.importorskip("torchao", reason="the export targets torchao (pip install natprec[oracles])")
    doc = plan_model(tiny_mm(), tolerance=1e-3, rules=("measured",))
    ex = doc["export"]
    assert set(ex["modules"]) <= {"a", "b"} and ex["modules"]
    assert ex["applied_distortion"] == pytest.approx(ex["predicted_distortion"], rel=0.5)


@pytest.mark.spec("DEF-PLAN")
def test_the_plan_command(tmp_path, capsys, monkeypatch):
    import natprec.cli.report as cli_report
    from natprec.cli import main

    monkeypatch.setattr(cli_report, "load_model", lambda *a, **k: tiny_mm())
    assert main(["plan", "--out", str(tmp_path), "--no-export", "--threads", "1"]) == 0
    text = capsys.readouterr().out
    assert "natprec plan: residual" in text and "resolution entropy-coded" in text and "domains" in text
    assert (tmp_path / "plan.json").exists() and (tmp_path / "plan.png").stat().st_size > 10_000
    assert main(["plan", "--rules", "entropy,x"]) == 2 and "unknown rule" in capsys.readouterr().err
    assert main(["plan", "--tolerance", "-1"]) == 2 and "--tolerance" in capsys.readouterr().err


class MaskedAttention(torch.nn.Module):
    """Scores plus (1 − mask)·finfo.min, then softmax: the masked positions hold sentinels far beyond any value."""

    def __init__(self):
        super().__init__()
        self.q = torch.nn.Linear(8, 8)

        self.k = torch.nn.Linear(8, 8)

    def forward(self, x, mask):
        s = self.q(x) @ self.k(x).transpose(1, 2)
        s = s + (1.0 - mask[:, None, :].float()) * torch.finfo(torch.float32).min
        return (torch.softmax(s, dim=-1) @ x).flatten(1)


@pytest.mark.spec("DEF-IR-ENTROPY")
def test_mask_sentinels_are_carried_exactly_and_input_derived_edges_are_not_planned():
    torch.manual_seed(0)
    mask = torch.ones(4, 6, dtype=torch.long)
    mask[:, 4:] = 0
    mm = MeasuredModel(model=MaskedAttention(), batches=[(torch.randn(4, 6, 8), mask)], description="masked")
    g = capture(mm)
    runs = GraphRuns(g, mm)
    m = measure_graph(runs, tolerance=1e-4, backward_tolerance=1e-2, budget="each")
    planned = {n.name for n in __import__("natprec.plan", fromlist=["planned_edges"]).planned_edges(g)}
    masked = [k for k, e in m["edges"].items() if e.get("sentinels")]
    assert masked and all(m["edges"][k]["sentinels"] == 4 * 6 * 2 for k in masked)  # 2 masked keys per query
    assert not any(m["edges"][k].get("semantic") == "mask" and k in planned for k in m["edges"])
    derived = [k for k, e in m["edges"].items() if e.get("semantic") in ("mask", "index")]
    assert derived and not set(derived) & planned
    # An int8 gauge at the masked scores stays finite and close: the sentinels do not set the scale.
    plan = derive_plan(m, rule="measured")
    assert all(m["edges"][k]["b_star"] is not None for k in masked)
    from natprec.plan import apply_plan, uniform_plan

    assert apply_plan(runs, m, uniform_plan(plan, "int8"))["distortion"] < 1e-2
