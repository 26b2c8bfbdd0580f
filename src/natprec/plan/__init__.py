"""DEF-PLAN — the information IR (spec/13): a precision plan derived from measured entropy, not searched.

``plan_model(mm)`` captures the model's dataflow graph (torch.export), measures every edge on
calibration data, derives gauges, domains and Landauer-costed boundaries, applies the plan with
every edge quantized at once, and compares it with uniform and measured plans.
"""

from .apply import UNIFORM_PLANS, apply_plan, compare_plans, pareto_front, torchao_config, uniform_plan
from .capture import OP_CLASSES, IRGraph, IRNode, capture, op_class
from .derive import RULES, derive_plan, edge_bits
from .entropy import GraphRuns, measure_graph, planned_edges, value_source
from .ir import (
    DEFAULT_LADDER,
    FLOAT32,
    SEMANTIC_TYPES,
    Gauge,
    GaugeTypeError,
    InformationBundle,
    SemanticType,
    check_gauge,
    gauge,
    smallest_covering,
)
from .model import DEFAULT_PLAN_RULE, plan_model

__all__ = [
    "plan_model", "DEFAULT_PLAN_RULE",
    "capture", "IRGraph", "IRNode", "OP_CLASSES", "op_class",
    "GraphRuns", "measure_graph", "planned_edges", "value_source",
    "RULES", "derive_plan", "edge_bits",
    "UNIFORM_PLANS", "uniform_plan", "apply_plan", "compare_plans", "pareto_front", "torchao_config",
    "SemanticType", "SEMANTIC_TYPES", "InformationBundle", "Gauge", "GaugeTypeError", "check_gauge", "gauge",
    "smallest_covering", "DEFAULT_LADDER", "FLOAT32",
]
