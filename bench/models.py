"""Which models the benchmark runs, and the variant of each without its Grad-CAM outputs.

The no-Grad-CAM copy is the same graph with the two Grad-CAM outputs removed, the nodes only they
needed pruned, and ``gradcam`` set to null in the metadata: the difference to the original is
exactly what the heatmap costs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import onnx

from inference.contract import METADATA_KEY, ModelSpec
from inference.registry import list_models, read_spec


@dataclass(frozen=True)
class BenchModel:
    """A model file under test, its spec and its no-Grad-CAM twin."""

    name: str  # short name, e.g. "all4" for hemalens-all4
    path: Path
    spec: ModelSpec
    no_cam_path: Path


def short_name(spec: ModelSpec, path: Path) -> str:
    """``hemalens-all4`` -> ``all4``; otherwise the id or file stem."""
    ident = spec.id or path.stem
    return ident.removeprefix("hemalens-")


def bundled_model_paths() -> list[Path]:
    """Bundled models (assets/models, or $HEMALENS_BUNDLED_MODELS_DIR) in registry order."""
    return [e.path for e in list_models() if e.bundled]


def needed_nodes(graph: onnx.GraphProto, outputs: list[str]) -> list[onnx.NodeProto]:
    """The nodes that some of ``outputs`` depend on, in graph order."""
    producer = {out: i for i, node in enumerate(graph.node) for out in node.output}
    keep: set[int] = set()
    stack = [o for o in outputs if o in producer]
    while stack:
        i = producer[stack.pop()]
        if i in keep:
            continue
        keep.add(i)
        stack += [t for t in graph.node[i].input if t in producer]
    return [n for i, n in enumerate(graph.node) if i in keep]


def strip_gradcam(src: Path, dst: Path) -> Path:
    """Write ``src`` without its Grad-CAM outputs (scores only) and with ``gradcam: null`` metadata."""
    model = onnx.load(str(src))
    spec = read_spec(src)
    score = spec.output.name
    graph = model.graph
    kept = needed_nodes(graph, [score])
    del graph.node[:]
    graph.node.extend(kept)
    outs = [o for o in graph.output if o.name == score]
    del graph.output[:]
    graph.output.extend(outs)
    used = {t for n in kept for t in n.input}
    inits = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(inits)
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            doc = json.loads(prop.value)
            doc["gradcam"] = None
            prop.value = json.dumps(doc)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dst))
    return dst


def prepare_models(paths: list[Path], work: Path) -> list[BenchModel]:
    """Read each model's spec and write its no-Grad-CAM twin under ``work``."""
    models = []
    for path in paths:
        spec = read_spec(path)
        name = short_name(spec, path)
        models.append(BenchModel(name, path, spec, strip_gradcam(path, work / f"{path.stem}-nocam.onnx")))
    return models
