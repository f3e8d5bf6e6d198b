"""Keras round trips (.h5, .keras, SavedModel): export, load with the runtime, compare with tf.GradientTape."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from export.cli import main  # noqa: E402
from export.errors import ExportError  # noqa: E402
from export.keras import export_keras  # noqa: E402
from inference.cam import weighted_cam  # noqa: E402
from inference.preprocess import map_to_image, preprocess  # noqa: E402
from inference.session import ModelSession  # noqa: E402

SIZE = 32


@pytest.fixture(scope="module")
def keras_models(tmp_path_factory):
    """One TensorFlow import for the module: a VGG-style .h5 and a GAP .keras model plus a SavedModel."""
    import keras

    folder = tmp_path_factory.mktemp("keras")
    keras.utils.set_random_seed(0)
    vgg = keras.Sequential([
        keras.Input((SIZE, SIZE, 3)),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
        keras.layers.BatchNormalization(),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(12, 3, padding="same", activation="relu", name="last_conv"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(3, activation="softmax"),
    ])
    inp = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inp)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(16, 3, padding="same")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Activation("swish", name="act")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(4)(x)
    gap = keras.Model(inp, keras.layers.Softmax()(x))
    for model in (vgg, gap):  # non-trivial BatchNorm statistics
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                k = layer.moving_mean.shape[0]
                layer.moving_mean.assign(np.linspace(-0.2, 0.2, k).astype("float32"))
                layer.moving_variance.assign(np.linspace(0.5, 1.5, k).astype("float32"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vgg.save(folder / "vgg.h5")
        gap.save(folder / "gap.keras")
        gap.export(str(folder / "gap_savedmodel"), format="tf_saved_model", verbose=False)
    return {"folder": folder, "vgg": vgg, "gap": gap}


def _tape_gradcam(model, x: np.ndarray, layer_name: str):
    """Textbook Keras Grad-CAM (GradientTape on the logits: the softmax input), run layer by layer."""
    import keras
    import tensorflow as tf

    h = tf.constant(x)
    with tf.GradientTape(persistent=True) as tape:
        acts = None
        layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
        for layer in layers:
            if layer is layers[-1] and getattr(layer, "activation", None) is keras.activations.softmax:
                h = tf.matmul(h, layer.kernel) + layer.bias  # the Dense layer without its softmax
            elif isinstance(layer, keras.layers.Softmax):
                continue
            else:
                h = layer(h, training=False)
            if layer.name == layer_name:
                acts = h
        picks = [h[:, c] for c in range(h.shape[1])]
    assert not np.allclose(np.asarray(h).sum(axis=1), 1.0, atol=1e-3), "the score must be the logits"
    weights = np.stack([np.asarray(tf.reduce_mean(tape.gradient(p, acts), axis=(1, 2))) for p in picks], axis=1)
    return np.asarray(acts).transpose(0, 3, 1, 2), weights


def _check_session(path, model, layer_name: str, labels: list[str]) -> None:
    session = ModelSession.load(path)
    assert session.cam_method == "grad-cam"
    assert session.spec.labels == labels and session.spec.input.layout == "NHWC"
    for seed in (21, 22):
        rgb = np.random.default_rng(seed).integers(0, 256, (37, 52, 3), dtype=np.uint8)
        pred = session.predict(rgb)
        x, geom = preprocess(rgb, session.spec.input)
        probs = np.asarray(model(x, training=False))[0]
        np.testing.assert_allclose(pred.probabilities, probs, atol=1e-5)
        acts, weights = _tape_gradcam(model, x, layer_name)
        for c in range(len(labels)):
            expected = map_to_image(weighted_cam(acts[0], weights[0, c]), geom)
            got = pred.heatmap(c)
            if expected.std() > 1e-6:
                assert np.corrcoef(got.ravel(), expected.ravel())[0, 1] > 0.999
            else:
                np.testing.assert_allclose(got, expected, atol=1e-5)


def test_h5_vgg_style_round_trip(keras_models, tmp_path):
    labels = ["Lymphocyte", "Neutrophil", "Eosinophil"]
    report = export_keras(keras_models["folder"] / "vgg.h5", tmp_path / "vgg.onnx", labels=labels, scale=1 / 255,
                          mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), name="VGG h5", version="2.0",
                          sample_images=[np.full((40, 30, 3), 128, np.uint8)], log=None)
    assert report.spec.gradcam.target_layer == "last_conv"  # found by itself, before the trailing pool
    assert report.figures["max_abs_score_diff"] <= 1e-4 and report.figures["cam_correlation"] >= 0.99
    assert report.spec.output.kind == "probabilities"
    assert report.spec.provenance.verification["reference"].startswith("tf.GradientTape")
    _check_session(report.path, keras_models["vgg"], "last_conv", labels)


def test_keras_gap_model_with_its_own_rescaling(keras_models, tmp_path):
    labels = ["a", "b", "c", "d"]
    report = export_keras(keras_models["folder"] / "gap.keras", tmp_path / "gap.onnx", labels=labels, name="GAP",
                          target_layer="act", log=None)
    assert report.spec.input.scale == 1.0  # the model's Rescaling layer takes raw pixels
    assert report.spec.gradcam.target_layer == "act"
    _check_session(report.path, keras_models["gap"], "act", labels)


def test_savedmodel_is_checked_by_finite_differences(keras_models, tmp_path):
    report = export_keras(keras_models["folder"] / "gap_savedmodel", tmp_path / "sm.onnx", labels=list("abcd"),
                          name="SM", scale=1.0, log=None)
    assert report.figures["fd_max_rel_error"] < 1e-2
    assert report.figures["max_abs_score_diff"] <= 1e-4
    session = ModelSession.load(report.path)
    assert session.cam_method == "grad-cam"


def test_keras_refusals(keras_models, tmp_path):
    with pytest.raises(ExportError, match="does not carry its own preprocessing"):
        export_keras(keras_models["folder"] / "vgg.h5", tmp_path / "x.onnx", labels=list("abc"), name="x", log=None)
    with pytest.raises(ExportError, match="disagrees"):
        export_keras(keras_models["vgg"], tmp_path / "x.onnx", labels=list("abc"), name="x", scale=1.0,
                     input_size=64, log=None)
    with pytest.raises(ExportError, match="neither a layer"):
        export_keras(keras_models["vgg"], tmp_path / "x.onnx", labels=list("abc"), name="x", scale=1.0,
                     target_layer="nope", log=None)
    (tmp_path / "model.pb").write_bytes(b"not a model")
    with pytest.raises(ExportError, match="expected a .keras or .h5"):
        export_keras(tmp_path / "model.pb", tmp_path / "x.onnx", labels=list("abc"), name="x", log=None)
    assert not (tmp_path / "x.onnx").exists()


def test_h5_export_with_one_command(keras_models, tmp_path, capsys):
    out = tmp_path / "cli.onnx"
    code = main(["keras", str(keras_models["folder"] / "vgg.h5"), str(out), "--labels", "Blast,Lymphocyte,Other",
                 "--scale", "1/255", "--mean", "0.5", "--std", "0.25", "--name", "Keras CLI", "--version", "3"])
    assert code == 0, capsys.readouterr().err
    assert "heatmap correlation" in capsys.readouterr().out
    session = ModelSession.load(out)
    assert session.spec.labels == ["Blast", "Lymphocyte", "Other"] and session.spec.version == "3"
    assert session.spec.provenance.verification["cam_correlation"] >= 0.99
    assert session.spec.provenance.source_framework.startswith("keras")


def test_a_sigmoid_per_class_dense_exports_as_probabilities(tmp_path):
    import keras

    keras.utils.set_random_seed(1)
    model = keras.Sequential([
        keras.Input((SIZE, SIZE, 3)),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(3, activation="sigmoid"),
    ])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = export_keras(model, tmp_path / "s.onnx", labels=["a", "b", "c"], scale=1 / 255, name="s", log=None)
    assert report.spec.output.kind == "probabilities" and report.figures["cam_correlation"] >= 0.99
    session = ModelSession.load(report.path)
    rgb = np.random.default_rng(3).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    x, _ = preprocess(rgb, session.spec.input)
    p = np.asarray(model(x, training=False))[0].astype(np.float64)
    np.testing.assert_allclose(session.predict(rgb).probabilities, p / p.sum(), atol=1e-5)
