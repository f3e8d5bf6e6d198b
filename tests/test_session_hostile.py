"""Broken or hostile model files are refused with a clear ModelLoadError before any inference runs."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from inference.cam import GAP_CAM
from inference.errors import ModelLoadError
from inference.session import ModelSession
from tests.model_factory import build_classifier_model, make_classifier


def _save(model: onnx.ModelProto, path) -> str:
    path.write_bytes(model.SerializeToString())
    return str(path)


def _with_metadata(model: onnx.ModelProto, change) -> onnx.ModelProto:
    props = {p.key: p.value for p in model.metadata_props}
    doc = json.loads(props["hemalens"])
    change(doc)
    del model.metadata_props[:]
    helper.set_model_props(model, {"hemalens": json.dumps(doc)})
    return model


def test_not_onnx_empty_missing_and_truncated(tmp_path):
    text = tmp_path / "notes.onnx"
    text.write_text("hello, this is not a model")
    noise = tmp_path / "noise.onnx"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    good = make_classifier(tmp_path / "good.onnx")
    truncated = tmp_path / "truncated.onnx"
    data = good.read_bytes()
    truncated.write_bytes(data[: len(data) * 2 // 3])
    for path, pattern in [(text, "not an ONNX"), (noise, "not an ONNX"), (empty, "empty"),
                          (tmp_path / "missing.onnx", "does not exist"), (truncated, "truncated")]:
        with pytest.raises(ModelLoadError, match=pattern) as info:
            ModelSession.load(path)
        assert info.value.path.name == path.name


def test_wrong_input_rank_is_refused(tmp_path):
    w = numpy_helper.from_array(np.ones((3, 4), np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "flat",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    with pytest.raises(ModelLoadError, match="rank 2"):
        ModelSession.load(_save(model, tmp_path / "flat.onnx"))


def _externalise(model: onnx.ModelProto, location: str) -> onnx.ModelProto:
    tensor = next(t for t in model.graph.initializer if t.name == "fc_w")
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    del tensor.external_data[:]
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", location
    return model


@pytest.mark.parametrize("location, pattern", [("../secret.bin", "outside"), ("/etc/passwd", "outside"),
                                               ("sub/../../x.bin", "outside"), ("absent.bin", "missing")])
def test_external_data_outside_folder_or_missing_is_refused(tmp_path, location, pattern):
    folder = tmp_path / "models"
    folder.mkdir()
    (tmp_path / "secret.bin").write_bytes(bytes(96))
    path = _save(_externalise(build_classifier_model(), location), folder / "ext.onnx")
    with pytest.raises(ModelLoadError, match=pattern):
        ModelSession.load(path)


def test_external_data_inside_folder_is_fine(tmp_path):
    model = build_classifier_model(with_gradcam=False)
    reference = ModelSession.load(_save(build_classifier_model(with_gradcam=False), tmp_path / "inline.onnx"))
    folder = tmp_path / "ext"
    folder.mkdir()
    onnx.save_model(model, str(folder / "m.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="m.weights", size_threshold=0)
    session = ModelSession.load(folder / "m.onnx")
    rgb = np.random.default_rng(2).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    a, b = session.predict(rgb), reference.predict(rgb)
    np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-6)
    np.testing.assert_allclose(a.heatmap(), b.heatmap(), atol=1e-6)


@pytest.mark.parametrize(
    "change, pattern",
    [
        (lambda d: d["classes"].append({"id": "extra", "name": "Extra"}), "4 classes.*3 scores"),
        (lambda d: d.update(classes=d["classes"][:2]), "2 classes.*3 scores"),
        (lambda d: d["input"].update(name="image"), "input 'image'"),
        (lambda d: d["output"].update(name="scores"), "output 'scores'"),
        (lambda d: d["gradcam"].update(weights="cam_w_missing"), "Grad-CAM weights"),
        (lambda d: d["input"].update(height=64, width=64), "64x64"),
        (lambda d: d["input"].update(layout="NHWC"), "channels"),
        (lambda d: d.update(schema_version=7), "newer"),
        (lambda d: d["input"].update(std=[0, 1, 1]), "std"),
    ],
)
def test_metadata_disagreeing_with_graph_is_refused(tmp_path, change, pattern):
    path = _save(_with_metadata(build_classifier_model(), change), tmp_path / "bad_meta.onnx")
    with pytest.raises(ModelLoadError, match=pattern):
        ModelSession.load(path)


def test_dynamic_output_width_is_checked_by_test_run(tmp_path):
    model = build_classifier_model()
    model.graph.output[0].type.tensor_type.shape.dim[1].dim_param = "C"  # hide the class count
    model = _with_metadata(model, lambda d: d["classes"].append({"id": "x", "name": "X"}))
    with pytest.raises(ModelLoadError, match="4 classes but the model outputs 3"):
        ModelSession.load(_save(model, tmp_path / "dyn.onnx"))


def test_malformed_metadata_json_is_refused(tmp_path):
    model = build_classifier_model()
    del model.metadata_props[:]
    helper.set_model_props(model, {"hemalens": "{not json"})
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        ModelSession.load(_save(model, tmp_path / "j.onnx"))


def test_graph_that_fails_in_onnxruntime_is_refused(tmp_path):
    model = build_classifier_model()
    for node in model.graph.node:
        if node.op_type == "Conv":
            node.op_type = "NoSuchOperator"
    with pytest.raises(ModelLoadError, match="ONNX Runtime cannot load"):
        ModelSession.load(_save(model, tmp_path / "op.onnx"))


def test_unknown_provider_falls_back_to_cpu(tmp_path):
    session = ModelSession.load(make_classifier(tmp_path / "m.onnx"), providers=["NoSuchExecutionProvider"])
    assert session.providers == ["CPUExecutionProvider"]
    assert any("not available" in n for n in session.notes)


def test_plain_model_with_two_inputs_is_refused(tmp_path):
    model = build_classifier_model(with_metadata=False)
    model.graph.input.append(helper.make_tensor_value_info("extra", TensorProto.FLOAT, [1]))
    with pytest.raises(ModelLoadError, match="2 inputs"):
        ModelSession.load(_save(model, tmp_path / "two.onnx"))


@pytest.mark.parametrize("declared", [[1, 2, 32, 32], ["N", "C", "H", "W"]])
def test_a_segmentation_map_output_is_refused_not_read_as_thousands_of_classes(tmp_path, declared):
    """A model whose output is a map (N, 2, H, W) loaded as a 2,048-class classifier and called "Class 1581"."""
    w = numpy_helper.from_array(np.ones((2, 3, 1, 1), np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"])], "seg",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, declared)], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    with pytest.raises(ModelLoadError, match="2 x 32 x 32 map per image"):
        ModelSession.load(_save(model, tmp_path / "seg.onnx"))


@pytest.mark.parametrize("declared", [[1, 1], ["N", "K"]])
def test_one_score_per_image_is_refused_not_called_class_0_at_100_percent(tmp_path, declared):
    """A yes/no model with one sigmoid output loaded as a one-class classifier: every image "Class 0", 1.000."""
    w = numpy_helper.from_array(np.ones((3, 1), np.float32), "w")
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["g"]), helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("MatMul", ["f", "w"], ["m"]), helper.make_node("Sigmoid", ["m"], ["y"])]
    graph = helper.make_graph(nodes, "yes_no", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, declared)], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    with pytest.raises(ModelLoadError, match="one score per image"):
        ModelSession.load(_save(model, tmp_path / "yes_no.onnx"))
    one_class = _with_metadata(build_classifier_model(), lambda d: d.update(classes=d["classes"][:1]))
    with pytest.raises(ModelLoadError, match="one score per image"):
        ModelSession.load(_save(one_class, tmp_path / "one_class.onnx"))


def test_scores_shaped_n_c_1_1_are_accepted(tmp_path):
    model = build_classifier_model(with_gradcam=False)
    out = model.graph.output[0]
    out.name = "scores4d"
    model.graph.node.append(helper.make_node("Unsqueeze", ["logits", "axes23"], ["scores4d"]))
    model.graph.initializer.append(numpy_helper.from_array(np.array([2, 3], np.int64), "axes23"))
    del out.type.tensor_type.shape.dim[:]
    for d in ("N", 3, 1, 1):
        dim = out.type.tensor_type.shape.dim.add()
        if isinstance(d, str):
            dim.dim_param = d
        else:
            dim.dim_value = d
    model = _with_metadata(model, lambda d: d["output"].update(name="scores4d"))
    session = ModelSession.load(_save(model, tmp_path / "4d.onnx"))
    assert session.cam_method == GAP_CAM
    pred = session.predict(np.full((32, 32, 3), 90, np.uint8))
    assert pred.probabilities.shape == (3,) and pred.probabilities.sum() == pytest.approx(1.0, abs=1e-5)


def test_unfit_gradient_free_cam_degrades_to_no_heatmap(tmp_path):
    """A 1-D convolution (rank-3 activations) cannot give an image heatmap: the model still runs, without one."""
    inits = [numpy_helper.from_array(np.array([0, 3, -1], np.int64), "shape3"),
             numpy_helper.from_array(np.ones((4, 3, 3), np.float32) * 0.1, "k"),
             numpy_helper.from_array(np.array([2], np.int64), "ax2"),
             numpy_helper.from_array(np.ones((4, 2), np.float32), "fc")]
    nodes = [helper.make_node("Reshape", ["x", "shape3"], ["seq"]),
             helper.make_node("Conv", ["seq", "k"], ["c1"], kernel_shape=[3]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("ReduceMean", ["r1", "ax2"], ["m"], keepdims=0),
             helper.make_node("MatMul", ["m", "fc"], ["y"])]
    graph = helper.make_graph(nodes, "conv1d", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    session = ModelSession.load(_save(model, tmp_path / "conv1d.onnx"))
    assert session.cam_method is None and any("no heatmap" in n for n in session.notes)
    pred = session.predict(np.full((8, 8, 3), 200, np.uint8))
    assert pred.heatmap() is None and pred.probabilities.shape == (2,)
