"""One ONNX Runtime session per model: validated at load, created once, reused for every prediction.

``ModelSession.load`` refuses broken or hostile files with a ModelLoadError before any image is
classified; it checks the HemaLens metadata (or assumes documented defaults for a plain graph)
against the real graph, including one test run on a blank input.
"""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from inference.cam import GAP_CAM, GRAD_CAM, SCORE_CAM, CamSource, score_cam_weights
from inference.cam_graph import GapHead, find_gap_head, find_last_conv_activation, with_extra_output
from inference.contract import ModelSpec, assumed_spec
from inference.errors import InferenceError, ModelContractError, ModelLoadError
from inference.familiarity import FEATURE_SET, UNFAMILIAR_NOTE, image_features, pixels_from_tensor, unfamiliar
from inference.model_file import (
    external_data_files,
    metadata_spec,
    producer_op,
    read_model_file,
)
from inference.prediction import Prediction
from inference.preprocess import normalisation, preprocess_batch
from inference.quality import enlargement_notes, quality_notes

CPU = "CPUExecutionProvider"
# Accelerators used automatically when this onnxruntime build has them; CPU is always the fallback.
PREFERRED_PROVIDERS = ("CUDAExecutionProvider", "DmlExecutionProvider")


def available_cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def session_options(threads: int | None = None) -> ort.SessionOptions:
    """Options for small CPU machines: all graph optimisations, one op at a time on all cores, no spin-waiting.

    Spinning threads would steal the CPU from image decoding between runs on a 2-core machine.
    """
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = threads or available_cpu_count()
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return opts


def choose_providers(requested: list[str] | None) -> tuple[list[str], list[str]]:
    """Providers to try (always ending with CPU) and notes about requested ones this build lacks."""
    available = ort.get_available_providers()
    notes: list[str] = []
    if requested is None:
        wanted = [p for p in PREFERRED_PROVIDERS if p in available]
    else:
        wanted = []
        for p in requested:
            if p in available:
                wanted.append(p)
            else:
                notes.append(f"{p} is not available in this ONNX Runtime; using CPU")
    providers = [p for p in dict.fromkeys([*wanted, CPU]) if p in available or p == CPU]
    return providers, notes


def _static_dims(shape: Any) -> list[int | None]:
    return [d if isinstance(d, int) and d > 0 else None for d in (shape or [])]


def _score_width(shape: Any) -> int | None:
    """Scores per image from a declared output shape ((N, C), or (N, C, 1, 1) ...); None when not fixed."""
    dims = _static_dims(shape)
    if len(dims) < 2 or any(d is None for d in dims[1:]):
        return None
    return int(np.prod(dims[1:]))


def _refuse_a_map(shape: Any, path: Path) -> None:
    """A classifier gives one score per class: more than one dimension past the batch over 1 (N, C, H, W) is a
    map, as a segmentation or detection model gives; read as scores it made a "Class 1581" call."""
    dims = [d for d in _static_dims(shape)[1:] if d is not None and d > 1]  # unknown ones: the test run tells
    if len(dims) > 1:
        size = " x ".join(str(d) for d in dims)
        raise ModelLoadError(path, f"its output is a {size} map per image, as a segmentation or detection model "
                                   "gives, not one score per class; HemaLens runs image classifiers")


class ModelSession:
    """A loaded, validated model. Create with ``ModelSession.load(path)``; thread-compatible, not re-entrant."""

    def __init__(self, *, path: Path, spec: ModelSpec, sha256: str, session: ort.InferenceSession,
                 cam_method: str | None, gap_head: GapHead | None, notes: list[str],
                 score_target: str | None = None) -> None:
        self.path = path
        self.spec = spec
        self.sha256 = sha256
        self._session = session
        self.providers: list[str] = list(session.get_providers())
        self.cam_method = cam_method
        self._gap = gap_head
        self.notes: tuple[str, ...] = tuple(notes)
        inp = session.get_inputs()
        self._input_name = spec.input.name
        first = next(i for i in inp if i.name == spec.input.name)
        self._fixed_batch = first.shape[0] if isinstance(first.shape[0], int) and first.shape[0] > 0 else None
        self._outputs = [spec.output.name]
        if cam_method == GRAD_CAM and spec.gradcam is not None:
            self._outputs += [spec.gradcam.activations, spec.gradcam.weights]
        elif gap_head is not None:
            self._outputs.append(gap_head.activations)
        elif score_target is not None:
            self._outputs.append(score_target)
        self._class_input = spec.gradcam.class_input if (spec.gradcam and cam_method == GRAD_CAM) else None
        self._labels = tuple(spec.labels)
        self._ids = tuple(c.id for c in spec.classes)
        # Makes another ORT session on the same graph with a given thread count (see with_threads).
        self._recreate: Callable[[int], ort.InferenceSession] | None = None
        self._threads: int | None = None  # intra-op threads of ``_session`` when known
        self._twins: dict[int, ModelSession] = {}
        self._twin_lock = threading.Lock()

    @property
    def ort_session(self) -> ort.InferenceSession:
        """The underlying ONNX Runtime session (for benchmarks and exporter checks; runs the same graph)."""
        return self._session

    # ----------------------------------------------------------------------------------------- loading
    @classmethod
    def load(cls, path: str | Path, providers: list[str] | None = None, *, threads: int | None = None) -> ModelSession:
        """Validate and open a model; raises ModelLoadError with a clear reason."""
        path = Path(path)
        model, data, sha = read_model_file(path)
        spec = metadata_spec(model, path)
        notes: list[str] = []
        has_external = bool(external_data_files(model, path))

        gap: GapHead | None = None
        score_target: str | None = None
        runtime_model: onnx.ModelProto | None = None
        if spec is None or spec.gradcam is None:
            score_name = spec.output.name if spec else (model.graph.output[0].name if model.graph.output else "")
            gap = find_gap_head(_with_external_data(model, path) if has_external else model, score_name)
            if gap is not None:
                runtime_model = with_extra_output(model, gap.activations)
            else:
                score_target = find_last_conv_activation(model)
                if score_target is not None:
                    runtime_model = with_extra_output(model, score_target)

        tried, provider_notes = choose_providers(providers)
        notes += provider_notes
        source: tuple[bytes | None, onnx.ModelProto | None] = (
            data if runtime_model is None and not has_external else None, runtime_model)
        try:
            session = cls._create(path, tried, *source, has_external, threads, notes)
        except ModelLoadError:
            if runtime_model is None:
                raise
            # The copy exposing activations for a gradient-free CAM failed: the model itself may still run.
            source = (None if has_external else data, None)
            session = cls._create(path, tried, *source, has_external, threads, notes)
            gap, score_target = None, None
            notes.append("no heatmap: the activations for a gradient-free CAM could not be exposed")

        if spec is None:
            spec = _assume_spec(model, session, path)
            notes += list(spec.notes)
        cam_method = GRAD_CAM if spec.gradcam is not None else GAP_CAM if gap is not None else \
            SCORE_CAM if score_target is not None else None
        _check_against_graph(spec, session, path)
        self = cls(path=path, spec=spec, sha256=sha, session=session, cam_method=cam_method, gap_head=gap,
                   notes=notes, score_target=score_target if cam_method == SCORE_CAM else None)
        self._probe()
        if self.providers[0] == CPU:
            self._threads = threads or available_cpu_count()
            self._recreate = lambda n: cls._create(path, [CPU], *source, has_external, n, [])
        return self

    def with_threads(self, threads: int) -> ModelSession:
        """This model on its own CPU session with ``threads`` intra-op threads (created once, then reused).

        Batch lanes (inference.batch) each run one batch on one thread, side by side: for these small
        models that beats one run at a time spread over all cores, which pays a synchronisation per
        operator. ``predict`` on ``self`` keeps all cores for the lowest single-image latency. Returns
        ``self`` when the model runs on an accelerator or its twin cannot be created.
        """
        if self._recreate is None or threads == self._threads:
            return self
        with self._twin_lock:
            twin = self._twins.get(threads)
            if twin is None:
                try:
                    ort_session = self._recreate(threads)
                except ModelLoadError:
                    return self
                twin = copy.copy(self)  # shares the validated spec, CAM set-up and output names
                twin._session = ort_session
                twin._recreate, twin._twins, twin._twin_lock, twin._threads = None, {}, threading.Lock(), threads
                self._twins[threads] = twin
            return twin

    @staticmethod
    def _create(path: Path, providers: list[str], data: bytes | None, runtime_model: onnx.ModelProto | None,
                has_external: bool, threads: int | None, notes: list[str]) -> ort.InferenceSession:
        if runtime_model is not None:
            if has_external:
                runtime_model = _with_external_data(runtime_model, path)
            source: Any = runtime_model.SerializeToString()
        else:
            source = data if data is not None else str(path)
        attempts = [providers] if providers == [CPU] else [providers, [CPU]]
        last: Exception | None = None
        for attempt in attempts:
            try:
                session = ort.InferenceSession(source, sess_options=session_options(threads), providers=attempt)
                if attempt is not providers:
                    notes.append(f"{providers[0]} failed to start; running on CPU")
                return session
            except Exception as exc:  # noqa: BLE001 - ORT raises several private exception types
                last = exc
        reason = str(last).strip().splitlines()[0] if last else "unknown error"
        raise ModelLoadError(path, f"ONNX Runtime cannot load this model ({reason[:300]})")

    def _probe(self) -> None:
        """One run on a blank image: checks the real output shapes against the metadata before real use."""
        blank = np.full((self.spec.input.height, self.spec.input.width, 3), 128, dtype=np.uint8)
        try:
            tensor, _ = preprocess_batch([blank], self.spec.input)
            outputs = self._run(tensor)
            self._unlike_training(tensor, np.zeros(1, dtype=int))  # first-call costs here, not mid-batch
        except InferenceError as exc:
            raise ModelLoadError(self.path, f"the model failed a test run ({exc})") from None
        scores = outputs[0]
        if scores.size != self.spec.num_classes:
            raise ModelLoadError(
                self.path,
                f"the metadata lists {self.spec.num_classes} classes but the model outputs {scores.size} scores",
            )
        if len(outputs) < 2:
            return
        acts = outputs[1]
        if self.cam_method == GRAD_CAM:
            if acts.ndim != 4 or acts.shape[0] != 1:
                raise ModelLoadError(self.path, f"the Grad-CAM activations have shape {acts.shape}; "
                                                "expected (N, K, h, w)")
            w, want_c = outputs[2], 1 if self._class_input else self.spec.num_classes
            if w.shape != (1, want_c, acts.shape[1]):
                raise ModelLoadError(
                    self.path, f"the Grad-CAM weights have shape {w.shape}; expected (N, {want_c}, {acts.shape[1]})")
            return
        # Gradient-free CAM found by graph inspection: when it does not fit, go without a heatmap.
        k = acts.shape[3] if self._gap is not None and self._gap.channels_last else (acts.shape[1] if acts.ndim else 0)
        fits = acts.ndim == 4 and acts.shape[0] == 1 and min(acts.shape[2:]) >= 1 and (
            self._gap is None or self._gap.weights.shape == (self.spec.num_classes, k))
        if not fits:
            self.cam_method, self._gap, self._outputs = None, None, self._outputs[:1]
            self.notes += ("no heatmap: the layer found for a gradient-free CAM does not fit the classifier",)

    # ----------------------------------------------------------------------------------------- running
    def _feeds(self, tensor: np.ndarray, class_index: int = 0) -> dict[str, np.ndarray]:
        feeds = {self._input_name: tensor}
        if self._class_input:
            feeds[self._class_input] = np.full((tensor.shape[0],), class_index, dtype=np.int64)
        return feeds

    def _run(self, tensor: np.ndarray, class_index: int = 0, outputs: list[str] | None = None) -> list[np.ndarray]:
        names = outputs or self._outputs
        try:
            if self._fixed_batch == 1 and tensor.shape[0] != 1:
                parts = [self._session.run(names, self._feeds(tensor[i:i + 1], class_index))
                         for i in range(tensor.shape[0])]
                return [np.concatenate([p[j] for p in parts]) for j in range(len(names))]
            return self._session.run(names, self._feeds(tensor, class_index))
        except Exception as exc:  # noqa: BLE001 - ORT runtime failures become typed errors
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InferenceError(f"the model failed while running: {reason[:300]}") from None

    def calibrate(self, scores: np.ndarray) -> np.ndarray:
        """(N, C) raw scores -> calibrated probabilities (softmax with the model's temperature)."""
        out = self.spec.output
        s = scores.astype(np.float64)
        if out.kind == "probabilities":
            if out.temperature == 1.0:
                p = np.clip(s, 0.0, None)
                total = p.sum(axis=1, keepdims=True)
                return np.where(total > 0, p / np.where(total > 0, total, 1), 1.0 / s.shape[1]).astype(np.float32)
            s = np.log(np.clip(s, 1e-12, None))
        s = s / out.temperature
        s -= s.max(axis=1, keepdims=True)
        e = np.exp(s)
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)

    @staticmethod
    def _as_rgb(image: np.ndarray) -> np.ndarray:
        if not isinstance(image, np.ndarray):
            raise InferenceError(f"expected an image array, got {type(image).__name__}")
        if image.dtype != np.uint8:
            raise InferenceError(f"expected uint8 pixels, got {image.dtype}")
        if image.ndim == 2:
            return np.repeat(image[:, :, None], 3, axis=2)
        if image.ndim == 3 and image.shape[2] == 4:
            return image[:, :, :3]
        if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
            raise InferenceError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
        return image

    def predict(self, rgb: np.ndarray) -> Prediction:
        """Classify one (H, W, 3) uint8 RGB image."""
        return self.predict_batch([rgb])[0]

    def predict_batch(self, images: list[np.ndarray]) -> list[Prediction]:
        """Classify several images in one run (they may differ in size)."""
        if not images:
            return []
        rgbs = [self._as_rgb(im) for im in images]
        tensor, geoms = preprocess_batch(rgbs, self.spec.input)
        outputs = self._run(tensor)
        scores = outputs[0].reshape(len(rgbs), -1)
        if scores.shape[1] != self.spec.num_classes:
            raise InferenceError(f"the model returned {scores.shape[1]} scores for {self.spec.num_classes} classes")
        if not np.isfinite(scores).all():
            raise InferenceError("the model returned non-finite scores (NaN or infinity)")
        probs = self.calibrate(scores)
        base_notes = ("preprocessing assumed: the model has no HemaLens metadata",) if self.spec.assumed else ()
        top = probs.argmax(axis=1)
        unlike = self._unlike_training(tensor, top)
        results = []
        for i, rgb in enumerate(rgbs):
            cam = self._cam_source(outputs, i, tensor, geoms[i])
            results.append(Prediction(
                labels=self._labels,
                class_ids=self._ids,
                probabilities=probs[i],
                top_index=int(top[i]),
                cam_method=self.cam_method,
                notes=(base_notes + enlargement_notes(rgb, self.spec.input.width, self.spec.input.height)
                       + quality_notes(rgb) + ((UNFAMILIAR_NOTE,) if unlike[i] else ())),
                scores=scores[i].copy(),
                image_size=(rgb.shape[1], rgb.shape[0]),
                unseen_edges=geoms[i].unseen_edges(),
                _cam=cam,
            ))
        return results

    def _unlike_training(self, tensor: np.ndarray, called: np.ndarray) -> np.ndarray:
        """Per image: True when it is unlike the training images of the class it was called (see
        inference/familiarity.py); all False for models without a reference of a known feature set."""
        ref = self.spec.training_reference
        if ref is None or ref.features != FEATURE_SET:
            return np.zeros(len(tensor), dtype=bool)
        return unfamiliar(ref, image_features(pixels_from_tensor(tensor, self.spec.input)), called)

    def _cam_source(self, outputs: list[np.ndarray], i: int, tensor: np.ndarray, geom: Any) -> CamSource | None:
        if self.cam_method is None or len(outputs) < 2:
            return None
        acts = outputs[1][i]
        if self._gap is not None and self._gap.channels_last:
            acts = np.ascontiguousarray(acts.transpose(2, 0, 1))
        if self.cam_method == GRAD_CAM and self._class_input:
            single = tensor[i:i + 1].copy()
            weights_name = self.spec.gradcam.weights  # type: ignore[union-attr]

            def weights_for(c: int) -> np.ndarray:
                return self._run(single, class_index=c, outputs=[weights_name])[0][0, 0]

            return CamSource(self.cam_method, acts, geom, weights_for_class=weights_for)
        if self.cam_method == SCORE_CAM:
            return CamSource(self.cam_method, acts, geom, weights_for_class=self._score_cam_for(acts, tensor[i]))
        weights = outputs[2][i] if self.cam_method == GRAD_CAM else self._gap.weights  # type: ignore[union-attr]
        return CamSource(self.cam_method, acts, geom, weights=weights)

    def _score_cam_for(self, acts: np.ndarray, tensor: np.ndarray):  # noqa: ANN202
        """A per-class weight lookup that runs Score-CAM once (all classes together) on first use."""
        spec = self.spec.input
        mul, add = normalisation(spec)
        planar = tensor if spec.layout == "NHWC" else tensor.transpose(1, 2, 0)
        image = (planar - add) / mul  # back to pixel values at the model's input size, model channel order
        cache: dict[str, np.ndarray] = {}

        def to_tensor(images: np.ndarray) -> np.ndarray:
            out = images.astype(np.float32) * mul + add
            return np.ascontiguousarray(out if spec.layout == "NHWC" else out.transpose(0, 3, 1, 2))

        def probabilities(batch: np.ndarray) -> np.ndarray:
            parts = [self._run(batch[j:j + 16], outputs=[self.spec.output.name])[0] for j in range(0, len(batch), 16)]
            return self.calibrate(np.concatenate(parts).reshape(len(batch), -1))

        def weights_for(c: int) -> np.ndarray:
            if "w" not in cache:
                cache["w"] = score_cam_weights(acts, image, to_tensor, probabilities)
            return cache["w"][c]

        return weights_for

    def __repr__(self) -> str:
        return f"ModelSession({self.spec.name!r}, {self.path.name}, providers={self.providers})"


def _with_external_data(model: onnx.ModelProto, path: Path) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    onnx.load_external_data_for_model(copy, str(path.resolve().parent))
    return copy


def _assume_spec(model: onnx.ModelProto, session: ort.InferenceSession, path: Path) -> ModelSpec:
    """Spec for a plain classifier from what the graph tells (see docs/model-contract.md)."""
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ModelLoadError(path, f"the model has {len(inputs)} inputs; a plain image classifier needs exactly 1")
    out = session.get_outputs()[0]
    _refuse_a_map(out.shape, path)
    num_classes = _score_width(out.shape)
    try:
        if num_classes is None:
            probe = assumed_spec(input_name=inputs[0].name, input_shape=list(inputs[0].shape), output_name=out.name,
                                 num_classes=2, output_op=None)  # for its input geometry
            shape = (1, 3, probe.input.height, probe.input.width) if probe.input.layout == "NCHW" else \
                (1, probe.input.height, probe.input.width, 3)
            try:
                result = session.run([out.name], {inputs[0].name: np.zeros(shape, dtype=np.float32)})[0]
            except Exception as exc:  # noqa: BLE001
                raise ModelLoadError(path, f"the model failed a test run ({str(exc)[:200]})") from None
            _refuse_a_map(result.shape, path)
            num_classes = int(result.size)
        return assumed_spec(input_name=inputs[0].name, input_shape=list(inputs[0].shape), output_name=out.name,
                            num_classes=int(num_classes), output_op=producer_op(model, out.name),
                            name=Path(path).stem)
    except ModelContractError as exc:
        raise ModelLoadError(path, str(exc)) from None


def _check_against_graph(spec: ModelSpec, session: ort.InferenceSession, path: Path) -> None:
    """Static checks of the spec against the graph's declared inputs and outputs."""
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name: o for o in session.get_outputs()}
    if spec.input.name not in inputs:
        raise ModelLoadError(path, f"the metadata names input '{spec.input.name}' but the graph's inputs are "
                                   f"{', '.join(inputs)}")
    expected_inputs = {spec.input.name} | ({spec.gradcam.class_input} if spec.gradcam and spec.gradcam.class_input
                                           else set())
    extra = set(inputs) - expected_inputs
    if extra:
        raise ModelLoadError(path, f"the model needs inputs HemaLens cannot provide: {', '.join(sorted(extra))}")
    inp = inputs[spec.input.name]
    if inp.type not in ("tensor(float)",):
        raise ModelLoadError(path, f"input '{inp.name}' is {inp.type}; HemaLens feeds float32 tensors")
    dims = inp.shape or []
    if len(dims) != 4:
        raise ModelLoadError(path, f"input '{inp.name}' has rank {len(dims)}; an image classifier needs rank 4")
    static = _static_dims(dims)
    if static[0] not in (None, 1):
        raise ModelLoadError(path, f"input '{inp.name}' has a fixed batch size of {static[0]}; 1 or dynamic needed")
    c, h, w = (static[1], static[2], static[3]) if spec.input.layout == "NCHW" else (static[3], static[1], static[2])
    if c not in (None, 3):
        raise ModelLoadError(path, f"input '{inp.name}' has {c} channels where the {spec.input.layout} layout "
                                   "needs 3 (metadata layout disagrees with the graph?)")
    if (h is not None and h != spec.input.height) or (w is not None and w != spec.input.width):
        raise ModelLoadError(path, f"the metadata says {spec.input.height}x{spec.input.width} input but the graph "
                                   f"expects {h}x{w}")
    if spec.output.name not in outputs:
        raise ModelLoadError(path, f"the metadata names output '{spec.output.name}' but the graph's outputs are "
                                   f"{', '.join(outputs)}")
    _refuse_a_map(outputs[spec.output.name].shape, path)
    width = _score_width(outputs[spec.output.name].shape)
    if width is not None and width != spec.num_classes:
        raise ModelLoadError(path, f"the metadata lists {spec.num_classes} classes but the model outputs "
                                   f"{width} scores")
    if spec.gradcam is not None:
        for role, name in (("activations", spec.gradcam.activations), ("weights", spec.gradcam.weights)):
            if name not in outputs:
                raise ModelLoadError(path, f"the Grad-CAM {role} output '{name}' named in the metadata is missing")
        a_rank = len(outputs[spec.gradcam.activations].shape or [])
        w_rank = len(outputs[spec.gradcam.weights].shape or [])
        if (a_rank and a_rank != 4) or (w_rank and w_rank != 3):
            raise ModelLoadError(path, "the Grad-CAM outputs have the wrong rank (need (N,K,h,w) and (N,C,K))")
