"""Read an ONNX file safely and find out what it says about itself, before any inference runs.

Refuses files that are not ONNX (or truncated), external-data references that leave the model's
folder (or are missing), and malformed HemaLens metadata; all as ModelLoadError with a clear reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from inference.contract import ModelSpec, spec_from_metadata
from inference.errors import ModelContractError, ModelLoadError


def _all_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Every tensor stored in a graph, its nodes' attributes and subgraphs."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _all_tensors(attr.g)
            for sub in attr.graphs:
                yield from _all_tensors(sub)


def external_data_files(model: onnx.ModelProto, model_path: Path) -> list[Path]:
    """The external-data files a model uses, each checked to lie inside the model's folder and exist."""
    folder = model_path.resolve().parent
    files: list[Path] = []
    for tensor in _all_tensors(model.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        if not location:
            raise ModelLoadError(model_path, f"tensor '{tensor.name}' has external data without a file location")
        target = (folder / location).resolve()
        if Path(location).is_absolute() or not target.is_relative_to(folder):
            raise ModelLoadError(
                model_path,
                f"tensor '{tensor.name}' points to external data outside the model's folder ({location!r}); "
                "refused for safety",
            )
        if not target.is_file():
            raise ModelLoadError(model_path, f"the external data file {location!r} is missing next to the model")
        if target not in files:
            files.append(target)
    return files


def read_model_file(path: str | Path) -> tuple[onnx.ModelProto, bytes, str]:
    """Parse a model file (external data not loaded); returns (proto, file bytes, sha256 hex)."""
    path = Path(path)
    try:
        if not path.is_file():
            raise ModelLoadError(path, "the model file does not exist" if not path.exists() else "not a file")
        data = path.read_bytes()
    except OSError as exc:
        raise ModelLoadError(path, f"the model file cannot be read ({exc.strerror or exc})") from None
    if not data:
        raise ModelLoadError(path, "the model file is empty (0 bytes)")
    try:
        model = onnx.load_model_from_string(data)
    except (DecodeError, ValueError, RuntimeError, TypeError) as exc:
        raise ModelLoadError(path, f"not an ONNX model, or the file is truncated or damaged ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - the protobuf runtime may raise its own error types
        raise ModelLoadError(path, f"not an ONNX model, or the file is truncated or damaged ({exc})") from None
    graph = model.graph
    if model.ir_version <= 0 or not graph.output or not graph.input or not graph.node or not model.opset_import:
        raise ModelLoadError(path, "not an ONNX model, or the file is truncated (no graph, inputs or outputs found)")
    external_data_files(model, path)
    return model, data, hashlib.sha256(data).hexdigest()


def metadata_spec(model: onnx.ModelProto, path: Path) -> ModelSpec | None:
    """The HemaLens spec in the model's metadata_props, None when there is none; malformed -> ModelLoadError."""
    props = {p.key: p.value for p in model.metadata_props}
    try:
        return spec_from_metadata(props)
    except ModelContractError as exc:
        raise ModelLoadError(path, str(exc)) from None


def graph_input_names(model: onnx.ModelProto) -> list[str]:
    """Real graph inputs (older exporters also list initializers as inputs)."""
    inits = {t.name for t in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in inits]


def producer_op(model: onnx.ModelProto, tensor: str) -> str | None:
    """Op type that finally produced ``tensor``, looking through shape-only ops (Identity, Reshape, ...)."""
    producers = {out: node for node in model.graph.node for out in node.output}
    seen = 0
    while tensor in producers and seen < 16:
        node = producers[tensor]
        if node.op_type in ("Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Cast"):
            tensor, seen = node.input[0], seen + 1
            continue
        return node.op_type
    return None
