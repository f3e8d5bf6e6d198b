"""ModelSession on tiny real ONNX models: probabilities and Grad-CAM checked against independent numpy maths."""

from __future__ import annotations

import cv2
import numpy as np
import onnx
import pytest

from inference.cam import GAP_CAM, GRAD_CAM
from inference.errors import InferenceError
from inference.preprocess import preprocess
from inference.session import ModelSession
from tests.model_factory import classifier_weights, make_classifier, reference_forward


def _image(h: int, w: int, seed: int = 1) -> np.ndarray:
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


def _numpy_tensor(rgb: np.ndarray) -> np.ndarray:
    """The factory's preprocessing (mean .5, std .25, 1/255) written out independently."""
    return ((rgb.astype(np.float64) / 255.0 - 0.5) / 0.25).transpose(2, 0, 1)[None]


def _numpy_gradcam(rgb: np.ndarray, class_index: int, num_classes: int = 3) -> np.ndarray:
    """Grad-CAM with the gradient taken by central finite differences of the numpy head (no shortcut)."""
    _, acts = reference_forward(_numpy_tensor(rgb), num_classes)
    a = acts[0]
    w = classifier_weights(num_classes)

    def head(act: np.ndarray) -> float:
        return float(act.mean(axis=(1, 2)) @ w["fc_w"][class_index] + w["fc_b"][class_index])

    eps = 1e-3
    grads = np.zeros_like(a)
    for idx in np.ndindex(*a.shape):
        plus, minus = a.copy(), a.copy()
        plus[idx] += eps
        minus[idx] -= eps
        grads[idx] = (head(plus) - head(minus)) / (2 * eps)
    alpha = grads.mean(axis=(1, 2))
    cam = np.maximum(np.tensordot(alpha, a, axes=1), 0)
    return cam / cam.max() if cam.max() > 0 else cam


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return make_classifier(tmp_path_factory.mktemp("m") / "tiny.onnx", labels=["Blast", "Lympho", "Neutro"])


@pytest.fixture(scope="module")
def session(model_path):
    return ModelSession.load(model_path)


def test_probabilities_match_numpy_reference(session):
    rgb = _image(32, 32)
    pred = session.predict(rgb)
    logits, _ = reference_forward(_numpy_tensor(rgb))
    expected = np.exp(logits[0] - logits[0].max())
    expected /= expected.sum()
    np.testing.assert_allclose(pred.probabilities, expected, atol=1e-5)
    assert pred.top_index == int(np.argmax(expected))
    assert pred.top_label == ["Blast", "Lympho", "Neutro"][pred.top_index]
    assert pred.top_probability == pytest.approx(float(expected.max()), abs=1e-5)
    assert pred.probabilities.dtype == np.float32 and pred.probabilities.shape == (3,)
    assert session.cam_method == GRAD_CAM and pred.cam_method == GRAD_CAM
    assert len(session.sha256) == 64 and "CPUExecutionProvider" in session.providers


@pytest.mark.parametrize("class_index", [0, 1, 2])
def test_gradcam_matches_finite_difference_numpy(session, class_index):
    rgb = _image(32, 32, seed=5)
    pred = session.predict(rgb)
    expected_low = _numpy_gradcam(rgb, class_index)
    low = pred._cam.low_res(class_index)
    np.testing.assert_allclose(low, expected_low, atol=1e-4)
    # Full-size map: the model-input-sized image is the original, so it is a plain bilinear upsampling.
    full = pred.heatmap(class_index)
    assert full.shape == (32, 32) and full.dtype == np.float32
    expected_full = cv2.resize(expected_low.astype(np.float32), (32, 32), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(full, np.clip(expected_full, 0, 1), atol=1e-4)
    assert full.min() >= 0.0 and full.max() <= 1.0


def test_heatmap_is_at_original_size_and_defaults_to_top_class(session):
    rgb = _image(45, 77)
    pred = session.predict(rgb)
    hm = pred.heatmap()
    assert hm.shape == (45, 77)
    np.testing.assert_array_equal(hm, pred.heatmap(pred.top_index))
    with pytest.raises(IndexError):
        pred.heatmap(3)


def test_batch_equals_single_predictions(session):
    images = [_image(32, 32, s) for s in range(3)] + [_image(64, 20, 9)]
    batch = session.predict_batch(images)
    for rgb, pred in zip(images, batch, strict=True):
        single = session.predict(rgb)
        np.testing.assert_allclose(pred.probabilities, single.probabilities, atol=1e-6)
        np.testing.assert_allclose(pred.heatmap(1), single.heatmap(1), atol=1e-6)
    assert session.predict_batch([]) == []


def test_nhwc_layout_gives_same_result(tmp_path, session):
    nhwc = ModelSession.load(make_classifier(tmp_path / "nhwc.onnx", layout="NHWC"))
    rgb = _image(40, 30)
    a, b = session.predict(rgb), nhwc.predict(rgb)
    np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-5)
    np.testing.assert_allclose(a.heatmap(), b.heatmap(), atol=1e-5)


def test_temperature_and_probability_outputs(tmp_path, session):
    rgb = _image(32, 32)
    logits, _ = reference_forward(_numpy_tensor(rgb))
    hot = ModelSession.load(make_classifier(tmp_path / "t.onnx", temperature=2.0)).predict(rgb)
    z = logits[0] / 2.0
    expected = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    np.testing.assert_allclose(hot.probabilities, expected, atol=1e-5)
    soft = ModelSession.load(make_classifier(tmp_path / "p.onnx", softmax_output=True, temperature=2.0)).predict(rgb)
    np.testing.assert_allclose(soft.probabilities, expected, atol=1e-5)
    plain_soft = ModelSession.load(make_classifier(tmp_path / "p1.onnx", softmax_output=True)).predict(rgb)
    np.testing.assert_allclose(plain_soft.probabilities, session.predict(rgb).probabilities, atol=1e-5)


def test_plain_model_without_metadata_loads_with_assumed_spec(tmp_path):
    s = ModelSession.load(make_classifier(tmp_path / "plain.onnx", with_metadata=False, softmax_output=True,
                                          num_classes=4, size=48))
    assert s.spec.assumed and s.spec.num_classes == 4 and s.spec.labels[3] == "Class 3"
    assert s.spec.output.kind == "probabilities"
    assert (s.spec.input.height, s.spec.input.width) == (48, 48)
    assert any("assumed" in n for n in s.notes)
    pred = s.predict(_image(48, 48))
    assert any("assumed" in n for n in pred.notes)
    assert s.cam_method == GAP_CAM and pred.cam_method.startswith("gradient-free CAM")
    assert pred.heatmap().shape == (48, 48)


def test_gap_cam_equals_gradcam_for_gap_head(tmp_path, session):
    """For conv -> GAP -> linear, CAM and Grad-CAM agree up to scale, so normalised maps are equal."""
    cam_session = ModelSession.load(make_classifier(tmp_path / "nocam.onnx", with_gradcam=False))
    assert cam_session.cam_method == GAP_CAM
    rgb = _image(50, 60, 3)
    for c in range(3):
        np.testing.assert_allclose(cam_session.predict(rgb).heatmap(c), session.predict(rgb).heatmap(c), atol=1e-5)


def test_bad_arrays_raise_typed_errors(session):
    with pytest.raises(InferenceError, match="uint8"):
        session.predict(np.zeros((8, 8, 3), dtype=np.float32))
    with pytest.raises(InferenceError, match="shape"):
        session.predict(np.zeros((8, 8, 5), dtype=np.uint8))
    with pytest.raises(InferenceError):
        session.predict("not an array")  # type: ignore[arg-type]
    grey = session.predict(np.full((20, 20), 100, dtype=np.uint8))
    assert grey.probabilities.sum() == pytest.approx(1.0, abs=1e-5)


def _colour_counter_model(path, size: int = 8):
    """conv1x1 (red, blue detectors) -> relu -> flatten -> linear: no GAP head, so Score-CAM is the fallback."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from inference.contract import ClassLabel, InputSpec, ModelSpec, OutputSpec

    conv_w = np.zeros((2, 3, 1, 1), np.float32)
    conv_w[0, 0], conv_w[1, 2] = 1.0, 1.0  # ch0 = red, ch1 = blue
    fc = np.zeros((2, 2 * size * size), np.float32)
    fc[0, : size * size], fc[1, size * size:] = 1.0, 1.0  # class 0 counts red, class 1 counts blue
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "cw"], ["c"], kernel_shape=[1, 1]),
         helper.make_node("Relu", ["c"], ["a"]),
         helper.make_node("Flatten", ["a"], ["f"]),
         helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1)],
        "colour", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
        [numpy_helper.from_array(conv_w, "cw"), numpy_helper.from_array(fc, "fc")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    spec = ModelSpec(name="colour", classes=(ClassLabel("red", "Red"), ClassLabel("blue", "Blue")),
                     input=InputSpec(name="x", height=size, width=size), output=OutputSpec(name="y", temperature=0.1))
    helper.set_model_props(model, {"hemalens": spec.to_json()})
    onnx.save(model, str(path))
    return path


def test_score_cam_fallback_localises_the_evidence(tmp_path):
    from inference.cam import SCORE_CAM

    session = ModelSession.load(_colour_counter_model(tmp_path / "colour.onnx"))
    assert session.cam_method == SCORE_CAM and "Score-CAM" in SCORE_CAM and "gradient-free" in SCORE_CAM
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[:, :8] = (255, 0, 0)  # red left half
    rgb[:, 8:] = (0, 0, 255)  # blue right half
    pred = session.predict(rgb)
    assert pred.cam_method == SCORE_CAM
    red, blue = pred.heatmap(0), pred.heatmap(1)
    assert red.shape == (16, 16) and red.min() >= 0 and red.max() <= 1
    assert red[:, :6].mean() > 0.9 and red[:, 10:].max() < 0.05
    assert blue[:, 10:].mean() > 0.9 and blue[:, :6].max() < 0.05


def test_model_with_no_reachable_activations_has_no_heatmap(tmp_path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((3 * 4 * 4, 2), np.float32), "w")
    nodes = [helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("MatMul", ["f", "w"], ["y"])]
    graph = helper.make_graph(nodes, "linear", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "linear.onnx"))
    session = ModelSession.load(tmp_path / "linear.onnx")
    assert session.cam_method is None and session.spec.assumed
    preds = session.predict_batch([_image(4, 4), _image(9, 7)])  # fixed batch 1: run one by one
    assert all(p.heatmap() is None and p.cam_method is None for p in preds)
    assert preds[0].probabilities.shape == (2,)


def test_class_input_gradcam_matches_all_classes_variant(tmp_path, session):
    per_class = ModelSession.load(make_classifier(tmp_path / "ci.onnx", class_input=True))
    assert per_class.cam_method == GRAD_CAM
    rgb = _image(36, 28, 4)
    a, b = session.predict(rgb), per_class.predict(rgb)
    np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-6)
    for c in range(3):
        np.testing.assert_allclose(b.heatmap(c), a.heatmap(c), atol=1e-5)


@pytest.mark.parametrize("policy", ["letterbox", "center_crop"])
def test_heatmap_maps_back_through_resize_policy_like_numpy(tmp_path, policy):
    """Independent route: resize/pad or crop by hand, numpy forward pass, upsample, undo the geometry by hand."""
    session = ModelSession.load(make_classifier(tmp_path / f"{policy}.onnx", resize=policy, size=32))
    h, w = 48, 96  # 2:1 image into a square input
    rgb = _image(h, w, seed=11)
    if policy == "letterbox":
        resized = cv2.resize(rgb, (32, 16), interpolation=cv2.INTER_AREA)
        model_in = np.zeros((32, 32, 3), np.uint8)
        model_in[8:24] = resized
    else:
        resized = cv2.resize(rgb, (64, 32), interpolation=cv2.INTER_AREA)
        model_in = resized[:, 16:48]
    logits, acts = reference_forward(_numpy_tensor(model_in))
    pred = session.predict(rgb)
    expected = np.exp(logits[0] - logits[0].max())
    np.testing.assert_allclose(pred.probabilities, expected / expected.sum(), atol=1e-5)
    c = pred.top_index
    w_fc = classifier_weights()["fc_w"][c]
    cam = np.maximum(np.tensordot(w_fc, acts[0], axes=1), 0)
    cam = (cam / cam.max()).astype(np.float32)
    # Inverse geometry by hand: original pixel centre -> model input -> activation grid, bilinear, edges clamped.
    scale, off_x, off_y = (1 / 3, 0.0, 8.0) if policy == "letterbox" else (2 / 3, -16.0, 0.0)
    ys = ((np.arange(h) + 0.5) * scale + off_y) * 16 / 32 - 0.5
    xs = ((np.arange(w) + 0.5) * scale + off_x) * 16 / 32 - 0.5
    expected_map = _bilinear(cam, ys, xs)
    if policy == "center_crop":
        left, right = np.arange(w) * scale + off_x, (np.arange(w) + 1) * scale + off_x
        expected_map[:, (right <= 0) | (left >= 32)] = 0.0  # pixels wholly outside the crop
        assert (pred.heatmap()[:, :24] == 0).all() and (pred.heatmap()[:, 72:] == 0).all()
    np.testing.assert_allclose(pred.heatmap(), expected_map, atol=2e-3)


def _bilinear(grid: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    ys = np.clip(ys, 0, grid.shape[0] - 1)
    xs = np.clip(xs, 0, grid.shape[1] - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, grid.shape[0] - 1), np.minimum(x0 + 1, grid.shape[1] - 1)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = grid[y0][:, x0] * (1 - fx) + grid[y0][:, x1] * fx
    bottom = grid[y1][:, x0] * (1 - fx) + grid[y1][:, x1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def test_keras_style_nhwc_plain_model_gets_cam_from_reduce_mean_head(tmp_path):
    """tf2onnx-like graph: NHWC input, ReduceMean over H,W of an NHWC tensor, MatMul + Add, Softmax."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = classifier_weights()
    inits = [numpy_helper.from_array(w["conv_w"], "cw"), numpy_helper.from_array(w["conv_b"], "cb"),
             numpy_helper.from_array(np.ascontiguousarray(w["fc_w"].T), "dense_kernel"),
             numpy_helper.from_array(w["fc_b"], "dense_bias")]
    nodes = [helper.make_node("Transpose", ["image"], ["nchw"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["nchw", "cw", "cb"], ["conv"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                              strides=[2, 2]),
             helper.make_node("Relu", ["conv"], ["relu"]),
             helper.make_node("Transpose", ["relu"], ["relu_nhwc"], perm=[0, 2, 3, 1]),
             helper.make_node("ReduceMean", ["relu_nhwc"], ["pooled"], axes=[1, 2], keepdims=0),
             helper.make_node("MatMul", ["pooled", "dense_kernel"], ["mm"]),
             helper.make_node("Add", ["mm", "dense_bias"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probs"], axis=-1)]
    graph = helper.make_graph(nodes, "keras", [helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                                                              ["N", 32, 32, 3])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 3])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "keras.onnx"))
    plain = ModelSession.load(tmp_path / "keras.onnx")
    assert plain.spec.assumed and plain.spec.input.layout == "NHWC" and plain.spec.output.kind == "probabilities"
    assert plain.cam_method == GAP_CAM
    # Same weights as the factory model; only the preprocessing differs (assumed pixel/255 without mean/std),
    # so compare against the factory model fed the equivalent image tensor through numpy.
    rgb = _image(32, 32, 8)
    pred = plain.predict(rgb)
    x = (rgb.astype(np.float64) / 255.0).transpose(2, 0, 1)[None]
    logits, acts = reference_forward(x)
    p = np.exp(logits[0] - logits[0].max())
    np.testing.assert_allclose(pred.probabilities, p / p.sum(), atol=1e-5)
    for c in range(3):
        cam = np.maximum(np.tensordot(w["fc_w"][c], acts[0], axes=1), 0)
        cam = cam / cam.max() if cam.max() > 0 else cam
        np.testing.assert_allclose(pred._cam.low_res(c), cam, atol=1e-4)


def test_a_sigmoid_per_class_is_read_as_shares_of_its_sum_not_softmaxed_again(tmp_path):
    """Softmax over sigmoid outputs squeezed a 0.99 call against two 0.01 to 48 %; the shares keep it at 98 %."""
    import onnxruntime as ort
    from onnx import helper

    from inference.contract import SIGMOID_PER_CLASS

    plain = make_classifier(tmp_path / "plain.onnx", with_metadata=False, num_classes=3, size=32)
    model = onnx.load(str(plain))
    scores = model.graph.output[0].name
    for node in model.graph.node:
        node.output[:] = [f"{scores}_logits" if name == scores else name for name in node.output]
    model.graph.node.append(helper.make_node("Sigmoid", [f"{scores}_logits"], [scores]))
    onnx.save(model, str(tmp_path / "sigmoid.onnx"))
    session = ModelSession.load(tmp_path / "sigmoid.onnx")
    assert session.spec.output.kind == "probabilities" and SIGMOID_PER_CLASS in session.spec.notes
    rgb = _image(32, 32)
    x, _ = preprocess(rgb, session.spec.input)
    logits = ort.InferenceSession(str(plain)).run([scores], {session.spec.input.name: x})[0][0]
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    np.testing.assert_allclose(session.predict(rgb).probabilities, p / p.sum(), atol=1e-5)
