"""Preprocessing invariants (hypothesis) and mapping heatmaps back through each resize policy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inference.contract import InputSpec
from inference.preprocess import map_to_image, plan_resize, preprocess, preprocess_batch, resize_for_model

POLICIES = ("stretch", "letterbox", "center_crop")
sizes = st.integers(min_value=1, max_value=160)


def _spec(policy: str, h: int = 32, w: int = 24, **kw) -> InputSpec:
    return InputSpec(name="x", height=h, width=w, resize=policy, mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3), **kw)


@settings(max_examples=40, deadline=None)
@given(h=sizes, w=sizes, dh=st.integers(1, 64), dw=st.integers(1, 64), policy=st.sampled_from(POLICIES),
       layout=st.sampled_from(["NCHW", "NHWC"]), seed=st.integers(0, 2**16))
def test_tensor_shape_dtype_and_range(h, w, dh, dw, policy, layout, seed):
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    spec = _spec(policy, dh, dw, layout=layout)
    tensor, geom = preprocess(rgb, spec)
    assert tensor.dtype == np.float32 and tensor.flags.c_contiguous
    assert tensor.shape == ((1, 3, dh, dw) if layout == "NCHW" else (1, dh, dw, 3))
    lo = (0 - np.array(spec.mean)) / np.array(spec.std)
    hi = (255 * spec.scale - np.array(spec.mean)) / np.array(spec.std)
    chans = tensor[0] if layout == "NCHW" else np.moveaxis(tensor[0], 2, 0)
    for c in range(3):
        assert lo[c] - 1e-5 <= chans[c].min() and chans[c].max() <= hi[c] + 1e-5
    assert (geom.src_width, geom.src_height, geom.dst_width, geom.dst_height) == (w, h, dw, dh)


@settings(max_examples=40, deadline=None)
@given(h=sizes, w=sizes, dh=st.integers(2, 64), dw=st.integers(2, 64), policy=st.sampled_from(POLICIES),
       colour=st.tuples(*[st.integers(0, 255)] * 3))
def test_constant_image_gives_constant_tensor_where_the_image_is(h, w, dh, dw, policy, colour):
    rgb = np.empty((h, w, 3), np.uint8)
    rgb[:] = colour
    spec = _spec(policy, dh, dw)
    tensor, geom = preprocess(rgb, spec)
    expected = (np.array(colour) * spec.scale - np.array(spec.mean)) / np.array(spec.std)
    if policy == "letterbox":
        ox, oy = int(geom.offset_x), int(geom.offset_y)
        inside = tensor[0][:, oy:oy + geom.resized_height, ox:ox + geom.resized_width]
        s = min(dw / w, dh / h)  # aspect ratio kept up to rounding, and the image fits
        assert geom.resized_width <= dw and geom.resized_height <= dh
        assert geom.resized_width == 1 or abs(geom.resized_width - w * s) <= 0.5 + 1e-9
        assert geom.resized_height == 1 or abs(geom.resized_height - h * s) <= 0.5 + 1e-9
    else:
        inside = tensor[0]
    np.testing.assert_allclose(inside, np.broadcast_to(expected[:, None, None], inside.shape), atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(h=sizes, w=sizes, policy=st.sampled_from(POLICIES), ch=st.integers(1, 20), cw=st.integers(1, 20))
def test_constant_heatmap_maps_back_to_constant(h, w, policy, ch, cw):
    geom = plan_resize(h, w, 32, 24, policy)
    out = map_to_image(np.full((ch, cw), 0.7, np.float32), geom)
    assert out.shape == (h, w) and out.dtype == np.float32
    if policy == "center_crop":
        assert np.isclose(out[h // 2, w // 2], 0.7)
        assert (np.isclose(out, 0.7) | (out == 0.0)).all()
    else:
        np.testing.assert_allclose(out, 0.7, atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(h=sizes, w=sizes, policy=st.sampled_from(POLICIES), dh=st.integers(8, 40), dw=st.integers(8, 40))
def test_unseen_edges_name_exactly_the_blank_parts_of_the_heatmap(h, w, policy, dh, dw):
    geom = plan_resize(h, w, dh, dw, policy)
    out = map_to_image(np.ones((4, 4), np.float32), geom)
    blank_cols, blank_rows = (out == 0).all(axis=0), (out == 0).all(axis=1)
    words = geom.unseen_edges()
    if blank_cols[[0, -1]].any():
        assert words == f"left and right {int(blank_cols.sum())} of {w} px"
    elif blank_rows[[0, -1]].any():
        assert words == f"top and bottom {int(blank_rows.sum())} of {h} px"
    else:
        assert words == ""


def test_unseen_edges_of_a_wide_and_a_tall_field():
    assert plan_resize(224, 398, 128, 128, "center_crop").unseen_edges() == "left and right 172 of 398 px"
    assert plan_resize(400, 300, 128, 128, "center_crop").unseen_edges() == "top and bottom 100 of 400 px"
    assert plan_resize(226, 224, 160, 160, "center_crop").unseen_edges() == "top and bottom 1 of 226 px"
    assert plan_resize(224, 224, 128, 128, "center_crop").unseen_edges() == ""
    assert plan_resize(224, 398, 128, 128, "stretch").unseen_edges() == ""


def test_batch_of_mixed_sizes_matches_single():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, s + (3,), dtype=np.uint8) for s in [(10, 10), (50, 20), (33, 71)]]
    spec = _spec("letterbox")
    batch, _ = preprocess_batch(images, spec)
    for i, rgb in enumerate(images):
        np.testing.assert_array_equal(batch[i], preprocess(rgb, spec)[0][0])


def test_bgr_order_swaps_channels():
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0] = 255
    spec = InputSpec(name="x", height=4, width=4, color_order="BGR")
    tensor, _ = preprocess(rgb, spec)
    assert tensor[0, 2].min() == pytest.approx(1.0) and tensor[0, 0].max() == 0.0


@pytest.mark.parametrize("policy", POLICIES)
def test_heatmap_follows_image_content_through_resize_policy(policy):
    """A map computed from the model's view of the image maps back onto the same place in the original."""
    h, w = 90, 160
    ramp = np.tile(np.linspace(0, 255, w), (h, 1))
    rgb = np.repeat(ramp[:, :, None], 3, axis=2).astype(np.uint8)
    spec = InputSpec(name="x", height=48, width=48, resize=policy)
    resized, geom = resize_for_model(rgb, spec)
    model_view = resized[:, :, 0].astype(np.float32) / 255.0  # a "heatmap" equal to what the model saw
    back = map_to_image(model_view, geom)
    truth = ramp.astype(np.float32) / 255.0
    if policy == "center_crop":
        xs = (np.arange(w) + 0.5) * geom.scale_x + geom.offset_x
        visible = (xs > 1) & (xs < 47)
        assert np.abs(back[5:-5, visible] - truth[5:-5, visible]).max() < 0.05
        unseen = (np.arange(w) + 1) * geom.scale_x + geom.offset_x <= 0  # wholly left of the crop window
        assert unseen.sum() > 10 and (back[:, unseen] == 0).all()
    else:
        assert np.abs(back[2:-2, 2:-2] - truth[2:-2, 2:-2]).max() < 0.05


_SESSIONS: dict[str, object] = {}


def _session(policy: str, tmp_dir) -> object:
    from inference.session import ModelSession
    from tests.model_factory import make_classifier

    if policy not in _SESSIONS:
        _SESSIONS[policy] = ModelSession.load(make_classifier(tmp_dir / f"{policy}.onnx", resize=policy, size=24))
    return _SESSIONS[policy]


@settings(max_examples=30, deadline=None)
@given(h=st.integers(1, 120), w=st.integers(1, 120), policy=st.sampled_from(POLICIES), seed=st.integers(0, 999))
def test_predictions_are_well_formed_for_any_image_size(tmp_path_factory, h, w, policy, seed):
    session = _session(policy, tmp_path_factory.getbasetemp())
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    pred = session.predict(rgb)
    assert pred.probabilities.shape == (3,) and np.isfinite(pred.probabilities).all()
    assert abs(float(pred.probabilities.sum()) - 1.0) < 1e-5 and pred.probabilities.min() >= 0
    assert pred.top_index == int(np.argmax(pred.probabilities))
    for c in range(3):
        heat = pred.heatmap(c)
        assert heat.shape == (h, w) and heat.dtype == np.float32
        assert heat.min() >= 0.0 and heat.max() <= 1.0
