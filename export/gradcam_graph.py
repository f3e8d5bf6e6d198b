"""Grad-CAM inside any ONNX classifier: append the reverse-mode gradient of the head to the graph.

Why at the ONNX level: the source frameworks cannot export their own gradient ops (tf2onnx has no
ReluGrad/MaxPoolGrad, PyTorch's exporters refuse autograd inside ``forward``), so the exporter
differentiates the part of the graph after the Grad-CAM target ("the head") itself.

The gradients of all C class logits are computed at once by folding the classes into the batch axis:
a gradient tensor has shape ``(F*N, ...)`` with row ``f*N + n`` holding d logit_f / d tensor for
sample n (class-major). Forward tensors that the backward pass needs are tiled ``F`` times along
the batch axis to match. ``F`` is C, or 1 when the class is chosen by an extra ``class_input``.

The result has two more outputs, as the model contract says: ``gradcam_activations`` (N, K, h, w)
and ``gradcam_weights`` (N, F, K) = spatial mean of the gradient of each logit w.r.t. the target.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from export.errors import ExportError, UnsupportedGraphError

ACTIVATIONS_OUTPUT = "gradcam_activations"
WEIGHTS_OUTPUT = "gradcam_weights"
CLASS_INPUT = "gradcam_class"
DEFAULT_MAX_ALL_CLASSES = 16
_PREFIX = "gradcam_bw/"
_INT_MAX = np.iinfo(np.int64).max

# Ops whose outputs never carry a gradient (they read shapes or produce indices).
_STOP_OPS = {"Shape", "Size", "NonZero", "ArgMax", "ArgMin", "Equal", "Greater", "Less", "GreaterOrEqual",
             "LessOrEqual", "Not", "And", "Or", "ConstantOfShape", "EyeLike", "RandomNormalLike",
             "RandomUniformLike"}
# Ops that only move or pick data and keep the layout, so the auto target may step back through them.
_PASS_BACK_OPS = {"Identity", "Dropout", "Transpose", "MaxPool", "AveragePool"}
_NCHW_OPS = {"Conv", "ConvTranspose", "MaxPool", "AveragePool", "BatchNormalization", "GlobalAveragePool",
             "GlobalMaxPool", "LRN", "InstanceNormalization"}
_FLOAT_TYPES = {TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16}


@dataclass(frozen=True)
class TensorInfo:
    """Static facts about one tensor from ONNX shape inference (dims are None where symbolic)."""

    elem_type: int | None
    dims: tuple[int | None, ...] | None

    @property
    def rank(self) -> int | None:
        return None if self.dims is None else len(self.dims)


@dataclass(frozen=True)
class GradCamGraphInfo:
    """What the gradient builder found and added; the exporter turns this into the metadata."""

    target: str
    target_layout: str
    logits: str
    scores_output: str
    scores_kind: str
    num_classes: int
    channels: int
    height: int | None
    width: int | None
    class_input: str | None
    head_ops: tuple[str, ...] = field(default_factory=tuple)
    activations: str = ACTIVATIONS_OUTPUT
    weights: str = WEIGHTS_OUTPUT


def opset_version(model: onnx.ModelProto) -> int:
    """The default-domain opset the model was written for."""
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    raise ExportError("the model declares no default ONNX opset")


def tensor_infos(model: onnx.ModelProto) -> dict[str, TensorInfo]:
    """Element types and static shapes of every tensor that shape inference can describe."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception as exc:  # onnx raises several types here; all mean "cannot analyse"
        raise ExportError(f"ONNX shape inference failed on this model ({exc})") from None
    infos: dict[str, TensorInfo] = {}
    graph = inferred.graph
    for vi in [*graph.input, *graph.value_info, *graph.output]:
        ttype = vi.type.tensor_type
        dims: tuple[int | None, ...] | None = None
        if ttype.HasField("shape"):
            dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in ttype.shape.dim)
        infos[vi.name] = TensorInfo(ttype.elem_type or None, dims)
    for init in graph.initializer:
        infos[init.name] = TensorInfo(init.data_type, tuple(init.dims))
    return infos


def _constant_value(model: onnx.ModelProto, name: str) -> np.ndarray | None:
    for init in model.graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            for attr in node.attribute:
                if attr.name == "value":
                    return numpy_helper.to_array(attr.t)
                if attr.name == "value_ints":
                    return np.array(list(attr.ints), dtype=np.int64)
                if attr.name == "value_int":
                    return np.array(attr.i, dtype=np.int64)
    return None


def _attr(node: onnx.NodeProto, name: str, default=None):
    for attr in node.attribute:
        if attr.name == name:
            return helper.get_attribute_value(attr)
    return default


def find_scores(model: onnx.ModelProto, scores_output: str | None = None) -> tuple[str, str, str]:
    """(scores output name, its kind, the logits tensor): the Softmax (or Sigmoid) input when the graph ends in one."""
    outputs = [o.name for o in model.graph.output]
    if not outputs:
        raise ExportError("the model has no outputs")
    name = scores_output or outputs[0]
    if name not in outputs:
        raise ExportError(f"'{name}' is not an output of the model (outputs: {', '.join(outputs)})")
    producers = {o: n for n in model.graph.node for o in n.output}
    current = name
    while current in producers and producers[current].op_type in ("Identity", "Dropout"):
        current = producers[current].input[0]
    node = producers.get(current)
    if node is not None and node.op_type in ("Softmax", "Sigmoid"):  # a sigmoid per class: read as shares of their sum
        return name, "probabilities", node.input[0]
    return name, "logits", name


def _is_float(info: TensorInfo | None) -> bool:
    return info is None or info.elem_type is None or info.elem_type in _FLOAT_TYPES


def _reachable_from(model: onnx.ModelProto, sources: Iterable[str], infos: dict[str, TensorInfo]) -> set[str]:
    """Float tensors that depend on ``sources`` through ops that can carry a gradient."""
    reached = set(sources)
    for node in model.graph.node:
        if node.op_type in _STOP_OPS:
            continue
        if any(i in reached for i in node.input if i):
            for out in node.output:
                if out and _is_float(infos.get(out)):
                    reached.add(out)
    return reached


def _ancestors(model: onnx.ModelProto, tensor: str) -> set[str]:
    producers = {o: n for n in model.graph.node for o in n.output}
    seen = {tensor}
    stack = [tensor]
    while stack:
        node = producers.get(stack.pop())
        if node is None:
            continue
        for inp in node.input:
            if inp and inp not in seen:
                seen.add(inp)
                stack.append(inp)
    return seen


def tensor_layouts(model: onnx.ModelProto, input_layout: str, infos: dict[str, TensorInfo]) -> dict[str, str]:
    """Channels-first or -last for rank-4 tensors, propagated from the input, Conv-like ops and Transposes."""
    layouts: dict[str, str] = {}
    for inp in model.graph.input:
        layouts[inp.name] = input_layout
    for node in model.graph.node:
        out = node.output[0] if node.output else ""
        if node.op_type in _NCHW_OPS:
            layouts[out] = "NCHW"
        elif node.op_type == "Transpose":
            src = layouts.get(node.input[0])
            perm = list(_attr(node, "perm", []) or [])
            if src and len(perm) == 4:
                new = "".join(src[p] for p in perm)
                if new in ("NCHW", "NHWC"):
                    layouts[out] = new
        else:
            for inp in node.input:
                info = infos.get(out)
                if inp in layouts and (info is None or info.rank in (None, 4)):
                    layouts[out] = layouts[inp]
                    break
    return layouts


def _spatial(dims: tuple[int | None, ...], layout: str) -> tuple[int | None, int | None]:
    return (dims[2], dims[3]) if layout == "NCHW" else (dims[1], dims[2])


def find_target(model: onnx.ModelProto, logits: str, input_layout: str = "NCHW") -> str:
    """The last rank-4 activation with spatial size > 1 that feeds the logits (before any trailing pooling)."""
    infos = tensor_infos(model)
    layouts = tensor_layouts(model, input_layout, infos)
    inputs = {i.name for i in model.graph.input}
    feeding = _ancestors(model, logits) & _reachable_from(model, inputs, infos)
    producers = {o: n for n in model.graph.node for o in n.output}

    def spatial_4d(name: str) -> bool:
        info = infos.get(name)
        if info is None or info.rank != 4 or not _is_float(info) or name in inputs:
            return False
        h, w = _spatial(info.dims, layouts.get(name, "NCHW"))  # type: ignore[arg-type]
        return not (h == 1 and w == 1)

    chosen = None
    for node in model.graph.node:
        for out in node.output:
            if out in feeding and spatial_4d(out):
                chosen = out
    if chosen is None:
        raise ExportError("no rank-4 spatial activation feeds the class scores; give the Grad-CAM target layer")
    while chosen in producers and producers[chosen].op_type in _PASS_BACK_OPS:
        previous = producers[chosen].input[0]
        if not spatial_4d(previous):
            break
        chosen = previous
    return chosen


class _Emitter:
    """Appends backward nodes and constants with unique names, aware of the model's opset."""

    def __init__(self, opset: int, taken: set[str]) -> None:
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._taken = taken
        self._count = 0

    def fresh(self, hint: str) -> str:
        while True:
            self._count += 1
            name = f"{_PREFIX}{hint}_{self._count}"
            if name not in self._taken:
                self._taken.add(name)
                return name

    def op(self, op_type: str, inputs: list[str], outputs: int | list[str] = 1, **attrs) -> str | list[str]:
        names = outputs if isinstance(outputs, list) else [self.fresh(op_type) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, names, name=self.fresh(f"{op_type}_node"), **attrs))
        return names[0] if len(names) == 1 else names

    def const(self, value, hint: str = "c", dtype=np.float32) -> str:
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def ints(self, values: Iterable[int]) -> str:
        return self.const(list(values), "ints", np.int64)

    def reduce(self, op_type: str, x: str, axes: list[int], keepdims: int) -> str:
        """ReduceSum/Mean/Max with the axes as an attribute or an input, as the opset requires."""
        axes_as_input = self.opset >= (13 if op_type == "ReduceSum" else 18)
        if axes_as_input:
            return self.op(op_type, [x, self.ints(axes)], keepdims=keepdims)  # type: ignore[return-value]
        return self.op(op_type, [x], axes=axes, keepdims=keepdims)  # type: ignore[return-value]

    def unsqueeze(self, x: str, axes: list[int]) -> str:
        if self.opset >= 13:
            return self.op("Unsqueeze", [x, self.ints(axes)])  # type: ignore[return-value]
        return self.op("Unsqueeze", [x], axes=axes)  # type: ignore[return-value]


class _Backward:
    """Reverse-mode differentiation of the head, one op at a time."""

    def __init__(self, model: onnx.ModelProto, infos: dict[str, TensorInfo], emitter: _Emitter, fold: int,
                 batched: set[str], active: set[str]) -> None:
        self.model = model
        self.infos = infos
        self.e = emitter
        self.fold = fold
        self.batched = batched
        self.active = active
        self._tiled: dict[str, str] = {}
        self._shapes: dict[str, str] = {}

    # --- helpers -------------------------------------------------------------------------------
    def dims(self, name: str) -> tuple[int | None, ...]:
        info = self.infos.get(name)
        if info is None or info.dims is None:
            raise UnsupportedGraphError(f"the shape of tensor '{name}' is unknown to ONNX shape inference")
        return info.dims

    def static_dims(self, name: str, what: str) -> tuple[int, ...]:
        dims = self.dims(name)
        if any(d is None for d in dims[1:]):
            raise UnsupportedGraphError(f"{what} needs the static shape of '{name}', but it is {dims}")
        return tuple(int(d or 0) for d in dims)

    def tiled(self, name: str) -> str:
        """The forward tensor repeated once per folded class, so it lines up with the gradients."""
        if self.fold == 1 or name not in self.batched:
            return name
        if name not in self._tiled:
            rank = len(self.dims(name))
            self._tiled[name] = self.e.op("Tile", [name, self.e.ints([self.fold] + [1] * (rank - 1))])
        return self._tiled[name]

    def shape(self, name: str) -> str:
        if name not in self._shapes:
            self._shapes[name] = self.e.op("Shape", [name])  # type: ignore[assignment]
        return self._shapes[name]

    def folded_shape(self, name: str) -> str:
        """Shape of ``name`` with its batch dimension left to Reshape (-1), for gradients of it."""
        tail = self.e.op("Slice", [self.shape(name), self.e.ints([1]), self.e.ints([_INT_MAX])])
        return self.e.op("Concat", [self.e.ints([-1]), tail], axis=0)  # type: ignore[return-value]

    def expand_like(self, grad: str, name: str) -> str:
        """Broadcast ``grad`` to the (folded) shape of forward tensor ``name``."""
        head = self.e.op("Slice", [self.e.op("Shape", [grad]), self.e.ints([0]), self.e.ints([1])])
        tail = self.e.op("Slice", [self.shape(name), self.e.ints([1]), self.e.ints([_INT_MAX])])
        return self.e.op("Expand", [grad, self.e.op("Concat", [head, tail], axis=0)])  # type: ignore[return-value]

    def unbroadcast(self, grad: str, inp: str, out: str) -> str:
        """Sum a gradient over the axes along which ``inp`` was broadcast to ``out``."""
        in_dims, out_dims = self.dims(inp), self.dims(out)
        if len(in_dims) != len(out_dims):
            raise UnsupportedGraphError(f"broadcasting of '{inp}' {in_dims} to {out_dims} inside the head")
        axes = [a for a in range(1, len(in_dims)) if in_dims[a] == 1 and out_dims[a] != 1]
        if in_dims[0] == 1 and out_dims[0] != 1:
            raise UnsupportedGraphError(f"'{inp}' is broadcast across the batch inside the head")
        return self.e.reduce("ReduceSum", grad, axes, keepdims=1) if axes else grad

    def mul(self, a: str, b: str) -> str:
        return self.e.op("Mul", [a, b])  # type: ignore[return-value]

    def mask(self, condition: str) -> str:
        return self.e.op("Cast", [condition], to=TensorProto.FLOAT)  # type: ignore[return-value]

    def zero(self) -> str:
        return self.e.const(0.0, "zero")

    # --- per-op rules: each returns {input index: gradient tensor} for the active inputs -------------------
    def grads(self, node: onnx.NodeProto, dy: str) -> dict[int, str]:
        rule = getattr(self, f"_op_{node.op_type}", None)
        if rule is None:
            raise UnsupportedGraphError(f"cannot differentiate {node.op_type} (node '{node.name}')")
        result = rule(node, dy)
        return {i: g for i, g in result.items() if node.input[i] in self.active}

    def _identity(self, node, dy):
        return {0: dy}

    _op_Identity = _identity
    _op_Dropout = _identity

    def _op_Cast(self, node, dy):
        if _attr(node, "to") not in _FLOAT_TYPES:
            raise UnsupportedGraphError(f"Cast to a non-float type in the head (node '{node.name}')")
        return {0: dy}

    def _op_Relu(self, node, dy):
        return {0: self.mul(dy, self.mask(self.e.op("Greater", [self.tiled(node.input[0]), self.zero()])))}

    def _op_LeakyRelu(self, node, dy):
        alpha = float(_attr(node, "alpha", 0.01))
        positive = self.e.op("Greater", [self.tiled(node.input[0]), self.zero()])
        slope = self.e.op("Where", [positive, self.e.const(1.0, "one"), self.e.const(alpha, "alpha")])
        return {0: self.mul(dy, slope)}

    def _op_Clip(self, node, dy):
        x = self.tiled(node.input[0])
        keep = None
        bounds = [(1, "Greater"), (2, "Less")] if self.e.opset >= 11 else []
        for index, compare in bounds:
            if len(node.input) > index and node.input[index]:
                cond = self.e.op(compare, [x, node.input[index]])
                keep = cond if keep is None else self.e.op("And", [keep, cond])
        if self.e.opset < 11:
            lo, hi = _attr(node, "min"), _attr(node, "max")
            for value, compare in ((lo, "Greater"), (hi, "Less")):
                if value is not None:
                    cond = self.e.op(compare, [x, self.e.const(float(value))])
                    keep = cond if keep is None else self.e.op("And", [keep, cond])
        return {0: dy if keep is None else self.mul(dy, self.mask(keep))}

    def _op_Sigmoid(self, node, dy):
        y = self.tiled(node.output[0])
        return {0: self.mul(dy, self.mul(y, self.e.op("Sub", [self.e.const(1.0, "one"), y])))}

    def _op_Tanh(self, node, dy):
        y = self.tiled(node.output[0])
        return {0: self.mul(dy, self.e.op("Sub", [self.e.const(1.0, "one"), self.mul(y, y)]))}

    def _op_Neg(self, node, dy):
        return {0: self.e.op("Neg", [dy])}

    def _op_Add(self, node, dy):
        return {i: self.unbroadcast(dy, node.input[i], node.output[0]) for i in (0, 1)
                if node.input[i] in self.active}

    def _op_Sub(self, node, dy):
        out = {}
        if node.input[0] in self.active:
            out[0] = self.unbroadcast(dy, node.input[0], node.output[0])
        if node.input[1] in self.active:
            out[1] = self.unbroadcast(self.e.op("Neg", [dy]), node.input[1], node.output[0])
        return out

    def _op_Mul(self, node, dy):
        a, b = node.input[0], node.input[1]
        out = {}
        if a in self.active:
            out[0] = self.unbroadcast(self.mul(dy, self.tiled(b)), a, node.output[0])
        if b in self.active:
            out[1] = self.unbroadcast(self.mul(dy, self.tiled(a)), b, node.output[0])
        return out

    def _op_Div(self, node, dy):
        a, b = node.input[0], node.input[1]
        out = {}
        if a in self.active:
            out[0] = self.unbroadcast(self.e.op("Div", [dy, self.tiled(b)]), a, node.output[0])
        if b in self.active:
            ratio = self.e.op("Div", [self.tiled(node.output[0]), self.tiled(b)])
            out[1] = self.unbroadcast(self.e.op("Neg", [self.mul(dy, ratio)]), b, node.output[0])
        return out

    def _op_Gemm(self, node, dy):
        if node.input[1] in self.active or _attr(node, "transA", 0):
            raise UnsupportedGraphError(f"Gemm '{node.name}' with a data-dependent B or transA=1")
        alpha, beta = float(_attr(node, "alpha", 1.0)), float(_attr(node, "beta", 1.0))
        trans_b = int(_attr(node, "transB", 0))
        out = {0: self.e.op("Gemm", [dy, node.input[1]], alpha=alpha, transB=0 if trans_b else 1)}
        if len(node.input) > 2 and node.input[2] in self.active:
            out[2] = self.unbroadcast(self.mul(dy, self.e.const(beta, "beta")), node.input[2], node.output[0])
        return out

    def _transpose_last2(self, name: str) -> str:
        rank = len(self.dims(name))
        if rank < 2:
            raise UnsupportedGraphError(f"MatMul with a rank-{rank} operand '{name}'")
        perm = list(range(rank - 2)) + [rank - 1, rank - 2]
        return self.e.op("Transpose", [name], perm=perm)  # type: ignore[return-value]

    def _op_MatMul(self, node, dy):
        a, b = node.input[0], node.input[1]
        out = {}
        if a in self.active:
            out[0] = self.e.op("MatMul", [dy, self._transpose_last2(self.tiled(b))])
        if b in self.active:
            if len(self.dims(a)) != len(self.dims(b)) or len(self.dims(b)) < 3:
                raise UnsupportedGraphError(f"MatMul '{node.name}' with a data-dependent right operand of this shape")
            out[1] = self.e.op("MatMul", [self._transpose_last2(self.tiled(a)), dy])
        return out

    def _reshape_back(self, node, dy):
        return {0: self.e.op("Reshape", [dy, self.folded_shape(node.input[0])])}

    def _op_Flatten(self, node, dy):
        if int(_attr(node, "axis", 1)) == 0:
            raise UnsupportedGraphError(f"Flatten '{node.name}' with axis=0 mixes the batch")
        return self._reshape_back(node, dy)

    _op_Reshape = _reshape_back

    def _axes_of(self, node) -> list[int] | None:
        axes = _attr(node, "axes")
        if axes is None and len(node.input) > 1 and node.input[1]:
            value = _constant_value(self.model, node.input[1])
            if value is None:
                raise UnsupportedGraphError(f"{node.op_type} '{node.name}' has data-dependent axes")
            axes = value.reshape(-1).tolist()
        return None if axes is None else [int(a) for a in axes]

    def _op_Squeeze(self, node, dy):
        rank = len(self.dims(node.input[0]))
        axes = self._axes_of(node)
        if axes is not None and 0 in [a % rank for a in axes]:
            raise UnsupportedGraphError(f"{node.op_type} '{node.name}' removes the batch axis")
        return self._reshape_back(node, dy)

    def _op_Unsqueeze(self, node, dy):
        axes = self._axes_of(node) or []
        rank = len(self.dims(node.output[0]))
        if 0 in [a % rank for a in axes]:
            raise UnsupportedGraphError(f"Unsqueeze '{node.name}' adds an axis before the batch")
        return self._reshape_back(node, dy)

    def _op_Transpose(self, node, dy):
        perm = list(_attr(node, "perm", []) or [])
        if not perm:
            perm = list(range(len(self.dims(node.input[0]))))[::-1]
        if perm[0] != 0:
            raise UnsupportedGraphError(f"Transpose '{node.name}' moves the batch axis")
        inverse = [perm.index(i) for i in range(len(perm))]
        return {0: self.e.op("Transpose", [dy], perm=inverse)}

    def _spread_max(self, x_tiled: str, y_keep_tiled: str, dy_keep: str, axes: list[int]) -> str:
        """Gradient of a max: shared equally among the positions that reach the maximum."""
        hit = self.mask(self.e.op("Equal", [x_tiled, y_keep_tiled]))
        count = self.e.reduce("ReduceSum", hit, axes, keepdims=1)
        return self.mul(hit, self.e.op("Div", [dy_keep, count]))  # type: ignore[arg-type]

    def _spatial_count(self, x: str, axes: list[int]) -> str:
        gathered = self.e.op("Gather", [self.shape(x), self.e.ints(axes)], axis=0)
        total = self.e.op("ReduceProd", [gathered], keepdims=0)
        return self.e.op("Cast", [total], to=TensorProto.FLOAT)  # type: ignore[return-value]

    def _op_GlobalAveragePool(self, node, dy):
        x = node.input[0]
        axes = list(range(2, len(self.dims(x))))
        scaled = self.e.op("Div", [dy, self._spatial_count(x, axes)])
        return {0: self.expand_like(scaled, x)}  # type: ignore[arg-type]

    def _op_GlobalMaxPool(self, node, dy):
        x = node.input[0]
        axes = list(range(2, len(self.dims(x))))
        return {0: self._spread_max(self.tiled(x), self.tiled(node.output[0]), dy, axes)}

    def _reduce_axes(self, node) -> tuple[list[int], int]:
        rank = len(self.dims(node.input[0]))
        axes = self._axes_of(node)
        if not axes:
            if int(_attr(node, "noop_with_empty_axes", 0)):
                return [], int(_attr(node, "keepdims", 1))
            axes = list(range(rank))
        axes = sorted(a % rank for a in axes)
        if 0 in axes:
            raise UnsupportedGraphError(f"{node.op_type} '{node.name}' reduces over the batch axis")
        return axes, int(_attr(node, "keepdims", 1))

    def _op_ReduceMean(self, node, dy):
        axes, keep = self._reduce_axes(node)
        if not axes:
            return {0: dy}
        g = dy if keep else self.e.unsqueeze(dy, axes)
        g = self.e.op("Div", [g, self._spatial_count(node.input[0], axes)])
        return {0: self.expand_like(g, node.input[0])}  # type: ignore[arg-type]

    def _op_ReduceSum(self, node, dy):
        axes, keep = self._reduce_axes(node)
        if not axes:
            return {0: dy}
        g = dy if keep else self.e.unsqueeze(dy, axes)
        return {0: self.expand_like(g, node.input[0])}

    def _op_ReduceMax(self, node, dy):
        axes, keep = self._reduce_axes(node)
        if not axes:
            return {0: dy}
        y = self.tiled(node.output[0])
        if not keep:
            y = self.e.unsqueeze(y, axes)
        g = dy if keep else self.e.unsqueeze(dy, axes)
        return {0: self._spread_max(self.tiled(node.input[0]), y, g, axes)}

    def _window(self, node, x: str, y: str, kernel: list[int]) -> tuple[list[int], list[int], list[int]]:
        """Strides, explicit pads and dilations of a windowed op, resolving auto_pad from static shapes."""
        nsp = len(kernel)
        strides = list(_attr(node, "strides", None) or [1] * nsp)
        dilations = list(_attr(node, "dilations", None) or [1] * nsp)
        pads = list(_attr(node, "pads", None) or [0] * (2 * nsp))
        auto_pad = _attr(node, "auto_pad", b"NOTSET")
        auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
        if auto_pad in ("SAME_UPPER", "SAME_LOWER", "VALID"):
            xin = self.static_dims(x, node.op_type)[2:]
            yout = self.static_dims(y, node.op_type)[2:]
            pads = [0] * (2 * nsp)
            if auto_pad != "VALID":
                for i in range(nsp):
                    total = max((yout[i] - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - xin[i], 0)
                    small, large = total // 2, total - total // 2
                    pads[i], pads[i + nsp] = (small, large) if auto_pad == "SAME_UPPER" else (large, small)
        return strides, pads, dilations

    def _output_padding(self, x, y, kernel, strides, pads, dilations, what: str) -> list[int]:
        xin = self.static_dims(x, what)[2:]
        yout = self.static_dims(y, what)[2:]
        nsp = len(kernel)
        extra = []
        for i in range(nsp):
            covered = (yout[i] - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - pads[i] - pads[i + nsp]
            gap = xin[i] - covered
            if gap < 0 or (gap > 0 and gap >= max(strides[i], dilations[i])):
                raise UnsupportedGraphError(f"{what} window arithmetic does not invert (ceil_mode or odd padding)")
            extra.append(xin[i] - covered)
        return extra

    def _op_Conv(self, node, dy):
        x, w = node.input[0], node.input[1]
        if w in self.active:
            raise UnsupportedGraphError(f"Conv '{node.name}' with data-dependent weights")
        kernel = list(_attr(node, "kernel_shape", None) or self.static_dims(w, "Conv")[2:])
        strides, pads, dilations = self._window(node, x, node.output[0], kernel)
        extra = self._output_padding(x, node.output[0], kernel, strides, pads, dilations, "Conv")
        grad = self.e.op("ConvTranspose", [dy, w], strides=strides, pads=pads, dilations=dilations,
                         group=int(_attr(node, "group", 1)), kernel_shape=kernel, output_padding=extra)
        return {0: grad}

    def _op_AveragePool(self, node, dy):
        x, y = node.input[0], node.output[0]
        kernel = list(_attr(node, "kernel_shape"))
        strides, pads, dilations = self._window(node, x, y, kernel)
        if any(d != 1 for d in dilations) or int(_attr(node, "ceil_mode", 0)):
            raise UnsupportedGraphError(f"AveragePool '{node.name}' with dilations or ceil_mode")
        extra = self._output_padding(x, y, kernel, strides, pads, dilations, "AveragePool")
        xdims, ydims = self.static_dims(x, "AveragePool"), self.static_dims(y, "AveragePool")
        channels = xdims[1]
        divisor = _pool_divisor(xdims[2:], ydims[2:], kernel, strides, pads,
                                bool(_attr(node, "count_include_pad", 0)))
        scaled = self.e.op("Div", [dy, self.e.const(divisor[None, None], "pool_divisor")])
        ones = self.e.const(np.ones([channels, 1, *kernel], dtype=np.float32), "pool_ones")
        grad = self.e.op("ConvTranspose", [scaled, ones], strides=strides, pads=pads, group=channels,
                         kernel_shape=kernel, output_padding=extra)
        return {0: grad}

    def _op_MaxPool(self, node, dy):
        x, y = node.input[0], node.output[0]
        kernel = list(_attr(node, "kernel_shape"))
        strides, _, _ = self._window(node, x, y, kernel)
        overlapping = any(k > s for k, s in zip(kernel, strides, strict=True))
        if overlapping and self.e.opset < 16:
            raise UnsupportedGraphError(f"overlapping MaxPool '{node.name}' needs opset >= 16 (model has "
                                        f"{self.e.opset}); export with a newer opset")
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        # Pool indices are flat over the untiled input; each folded class row scatters into its own copy.
        _, indices = self.e.op("MaxPool", [x], 2, **attrs)  # type: ignore[misc]
        flat_idx = self.e.op("Reshape", [indices, self.e.ints([1, -1])])
        if self.fold > 1:
            flat_idx = self.e.op("Tile", [flat_idx, self.e.ints([self.fold, 1])])
        flat_dy = self.e.op("Reshape", [dy, self.e.ints([self.fold, -1])])
        size = self.e.op("Reshape", [self.e.op("Size", [x]), self.e.ints([1])])
        zeros_shape = self.e.op("Concat", [self.e.ints([self.fold]), size], axis=0)
        zeros = self.e.op("ConstantOfShape", [zeros_shape], value=numpy_helper.from_array(np.zeros(1, np.float32)))
        extra = {"reduction": "add"} if self.e.opset >= 16 else {}
        scattered = self.e.op("ScatterElements", [zeros, flat_idx, flat_dy], axis=1, **extra)
        return {0: self.e.op("Reshape", [scattered, self.folded_shape(x)])}

    def _op_BatchNormalization(self, node, dy):
        if int(_attr(node, "training_mode", 0)) or len([o for o in node.output if o]) > 1:
            raise UnsupportedGraphError(f"BatchNormalization '{node.name}' is in training form")
        eps = float(_attr(node, "epsilon", 1e-5))
        scale, var = node.input[1], node.input[4]
        if scale in self.active or var in self.active:
            raise UnsupportedGraphError(f"BatchNormalization '{node.name}' with data-dependent statistics")
        rank = len(self.dims(node.input[0]))
        factor = self.e.op("Div", [scale, self.e.op("Sqrt", [self.e.op("Add", [var, self.e.const(eps)])])])
        factor = self.e.op("Reshape", [factor, self.e.ints([1, -1] + [1] * (rank - 2))])
        return {0: self.mul(dy, factor)}  # type: ignore[arg-type]

    def _op_Concat(self, node, dy):
        rank = len(self.dims(node.output[0]))
        axis = int(_attr(node, "axis")) % rank
        if axis == 0:
            raise UnsupportedGraphError(f"Concat '{node.name}' along the batch axis")
        out, start = {}, 0
        for i, name in enumerate(node.input):
            size = self.dims(name)[axis]
            if size is None:
                raise UnsupportedGraphError(f"Concat '{node.name}': size of '{name}' along axis {axis} is unknown")
            if name in self.active:
                out[i] = self.e.op("Slice", [dy, self.e.ints([start]), self.e.ints([start + size]),
                                             self.e.ints([axis])])
            start += size
        return out

    def _op_Softmax(self, node, dy):
        rank = len(self.dims(node.input[0]))
        axis = int(_attr(node, "axis", -1 if self.e.opset >= 13 else 1)) % rank
        if self.e.opset < 13 and axis != rank - 1:
            raise UnsupportedGraphError(f"Softmax '{node.name}' with opset < 13 semantics")
        y = self.tiled(node.output[0])
        inner = self.e.reduce("ReduceSum", self.mul(dy, y), [axis], keepdims=1)
        return {0: self.mul(y, self.e.op("Sub", [dy, inner]))}  # type: ignore[arg-type]


def _pool_divisor(xin, yout, kernel, strides, pads, include_pad: bool) -> np.ndarray:
    """Per-output-position element count of an average pool (what each window sum was divided by)."""
    nsp = len(kernel)
    per_axis = []
    for i in range(nsp):
        counts = []
        for o in range(yout[i]):
            lo = o * strides[i] - pads[i]
            hi = lo + kernel[i]
            if include_pad:
                lo, hi = max(lo, -pads[i]), min(hi, xin[i] + pads[i + nsp])
            else:
                lo, hi = max(lo, 0), min(hi, xin[i])
            counts.append(hi - lo)
        per_axis.append(np.array(counts, dtype=np.float32))
    out = per_axis[0]
    for axis_counts in per_axis[1:]:
        out = np.multiply.outer(out, axis_counts)
    return out.astype(np.float32)


SUPPORTED_OPS = tuple(sorted(name[4:] for name in dir(_Backward) if name.startswith("_op_")))


def add_gradcam(
    model: onnx.ModelProto,
    *,
    target: str | None = None,
    scores_output: str | None = None,
    input_layout: str = "NCHW",
    target_layout: str | None = None,
    max_all_classes: int = DEFAULT_MAX_ALL_CLASSES,
) -> tuple[onnx.ModelProto, GradCamGraphInfo]:
    """Return a copy of ``model`` with the Grad-CAM outputs appended, and what was found.

    ``target`` is a tensor name (default: :func:`find_target`); its layout is worked out from the
    graph unless ``target_layout`` says it. With more than ``max_all_classes`` classes the model
    gets an int64 input ``gradcam_class`` (N,) and weights for that class only.
    """
    opset = opset_version(model)
    if opset < 13:
        raise ExportError(f"the model uses ONNX opset {opset}; Grad-CAM augmentation needs opset 13 or newer")
    existing = {o.name for o in model.graph.output} | {i.name for i in model.graph.input}
    if ACTIVATIONS_OUTPUT in existing or WEIGHTS_OUTPUT in existing:
        raise ExportError("the model already has Grad-CAM outputs")
    out_model = onnx.ModelProto()
    out_model.CopyFrom(model)
    graph = out_model.graph

    scores_name, scores_kind, logits = find_scores(out_model, scores_output)
    infos = tensor_infos(out_model)
    logits_dims = infos.get(logits).dims if infos.get(logits) else None
    if not logits_dims or len(logits_dims) != 2 or logits_dims[1] is None:
        raise ExportError(f"the class scores '{logits}' must have a static shape (N, C); found {logits_dims}")
    num_classes = int(logits_dims[1])

    if target is None:
        target = find_target(out_model, logits, input_layout)
    names = {t for n in graph.node for t in n.output} | {i.name for i in graph.input}
    if target not in names:
        raise ExportError(f"Grad-CAM target '{target}' is not a tensor of this graph")
    layouts = tensor_layouts(out_model, input_layout, infos)
    layout = target_layout or layouts.get(target, "NCHW")
    target_info = infos.get(target)
    if target_info is None or target_info.rank != 4:
        raise ExportError(f"Grad-CAM target '{target}' must be a rank-4 activation; it is {target_info}")
    if target_info.elem_type not in (None, TensorProto.FLOAT):
        raise ExportError(f"Grad-CAM target '{target}' is not float32")

    inputs = {i.name for i in graph.input}
    active = _reachable_from(out_model, [target], infos) & _ancestors(out_model, logits)
    if logits not in active:
        raise ExportError(f"the class scores do not depend on the Grad-CAM target '{target}'")
    batched = _reachable_from(out_model, inputs, infos)
    head = [n for n in graph.node if n.output and n.output[0] in active
            and any(i in active for i in n.input if i)]
    unsupported = sorted({n.op_type for n in head if not hasattr(_Backward, f"_op_{n.op_type}")})
    if unsupported:
        raise UnsupportedGraphError(
            f"the layers after Grad-CAM target '{target}' use {', '.join(unsupported)}, which the exporter cannot "
            f"differentiate (supported: {', '.join(SUPPORTED_OPS)}); choose a later target layer")

    taken = names | {i.name for i in graph.initializer}
    emitter = _Emitter(opset, taken)
    fold = num_classes if num_classes <= max_all_classes else 1
    backward = _Backward(out_model, infos, emitter, fold, batched, active)

    class_input = None
    if fold == 1:
        class_input = CLASS_INPUT
        batch_dim = graph.input[0].type.tensor_type.shape.dim[0]
        graph.input.append(helper.make_tensor_value_info(
            CLASS_INPUT, TensorProto.INT64, [batch_dim.dim_param or batch_dim.dim_value or "N"]))
        seed = emitter.op("OneHot", [CLASS_INPUT, emitter.const(num_classes, "depth", np.int64),
                                     emitter.const([0.0, 1.0], "onehot_values")], axis=-1)
    else:
        eye = emitter.const(np.eye(num_classes, dtype=np.float32)[:, None, :], "eye")
        batch = emitter.op("Slice", [backward.shape(logits), emitter.ints([0]), emitter.ints([1])])
        shape = emitter.op("Concat", [emitter.ints([num_classes]), batch, emitter.ints([num_classes])], axis=0)
        seed = emitter.op("Reshape", [emitter.op("Expand", [eye, shape]), emitter.ints([-1, num_classes])])

    pending: dict[str, list[str]] = {logits: [seed]}  # type: ignore[list-item]

    def total(name: str) -> str | None:
        parts = pending.get(name)
        if not parts:
            return None
        if len(parts) > 1:
            pending[name] = [emitter.op("Sum", parts)]  # type: ignore[list-item]
        return pending[name][0]

    for node in reversed(head):
        dy = total(node.output[0])
        if dy is None:
            continue
        for index, grad in backward.grads(node, dy).items():
            pending.setdefault(node.input[index], []).append(grad)

    grad_target = total(target)
    if grad_target is None:
        raise ExportError(f"no gradient reached the Grad-CAM target '{target}'")
    dims = target_info.dims or (None, None, None, None)
    channels = dims[1] if layout == "NCHW" else dims[3]
    if channels is None:
        raise ExportError(f"the channel count of Grad-CAM target '{target}' is not static")
    spatial_axes = [2, 3] if layout == "NCHW" else [1, 2]
    pooled = emitter.reduce("ReduceMean", grad_target, spatial_axes, keepdims=0)
    per_class = emitter.op("Reshape", [pooled, emitter.ints([fold, -1, channels])])
    emitter.op("Transpose", [per_class], [WEIGHTS_OUTPUT], perm=[1, 0, 2])
    if layout == "NCHW":
        emitter.op("Identity", [target], [ACTIVATIONS_OUTPUT])
        height, width = dims[2], dims[3]
    else:
        emitter.op("Transpose", [target], [ACTIVATIONS_OUTPUT], perm=[0, 3, 1, 2])
        height, width = dims[1], dims[2]

    graph.node.extend(emitter.nodes)
    graph.initializer.extend(emitter.initializers)
    in_batch = graph.input[0].type.tensor_type.shape.dim[0]
    batch_name = in_batch.dim_param or "N"
    graph.output.append(helper.make_tensor_value_info(
        ACTIVATIONS_OUTPUT, TensorProto.FLOAT, [batch_name, channels, height or "h", width or "w"]))
    graph.output.append(helper.make_tensor_value_info(
        WEIGHTS_OUTPUT, TensorProto.FLOAT, [batch_name, fold, channels]))
    try:
        onnx.checker.check_model(out_model)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"the augmented graph is not valid ONNX ({exc})") from None
    info = GradCamGraphInfo(
        target=target, target_layout=layout, logits=logits, scores_output=scores_name, scores_kind=scores_kind,
        num_classes=num_classes, channels=int(channels), height=height, width=width, class_input=class_input,
        head_ops=tuple(n.op_type for n in head))
    return out_model, info
