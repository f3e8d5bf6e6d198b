"""The HemaLens model contract: what a self-describing ONNX classifier says about itself.

A HemaLens model is one ONNX file whose ``metadata_props`` hold a JSON document under the key
``hemalens`` (see docs/model-contract.md). This module is the single reader and writer of that
document; the exporter writes it with :func:`ModelSpec.to_json` and the runtime reads it with
:func:`spec_from_metadata`. It knows nothing about ONNX Runtime or Qt.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from inference.errors import ModelContractError

SCHEMA_VERSION = 1
METADATA_KEY = "hemalens"

Layout = Literal["NCHW", "NHWC"]
ColorOrder = Literal["RGB", "BGR"]
ResizePolicy = Literal["stretch", "letterbox", "center_crop"]
OutputKind = Literal["logits", "probabilities"]

LAYOUTS = ("NCHW", "NHWC")
COLOR_ORDERS = ("RGB", "BGR")
RESIZE_POLICIES = ("stretch", "letterbox", "center_crop")
OUTPUT_KINDS = ("logits", "probabilities")

# Documented defaults for plain ONNX classifiers that carry no HemaLens metadata.
DEFAULT_INPUT_SIZE = 224
DEFAULT_SCALE = 1.0 / 255.0
DEFAULT_MEAN = (0.0, 0.0, 0.0)
DEFAULT_STD = (1.0, 1.0, 1.0)
DEFAULT_RESIZE: ResizePolicy = "stretch"
DEFAULT_COLOR_ORDER: ColorOrder = "RGB"


@dataclass(frozen=True)
class ClassLabel:
    """One output class: ``id`` is stable (used in records), ``name`` is what people read."""

    id: str
    name: str


@dataclass(frozen=True)
class InputSpec:
    """How an RGB uint8 image becomes the model's input tensor.

    ``value = (pixel * scale - mean[c]) / std[c]`` per channel, in ``color_order``,
    after resizing to ``height`` x ``width`` with ``resize``.
    """

    name: str
    layout: Layout = "NCHW"
    height: int = DEFAULT_INPUT_SIZE
    width: int = DEFAULT_INPUT_SIZE
    color_order: ColorOrder = DEFAULT_COLOR_ORDER
    scale: float = DEFAULT_SCALE
    mean: tuple[float, float, float] = DEFAULT_MEAN
    std: tuple[float, float, float] = DEFAULT_STD
    resize: ResizePolicy = DEFAULT_RESIZE


@dataclass(frozen=True)
class OutputSpec:
    """The class-score output; probabilities are ``softmax(logits / temperature)``."""

    name: str
    kind: OutputKind = "logits"
    temperature: float = 1.0


@dataclass(frozen=True)
class GradCamSpec:
    """Names of the graph outputs that make Grad-CAM a runtime-only computation.

    ``activations`` is (N, K, h, w) (always channels-first, whatever the input layout) and
    ``weights`` is (N, C, K): for class c, CAM = ReLU(sum_k weights[n, c, k] * activations[n, k]).
    When ``class_input`` is set the model takes an extra int64 input of shape (N,) naming the
    class, and ``weights`` is (N, 1, K) for that class only.
    """

    activations: str
    weights: str
    target_layer: str = ""
    class_input: str | None = None


@dataclass(frozen=True)
class Provenance:
    """Where the model came from and how well it measured; shown in the model card."""

    training_data: str = ""
    split: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    intended_use: str = ""
    limitations: str = ""
    citation: str = ""
    license: str = ""
    authors: str = ""
    created: str = ""
    source_framework: str = ""
    exporter: str = ""
    verification: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ClassReference:
    """Training images of one class: feature mean, inverse covariance, and the distance limit."""

    mean: tuple[float, ...]
    inv_cov: tuple[tuple[float, ...], ...]
    limit: float


@dataclass(frozen=True)
class TrainingReference:
    """Per-class feature statistics of a model's training images, for telling when an image is unlike
    them (inference/familiarity.py computes and uses them)."""

    features: str
    classes: tuple[ClassReference, ...]
    quantile: float
    images: int


@dataclass(frozen=True)
class ModelSpec:
    """Everything HemaLens needs to run and explain a classifier.

    ``assumed`` is True when parts of the spec were guessed from a plain graph rather than told by
    whoever trained the model; ``notes`` then says which parts, so the app can show it. They are
    serialised as ``assumptions`` (a list of those notes), so an augmented copy of a plain model
    still tells the technician that its preprocessing is a guess.
    """

    name: str
    classes: tuple[ClassLabel, ...]
    input: InputSpec
    output: OutputSpec
    id: str = ""
    version: str = ""
    description: str = ""
    gradcam: GradCamSpec | None = None
    provenance: Provenance = field(default_factory=Provenance)
    training_reference: TrainingReference | None = None
    schema_version: int = SCHEMA_VERSION
    assumed: bool = False
    notes: tuple[str, ...] = ()

    @property
    def labels(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        assumed = data.pop("assumed")
        notes = data.pop("notes")
        if assumed:
            data["assumptions"] = list(notes) or ["Preprocessing is assumed."]
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=None, sort_keys=True, ensure_ascii=False)

    def with_provenance(self, **changes: Any) -> ModelSpec:
        return replace(self, provenance=replace(self.provenance, **changes))


def _require(data: dict[str, Any], key: str, where: str) -> Any:
    if key not in data:
        raise ModelContractError(f"HemaLens metadata: '{where}.{key}' is missing")
    return data[key]


def _triple(value: Any, where: str) -> tuple[float, float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise ModelContractError(f"HemaLens metadata: '{where}' must be a list of 3 numbers")
    out = tuple(float(v) for v in value)
    if not all(math.isfinite(v) for v in out):
        raise ModelContractError(f"HemaLens metadata: '{where}' must be finite numbers")
    return out  # type: ignore[return-value]


def _choice(value: Any, allowed: tuple[str, ...], where: str) -> str:
    if value not in allowed:
        raise ModelContractError(
            f"HemaLens metadata: '{where}' is {value!r}; expected one of {', '.join(allowed)}"
        )
    return value


def spec_from_dict(data: dict[str, Any]) -> ModelSpec:
    """Validate a decoded metadata document and build the spec; raises ModelContractError."""
    if not isinstance(data, dict):
        raise ModelContractError("HemaLens metadata is not a JSON object")
    version = _require(data, "schema_version", "model")
    if not isinstance(version, int) or version < 1:
        raise ModelContractError(f"HemaLens metadata: bad schema_version {version!r}")
    if version > SCHEMA_VERSION:
        raise ModelContractError(
            f"HemaLens metadata schema {version} is newer than this HemaLens understands "
            f"({SCHEMA_VERSION}); update HemaLens to use this model"
        )

    raw_classes = _require(data, "classes", "model")
    if not isinstance(raw_classes, list) or not raw_classes:
        raise ModelContractError("HemaLens metadata: 'classes' must be a non-empty list")
    if len(raw_classes) == 1:
        raise ModelContractError(ONE_SCORE)
    classes = []
    for i, item in enumerate(raw_classes):
        if not isinstance(item, dict) or not item.get("name"):
            raise ModelContractError(f"HemaLens metadata: class {i} needs a 'name'")
        classes.append(ClassLabel(id=str(item.get("id") or item["name"]), name=str(item["name"])))
    ids = [c.id for c in classes]
    if len(set(ids)) != len(ids):
        raise ModelContractError("HemaLens metadata: class ids must be unique")

    raw_in = _require(data, "input", "model")
    if not isinstance(raw_in, dict):
        raise ModelContractError("HemaLens metadata: 'input' must be an object")
    height, width = int(_require(raw_in, "height", "input")), int(_require(raw_in, "width", "input"))
    if not (1 <= height <= 8192 and 1 <= width <= 8192):
        raise ModelContractError(f"HemaLens metadata: input size {height}x{width} is not sensible")
    std = _triple(raw_in.get("std", DEFAULT_STD), "input.std")
    if any(s == 0 for s in std):
        raise ModelContractError("HemaLens metadata: 'input.std' must not contain zero")
    scale = float(raw_in.get("scale", DEFAULT_SCALE))
    if not math.isfinite(scale) or scale <= 0:
        raise ModelContractError("HemaLens metadata: 'input.scale' must be a positive number")
    inp = InputSpec(
        name=str(_require(raw_in, "name", "input")),
        layout=_choice(raw_in.get("layout", "NCHW"), LAYOUTS, "input.layout"),  # type: ignore[arg-type]
        height=height,
        width=width,
        color_order=_choice(raw_in.get("color_order", "RGB"), COLOR_ORDERS, "input.color_order"),  # type: ignore[arg-type]
        scale=scale,
        mean=_triple(raw_in.get("mean", DEFAULT_MEAN), "input.mean"),
        std=std,
        resize=_choice(raw_in.get("resize", DEFAULT_RESIZE), RESIZE_POLICIES, "input.resize"),  # type: ignore[arg-type]
    )

    raw_out = _require(data, "output", "model")
    if not isinstance(raw_out, dict):
        raise ModelContractError("HemaLens metadata: 'output' must be an object")
    temperature = float(raw_out.get("temperature", 1.0))
    if not math.isfinite(temperature) or temperature <= 0:
        raise ModelContractError("HemaLens metadata: 'output.temperature' must be positive")
    out = OutputSpec(
        name=str(_require(raw_out, "name", "output")),
        kind=_choice(raw_out.get("kind", "logits"), OUTPUT_KINDS, "output.kind"),  # type: ignore[arg-type]
        temperature=temperature,
    )

    gradcam = None
    raw_cam = data.get("gradcam")
    if raw_cam is not None:
        if not isinstance(raw_cam, dict):
            raise ModelContractError("HemaLens metadata: 'gradcam' must be an object or null")
        gradcam = GradCamSpec(
            activations=str(_require(raw_cam, "activations", "gradcam")),
            weights=str(_require(raw_cam, "weights", "gradcam")),
            target_layer=str(raw_cam.get("target_layer", "")),
            class_input=raw_cam.get("class_input") or None,
        )

    raw_prov = data.get("provenance") or {}
    if not isinstance(raw_prov, dict):
        raise ModelContractError("HemaLens metadata: 'provenance' must be an object")
    known = set(Provenance.__dataclass_fields__)
    provenance = Provenance(**{k: v for k, v in raw_prov.items() if k in known})

    reference = _training_reference(data.get("training_reference"), len(classes))

    assumptions = data.get("assumptions") or []
    if not isinstance(assumptions, list):
        raise ModelContractError("HemaLens metadata: 'assumptions' must be a list of notes")

    return ModelSpec(
        schema_version=version,
        name=str(data.get("name") or "Unnamed model"),
        id=str(data.get("id", "")),
        version=str(data.get("version", "")),
        description=str(data.get("description", "")),
        classes=tuple(classes),
        input=inp,
        output=out,
        gradcam=gradcam,
        provenance=provenance,
        training_reference=reference,
        assumed=bool(assumptions),
        notes=tuple(str(a) for a in assumptions),
    )


def _training_reference(raw: Any, num_classes: int) -> TrainingReference | None:
    """Parse the optional per-class training-image statistics; None when absent."""
    if raw is None:
        return None
    where = "HemaLens metadata: 'training_reference'"
    try:
        classes = []
        for item in raw["classes"]:
            mean = tuple(float(v) for v in item["mean"])
            inv_cov = tuple(tuple(float(v) for v in row) for row in item["inv_cov"])
            if not mean or len(inv_cov) != len(mean) or any(len(row) != len(mean) for row in inv_cov):
                raise ValueError("mean and inv_cov sizes differ")
            classes.append(ClassReference(mean, inv_cov, float(item["limit"])))
        reference = TrainingReference(str(raw["features"]), tuple(classes), float(raw["quantile"]), int(raw["images"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelContractError(f"{where} is malformed ({exc})") from None
    if len(reference.classes) != num_classes:
        raise ModelContractError(f"{where} has {len(reference.classes)} classes, the model {num_classes}")
    return reference


def spec_from_json(text: str) -> ModelSpec:
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, TypeError) as exc:
        raise ModelContractError(f"HemaLens metadata is not valid JSON ({exc})") from None
    return spec_from_dict(data)


def spec_from_metadata(metadata_props: dict[str, str]) -> ModelSpec | None:
    """Read the spec from an ONNX model's metadata; None when the model carries none."""
    text = metadata_props.get(METADATA_KEY)
    if text is None:
        return None
    return spec_from_json(text)


# One score per image (a yes/no sigmoid) read as one class is that class at 100 % for every image.
ONE_SCORE = ("the model gives one score per image (a yes/no sigmoid output?); HemaLens needs one score per class, "
             "at least two: `hemalens-export augment MODEL NEW.onnx --labels no,yes` writes a two-class copy")


# A sigmoid on each class scores them one by one; softmax over those would squeeze 0.99 against two 0.01 to 48 %.
SIGMOID_PER_CLASS = ("The output is a sigmoid per class, each class scored on its own: an image's scores are shown "
                     "as shares of their sum.")


def assumed_spec(
    *,
    input_name: str,
    input_shape: list[int | str | None],
    output_name: str,
    num_classes: int,
    output_op: str | None,
    name: str = "Unnamed model",
) -> ModelSpec:
    """Build a spec for a plain ONNX classifier from what its graph tells, with documented defaults.

    The layout is read from the input shape (3 channels first -> NCHW, last -> NHWC); the size
    from the shape when it is fixed, else DEFAULT_INPUT_SIZE. Scaling is 1/255 with no mean/std,
    RGB, stretch resize, and classes are named "Class 0".."Class C-1". ``output_op`` is the op that
    produced the scores: after Softmax (or a Sigmoid per class) they are probabilities, else logits.
    """
    if num_classes < 2:
        raise ModelContractError(ONE_SCORE)
    notes = ["No HemaLens metadata: preprocessing is assumed (RGB, pixel/255, stretch resize)."]
    dims = list(input_shape)
    if len(dims) != 4:
        raise ModelContractError(f"model input '{input_name}' has rank {len(dims)}; an image classifier needs rank 4")
    layout: Layout
    if dims[1] == 3:
        layout, spatial = "NCHW", dims[2:4]
    elif dims[3] == 3:
        layout, spatial = "NHWC", dims[1:3]
    elif dims[1] in (1, 3) or not isinstance(dims[3], int):
        layout, spatial = "NCHW", dims[2:4]
    else:
        raise ModelContractError(
            f"model input '{input_name}' has shape {dims}; expected 3 colour channels (NCHW or NHWC)"
        )
    sizes = [d if isinstance(d, int) and d > 0 else None for d in spatial]
    if None in sizes:
        notes.append(f"Input size is not fixed in the graph: assuming {DEFAULT_INPUT_SIZE}x{DEFAULT_INPUT_SIZE}.")
    height = sizes[0] or DEFAULT_INPUT_SIZE
    width = sizes[1] or DEFAULT_INPUT_SIZE
    notes.append("Class names are unknown: shown as Class 0, Class 1, ...")
    if output_op == "Sigmoid":
        notes.append(SIGMOID_PER_CLASS)
    return ModelSpec(
        name=name,
        classes=tuple(ClassLabel(id=f"class_{i}", name=f"Class {i}") for i in range(num_classes)),
        input=InputSpec(name=input_name, layout=layout, height=height, width=width),
        output=OutputSpec(name=output_name, kind="probabilities" if output_op in ("Softmax", "Sigmoid") else "logits"),
        assumed=True,
        notes=tuple(notes),
    )
