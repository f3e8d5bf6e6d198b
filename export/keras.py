"""Export a trained Keras classifier (.keras, legacy .h5, SavedModel) to a verified HemaLens ONNX model.

The graph comes from tf2onnx (NHWC input, as Keras trains), the Grad-CAM gradient from
:mod:`export.gradcam_graph` (tf2onnx cannot convert TensorFlow's gradient ops), and the reference
for verification from ``tf.GradientTape`` on the Keras layer whose output equals the ONNX target.
TensorFlow is imported only here, and only when an export runs.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from export.errors import ExportError
from export.gradcam_graph import DEFAULT_MAX_ALL_CLASSES, GradCamGraphInfo, add_gradcam, opset_version
from export.modelfile import build_spec, write_model
from export.one_score import HALVES, NOTE, OneScoreHead, as_two_classes
from export.onnx_tools import rank4_float_tensors, rename_tensor, run_with_intermediates, values_match
from export.report import ExportReport
from export.source_check import check_batches, verify_against_source
from export.verify import Reference, check, format_figures
from inference.contract import ModelSpec

INPUT_NAME = "input"
OUTPUT_NAME = "scores"
DEFAULT_OPSET = 17

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _tf():
    import tensorflow as tf  # noqa: PLC0415 - heavy optional dependency, imported on use

    return tf


def _keras():
    import keras  # noqa: PLC0415 - heavy optional dependency, imported on use

    return keras


class _SavedModel:
    """A TensorFlow SavedModel's serving signature: callable, but without layers to hook."""

    def __init__(self, path: Path) -> None:
        tf = _tf()
        try:
            loaded = tf.saved_model.load(str(path))
        except Exception as exc:  # noqa: BLE001 - TF raises many types for unreadable folders
            raise ExportError(f"cannot load the SavedModel in {path} ({exc})") from None
        signatures = getattr(loaded, "signatures", {}) or {}
        if "serving_default" in signatures:
            fn = signatures["serving_default"]
            spec = list(fn.structured_input_signature[1].values())
            self._key = list(fn.structured_outputs)[0]
            self._arg = list(fn.structured_input_signature[1])[0]
            self._fn = fn
            self.input_shape = tuple(spec[0].shape)
        elif hasattr(loaded, "serve"):
            self._fn, self._key, self._arg = loaded.serve, None, None
            self.input_shape = tuple(loaded.serve.input_signature[0].shape)
        else:
            raise ExportError(f"the SavedModel in {path} has no serving signature")
        self._loaded = loaded

    def __call__(self, x):
        if self._arg is None:
            return self._fn(x)
        return self._fn(**{self._arg: x})[self._key]


def load_keras_model(model: Any) -> Any:
    """A Keras model as given, or loaded from ``.keras`` / ``.h5`` / a SavedModel folder."""
    if not isinstance(model, (str, Path)):
        return model
    path = Path(model)
    if path.is_dir():
        if not (path / "saved_model.pb").exists():
            raise ExportError(f"{path} is a folder but not a TensorFlow SavedModel (no saved_model.pb)")
        return _SavedModel(path)
    if not path.is_file():
        raise ExportError(f"Keras model file not found: {path}")
    if path.suffix.lower() not in (".keras", ".h5", ".hdf5"):
        raise ExportError(f"{path.name}: expected a .keras or .h5 file, or a SavedModel folder")
    keras = _keras()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return keras.models.load_model(str(path), compile=False)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for bad files
        raise ExportError(f"cannot load {path.name} with Keras {keras.__version__} ({exc})") from None


def _input_shape(model: Any) -> tuple:
    if isinstance(model, _SavedModel):
        return model.input_shape
    shape = getattr(model, "input_shape", None)
    if isinstance(shape, list):
        raise ExportError("the model has several inputs; HemaLens models take one image")
    if shape is None:
        raise ExportError("the Keras model is not built (unknown input shape)")
    return tuple(shape)


def _carries_preprocessing(model: Any) -> bool:
    """True when the model starts with its own Rescaling/Normalization layer (it takes raw pixels)."""
    layers = getattr(model, "layers", [])
    return any(type(layer).__name__ in ("Rescaling", "Normalization") for layer in layers[:3])


def _to_onnx(model: Any, shape: tuple, opset: int) -> tuple[onnx.ModelProto, str]:
    tf = _tf()
    import tf2onnx  # noqa: PLC0415 - optional dependency

    if isinstance(model, _SavedModel):
        fn = tf.function(lambda x: model(x))
    else:
        fn = tf.function(lambda x: model(x, training=False))
    signature = (tf.TensorSpec((None, *shape[1:]), tf.float32, name=INPUT_NAME),)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            proto, _ = tf2onnx.convert.from_function(fn, input_signature=signature, opset=opset)
    except Exception as exc:  # noqa: BLE001 - converter failures come in many types
        raise ExportError(f"tf2onnx could not convert the model: {exc}") from None
    if len(proto.graph.output) != 1:
        raise ExportError(f"the model has {len(proto.graph.output)} outputs; HemaLens needs one score output")
    rename_tensor(proto, proto.graph.output[0].name, OUTPUT_NAME)
    proto.graph.output[0].name = OUTPUT_NAME
    if proto.graph.input[0].name != INPUT_NAME:
        raise ExportError(f"unexpected converted input name {proto.graph.input[0].name!r}")
    return proto, f"tf2onnx {tf2onnx.__version__} (TensorFlow {tf.__version__})"


def _layers(model: Any) -> list[Any]:
    """The model's single-output layers in order (no input layer)."""
    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    return [layer for layer in layers if not isinstance(getattr(layer, "output", None), (list, tuple))]


def _forward_all(model: Any, layers: list[Any], x: Any) -> list[Any]:
    """Every layer's output on ``x`` from ONE forward pass, so later outputs depend on earlier ones.

    A Sequential model is run layer by layer (its layers' symbolic outputs may belong to another
    graph than its own output); a functional model through one multi-output model.
    """
    keras = _keras()
    if isinstance(model, keras.Sequential):
        outputs, h = [], x
        for layer in layers:
            h = layer(h, training=False)
            outputs.append(h)
        return outputs
    probe = keras.Model(model.inputs, [layer.output for layer in layers])
    return list(probe(x, training=False))


def _as_nchw(value: np.ndarray) -> np.ndarray:
    return value.transpose(0, 3, 1, 2) if value.ndim == 4 else value


def _squashes(activation: Any) -> bool:
    """A last layer's softmax or sigmoid, which the exported graph keeps apart from the scores before it."""
    return getattr(activation, "__name__", "") in ("softmax", "sigmoid")


def keras_reference(model: Any, x: np.ndarray, onnx_acts: np.ndarray, onnx_logits: np.ndarray | None,
                    layer_name: str | None = None) -> tuple[Reference, str]:
    """tf.GradientTape Grad-CAM at the layer whose output equals the ONNX target (NCHW ``onnx_acts``)."""
    tf, keras = _tf(), _keras()
    layers = _layers(model)
    values = [np.asarray(v) for v in _forward_all(model, layers, tf.constant(x))]
    target_index = None
    for i, (layer, value) in enumerate(zip(layers, values, strict=True)):
        if (layer_name and layer.name == layer_name) or (not layer_name and value.ndim == 4
                                                          and values_match(_as_nchw(value), onnx_acts)):
            target_index = i
            break
    if target_index is None:
        raise ExportError("no Keras layer output equals the ONNX Grad-CAM target activation, so the heatmap cannot "
                          "be verified; give the target layer by name")
    scores = np.asarray(model(x, training=False))
    logits_index, squasher, restore = len(layers) - 1, None, None
    if onnx_logits is not None:
        hits = [i for i, v in enumerate(values) if v.shape == onnx_logits.shape and values_match(v, onnx_logits)]
        if hits:
            logits_index = hits[0]
        else:  # the scores are inside a layer (Dense(..., activation="sigmoid")), maybe followed by a reshape
            squasher = next((la for la in reversed(layers) if _squashes(getattr(la, "activation", None))), None)
            if squasher is None:
                raise ExportError("the model ends in softmax or sigmoid but the scores before it are not a layer "
                                  "output")
            restore = squasher.activation
    try:
        if squasher is not None:
            squasher.activation = keras.activations.linear
        with tf.GradientTape(persistent=True) as tape:
            outs = _forward_all(model, layers, tf.constant(x))
            acts, logits = outs[target_index], outs[logits_index]
            if squasher is not None and not values_match(np.reshape(logits, onnx_logits.shape), onnx_logits):
                raise ExportError(f"the model's output without the {restore.__name__} of layer '{squasher.name}' "
                                  "is not the ONNX graph's scores, so the heatmap cannot be verified")
            if len(logits.shape) == 1 or logits.shape[1] == 1:  # one score per image, as two classes
                logits = tf.reshape(logits, (-1, 1)) * HALVES  # (export.one_score)
            picks = [logits[:, c] for c in range(logits.shape[1])]
        grads = [tape.gradient(p, acts) for p in picks]
        del tape
    finally:
        if squasher is not None:
            squasher.activation = restore
    if any(g is None for g in grads):
        raise ExportError(f"TensorFlow found no gradient from the logits to layer '{layers[target_index].name}'")
    weights = np.stack([np.asarray(tf.reduce_mean(g, axis=(1, 2))) for g in grads], axis=1)
    reference = Reference(scores=scores, activations=_as_nchw(np.asarray(acts)), weights=weights)
    return reference, layers[target_index].name


def _onnx_target_for_layer(model: Any, graph: onnx.ModelProto, layer_name: str, x: np.ndarray) -> str:
    if isinstance(model, _SavedModel):
        raise ExportError("a SavedModel has no named layers; give an ONNX tensor name as the target")
    layers = _layers(model)
    names = [layer.name for layer in layers]
    if layer_name not in names:
        raise ExportError(f"'{layer_name}' is neither a layer of the model nor an ONNX tensor "
                          f"(layers: {', '.join(names)})")
    value = np.asarray(_forward_all(model, layers, _tf().constant(x))[names.index(layer_name)])
    if value.ndim != 4:
        raise ExportError(f"layer '{layer_name}' does not produce a 4-D activation")
    candidates = rank4_float_tensors(graph)
    outs = run_with_intermediates(graph, {INPUT_NAME: x}, candidates)
    for name in candidates:
        if values_match(outs[name], _as_nchw(value)) or values_match(outs[name], value):
            return name
    raise ExportError(f"the output of layer '{layer_name}' was not found in the ONNX graph; choose a neighbour")


def export_keras(
    model: Any,
    out_path: str | Path,
    *,
    labels: list[str],
    input_size: int | tuple[int, int] | None = None,
    mean: tuple[float, float, float] | None = None,
    std: tuple[float, float, float] | None = None,
    scale: float | None = None,
    color_order: str = "RGB",
    resize: str = "stretch",
    name: str,
    model_id: str = "",
    version: str = "1.0.0",
    temperature: float = 1.0,
    provenance: dict[str, Any] | None = None,
    target_layer: str | None = None,
    sample_images: list[np.ndarray] | None = None,
    opset: int = DEFAULT_OPSET,
    description: str = "",
    max_all_classes: int = DEFAULT_MAX_ALL_CLASSES,
    random_images: int = 4,
    log: Callable[[str], None] | None = print,
) -> ExportReport:
    """Convert, add Grad-CAM, verify against TensorFlow and write one HemaLens ONNX file.

    Keras models rarely carry their preprocessing: give ``scale``/``mean``/``std`` unless the model
    starts with a Rescaling or Normalization layer (then it takes raw 0..255 pixels).
    """
    say = log or (lambda _msg: None)
    source = load_keras_model(model)
    shape = _input_shape(source)
    if len(shape) != 4 or shape[3] != 3:
        raise ExportError(f"the model input has shape {shape}; expected (batch, height, width, 3) images")
    size = _resolve_size(shape, input_size)
    notes = []
    if scale is None and mean is None and std is None:
        if not _carries_preprocessing(source):
            raise ExportError("the model does not carry its own preprocessing (no Rescaling/Normalization layer): "
                              "give scale, mean and std as used in training")
        notes.append("the model rescales its input itself: it gets raw 0..255 pixels")
    scale = 1.0 if scale is None else scale
    mean = (0.0, 0.0, 0.0) if mean is None else mean
    std = (1.0, 1.0, 1.0) if std is None else std

    graph, converter = _to_onnx(source, (None, *size, 3), opset)
    say(f"converted with {converter}, opset {opset_version(graph)}")
    head = as_two_classes(graph, labels)
    if head is not None:
        say(NOTE)
        notes.append(NOTE)
    probe = np.random.default_rng(1).standard_normal((2, *size, 3)).astype(np.float32)
    onnx_target = None
    if target_layer:
        tensors = {t for n in graph.graph.node for t in n.output}
        onnx_target = target_layer if target_layer in tensors else _onnx_target_for_layer(
            source, graph, target_layer, probe)
    augmented, info = add_gradcam(graph, target=onnx_target, input_layout="NHWC", max_all_classes=max_all_classes)
    if info.class_input is not None:
        raise ExportError(f"{info.num_classes} classes is more than max_all_classes={max_all_classes}")
    say(f"Grad-CAM target: ONNX tensor '{info.target}' ({info.channels} channels, {info.height}x{info.width}, "
        f"{info.target_layout}); head ops: {', '.join(info.head_ops)}")

    tf = _tf()
    keras_version = getattr(_keras(), "__version__", "?")
    framework = f"keras {keras_version} / tensorflow {tf.__version__}"
    common = dict(input_name=INPUT_NAME, labels=labels, layout="NHWC", input_size=size, mean=mean, std=std,
                  scale=scale, color_order=color_order, resize=resize, name=name, model_id=model_id,
                  version=version, temperature=temperature, description=description, provenance=provenance,
                  source_framework=framework)
    spec = build_spec(info, target_layer=target_layer or info.target, **common)  # type: ignore[arg-type]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Keras complains about input structure naming only
        figures, layer = _verify(source, augmented, info, spec, sample_images, random_images, target_layer, head)
    figures["converter"] = converter
    figures["reference"] = layer if isinstance(source, _SavedModel) else f"tf.GradientTape Grad-CAM at {layer}"
    say(format_figures(figures))
    check(figures)
    if not isinstance(source, _SavedModel):
        spec = build_spec(info, target_layer=layer, **common)  # type: ignore[arg-type]
    spec = spec.with_provenance(verification=figures)
    path = write_model(augmented, spec, out_path)
    say(f"wrote {path}")
    return ExportReport(path=path, spec=spec, figures=figures, target_tensor=info.target,
                        opset=opset_version(augmented), converter=converter, notes=tuple(notes))


def _resolve_size(shape: tuple, input_size: int | tuple[int, int] | None) -> tuple[int, int]:
    model_size = (shape[1], shape[2])
    if input_size is None:
        if None in model_size:
            raise ExportError("the model accepts any image size: give input_size")
        return int(model_size[0]), int(model_size[1])
    size = (input_size, input_size) if isinstance(input_size, int) else (int(input_size[0]), int(input_size[1]))
    if None not in model_size and tuple(model_size) != size:
        raise ExportError(f"input_size {size} disagrees with the model's input {model_size}")
    return size


def _verify(source: Any, augmented: onnx.ModelProto, info: GradCamGraphInfo, spec: ModelSpec,
            sample_images: list[np.ndarray] | None, random_images: int,
            target_layer: str | None, head: OneScoreHead | None) -> tuple[dict[str, Any], str]:
    layer_name = target_layer if target_layer and target_layer not in {
        t for n in augmented.graph.node for t in n.output} else None

    def reference(batch: np.ndarray, acts: np.ndarray, logits: np.ndarray | None) -> tuple[Reference, str]:
        return keras_reference(source, batch, acts, logits, layer_name)

    return verify_against_source(
        augmented, info, INPUT_NAME, check_batches(spec, sample_images, random_images), head,
        reference=None if isinstance(source, _SavedModel) else reference,
        source_scores=lambda batch: np.asarray(source(batch)),
        without_layers="finite differences of the ONNX head (a SavedModel has no layers to differentiate at)")
