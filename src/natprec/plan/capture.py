"""DEF-IR-CAPTURE — the dataflow graph of a model (torch.export), with a tap on every tensor edge.

Every node of the exported graph whose value is one tensor is an edge of the IR; a tap
inserted after it lets the planner record the value on calibration data, replace it (simulated
quantization) or take the gradient through it.  Nodes are classed by what a gauge change next
to them costs: contractions (the accumulators), element-wise operations (fusable into an
epilogue), layout operations (no new values), reductions (need fresh global data).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from natprec.model.deps import require_torch
from natprec.model.runner import MeasuredModel, call_model
from natprec.reference.errors import InvalidParameterError

__all__ = ["OP_CLASSES", "IRNode", "IRGraph", "capture", "compared_output", "op_class"]

#: aten op name (without namespace and overload) → class.  Element-wise ops are the seed's fusable list
#: (scale, bias, clamp, activation, residual add, conversion); reductions need statistics of a whole row.
OP_CLASSES = {
    "contraction": ("linear", "matmul", "mm", "bmm", "addmm", "baddbmm", "embedding", "conv1d", "conv2d", "conv3d",
                    "convolution", "einsum"),
    "elementwise": ("add", "sub", "rsub", "mul", "div", "neg", "gelu", "relu", "silu", "tanh", "sigmoid", "clamp",
                    "clamp_min", "clamp_max", "hardtanh", "where", "to", "_to_copy", "pow", "sqrt", "rsqrt", "exp",
                    "abs", "type_as", "masked_fill", "scaled_dot_product_attention_mask"),
    "layout": ("view", "reshape", "_unsafe_view", "transpose", "permute", "contiguous", "unsqueeze", "squeeze",
               "expand", "slice", "select", "clone", "alias", "t", "flatten", "dropout", "detach", "unflatten"),
    "reduction": ("layer_norm", "native_layer_norm", "softmax", "_softmax", "log_softmax", "mean", "sum", "amax",
                  "amin", "var", "std", "cumsum", "max", "min", "norm", "rms_norm", "group_norm", "batch_norm"),
}
_CLASS_OF = {op: cls for cls, ops in OP_CLASSES.items() for op in ops}


def op_class(target) -> tuple[str, str]:
    """DEF-IR-CAPTURE — (short op name, class) of an aten target; class "other" for ops none of the lists names."""
    text = str(target)
    name = text.split(".")[1] if text.startswith("aten.") else getattr(target, "__name__", text)
    return name, _CLASS_OF.get(name, "other")


@dataclass
class IRNode:
    """DEF-IR-CAPTURE — one edge of the IR: the node that produces a tensor, what it consumes, and its role."""

    name: str
    op: str
    op_class: str
    inputs: tuple
    role: str  # "input", "parameter", "activation" or "output"
    source: str  # parameter path, or the innermost module that ran the op
    dtype: str
    floating: bool


@dataclass
class IRGraph:
    """DEF-IR-CAPTURE — the tapped graph module, its edges in topological order and what could not be planned."""

    module: object
    nodes: dict
    unsupported: list = field(default_factory=list)
    tap: object = None
    order: list = field(default_factory=list)

    def consumers(self, name: str) -> list:
        return [n for n in self.nodes.values() if name in n.inputs]

    def run(self, mm: MeasuredModel, b: int):
        """The compared output of calibration batch ``b`` through the tapped graph (taps as currently set)."""
        return compared_output(mm, self.module, mm.batches[b])


def compared_output(mm: MeasuredModel, module, batch):
    """DEF-IR-CAPTURE — what the task distortion compares: ``mm.output_fn(module(batch), batch)``, or the first tensor
    of the output (as natprec.model's Runner)."""
    out = call_model(module, batch)
    if mm.output_fn is not None:
        return mm.output_fn(out, batch)
    torch = require_torch()
    while not isinstance(out, torch.Tensor):
        out = out[0] if isinstance(out, (tuple, list)) else next(iter(out.values()))
    return out


class Tap:
    """What every tap does on the next run: record values, replace some, or keep tensors for a gradient."""

    def __init__(self):
        self.record: dict | None = None
        self.replace: dict = {}
        self.keep: dict | None = None

    def __call__(self, name, x):
        if name in self.replace:
            x = self.replace[name](x)
        if self.record is not None:
            self.record.setdefault(name, []).append(x.detach())
        if self.keep is not None and x.requires_grad:
            x = x.view_as(x)  # a node of its own: the gradient through this edge only
            self.keep[name] = x
        return x


def _tap_fn(tap):
    def natprec_tap(name, x):
        return tap(name, x)
    return natprec_tap


def _export(mm: MeasuredModel):
    torch = require_torch()
    from torch.export import Dim

    batch = mm.batches[0]
    model = mm.model.eval()
    if isinstance(batch, dict):
        args, kwargs = (), dict(batch)
    elif isinstance(batch, (tuple, list)):
        args, kwargs = tuple(batch), {}
    else:
        args, kwargs = (batch,), {}

    def dyn(t):
        return {i: Dim.AUTO for i in range(min(t.ndim, 2))} if isinstance(t, torch.Tensor) else None

    dynamic = ({k: dyn(v) for k, v in kwargs.items()} if kwargs else None, tuple(dyn(a) for a in args))
    try:
        ep = torch.export.export(model, args, kwargs=kwargs or None, strict=False,
                                 dynamic_shapes=dynamic[0] if kwargs else dynamic[1])
    except Exception as exc:  # user models: torch.export's many failure types, reported with the cause
        raise InvalidParameterError(f"torch.export could not capture the model: {type(exc).__name__}: {exc}"[:600],
                                    value=mm.description) from None
    return ep.module()


def capture(mm: MeasuredModel) -> IRGraph:
    """DEF-IR-CAPTURE — export ``mm.model`` on its first calibration batch (batch and sequence axes dynamic) and tap
    every node whose value is one tensor.

    Nodes whose value is not one tensor (tuples, symbols, None) are not edges: they are listed in
    ``unsupported`` with the reason, and the rest of the graph is planned.
    """
    torch = require_torch()
    gm = _export(mm)
    tap = Tap()
    fn = _tap_fn(tap)
    nodes, unsupported, order, alias = {}, [], [], {}
    graph = gm.graph
    outputs = {a.name for n in graph.nodes if n.op == "output" for a in _flat_nodes(n.args, torch)}
    for n in list(graph.nodes):
        if n.op == "output":
            continue
        val = n.meta.get("val")
        if not isinstance(val, torch.Tensor):
            if n.op == "call_function":
                unsupported.append({"node": n.name, "op": str(n.target), "reason": f"value is {type(val).__name__}, not one tensor"})
            continue
        if n.op == "get_attr":
            role, op, cls, source = "parameter", "parameter", "parameter", str(n.target)
        elif n.op == "placeholder":
            role, op, cls, source = "input", "input", "input", n.name
        else:
            op, cls = op_class(n.target)
            stack = n.meta.get("nn_module_stack") or {}
            source = list(stack.values())[-1][0] if stack else ""
            role = "output" if n.name in outputs else "activation"
            if cls == "other" and val.dtype.is_floating_point:
                unsupported.append({"node": n.name, "op": str(n.target),
                                    "reason": "op of no known class: measured and planned, never fused"})
        inputs = tuple(dict.fromkeys(alias.get(a.name, a.name) for a in _flat_nodes((n.args, n.kwargs), torch)
                                     if alias.get(a.name, a.name) in nodes))
        nodes[n.name] = IRNode(n.name, op, cls, inputs, role, source, str(val.dtype).replace("torch.", ""),
                               val.dtype.is_floating_point)
        order.append(n.name)
        with graph.inserting_after(n):
            t = graph.call_function(fn, (n.name, n))
        alias[t.name] = n.name
        n.replace_all_uses_with(t, delete_user_cb=lambda user, t=t: user is not t)
    gm.recompile()
    return IRGraph(gm, nodes, unsupported, tap, order)


def _flat_nodes(obj, torch):
    out = []
    torch.fx.node.map_arg(obj, lambda a: out.append(a) or a)
    return out
