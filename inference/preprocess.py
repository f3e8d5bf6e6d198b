"""Image -> model tensor exactly as the model's InputSpec says, and heatmap -> image back again.

The resize policy is recorded as a ResizeGeometry (an axis-aligned affine map from original-image pixel
coordinates to model-input coordinates), so a heatmap computed at the model's resolution can be mapped
back onto the original image through the inverse of letterbox / centre-crop / stretch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from inference.contract import InputSpec


@dataclass(frozen=True)
class ResizeGeometry:
    """Model-input coordinate ``u = x * scale_x + offset_x`` (continuous pixel coordinates, same for y).

    ``src_*`` is the original image size, ``dst_*`` the model input size, ``resized_*`` the size the
    image is scaled to before padding (letterbox) or cropping (centre crop).
    """

    policy: str
    src_width: int
    src_height: int
    dst_width: int
    dst_height: int
    resized_width: int
    resized_height: int
    scale_x: float
    scale_y: float
    offset_x: float
    offset_y: float

    def unseen_rows_and_columns(self) -> tuple[np.ndarray, np.ndarray]:
        """Boolean masks of the original rows and columns lying wholly outside the model input (only a
        centre crop of a non-square image has any); ``map_to_image`` blanks them in the heatmap."""
        if self.policy != "center_crop":
            return np.zeros(self.src_height, bool), np.zeros(self.src_width, bool)
        x_lo = np.arange(self.src_width) * self.scale_x + self.offset_x
        y_lo = np.arange(self.src_height) * self.scale_y + self.offset_y
        return ((y_lo + self.scale_y <= 0) | (y_lo >= self.dst_height),
                (x_lo + self.scale_x <= 0) | (x_lo >= self.dst_width))

    def unseen_edges(self) -> str:
        """Which edges of the image the model never saw and how much of it, in words for the heatmap
        caption ("left and right 172 of 398 px", or ""): a camera frame 2 px off square loses a row or
        two, which a technician can tell apart from a wide field losing its sides."""
        rows, columns = self.unseen_rows_and_columns()
        if columns.any():
            return f"left and right {int(columns.sum())} of {self.src_width} px"
        if rows.any():
            return f"top and bottom {int(rows.sum())} of {self.src_height} px"
        return ""


def plan_resize(src_height: int, src_width: int, dst_height: int, dst_width: int, policy: str) -> ResizeGeometry:
    """Work out how an image of the given size is fitted to the model input under ``policy``."""
    if src_height < 1 or src_width < 1:
        raise ValueError(f"image size {src_width}x{src_height} has no pixels")
    if policy == "stretch":
        rw, rh, ox, oy = dst_width, dst_height, 0, 0
    elif policy == "letterbox":
        s = min(dst_width / src_width, dst_height / src_height)
        rw = min(dst_width, max(1, round(src_width * s)))
        rh = min(dst_height, max(1, round(src_height * s)))
        ox, oy = (dst_width - rw) // 2, (dst_height - rh) // 2
    elif policy == "center_crop":
        s = max(dst_width / src_width, dst_height / src_height)
        rw = max(dst_width, round(src_width * s))
        rh = max(dst_height, round(src_height * s))
        ox, oy = -((rw - dst_width) // 2), -((rh - dst_height) // 2)
    else:
        raise ValueError(f"unknown resize policy {policy!r}")
    return ResizeGeometry(policy, src_width, src_height, dst_width, dst_height, rw, rh,
                          rw / src_width, rh / src_height, float(ox), float(oy))


def _resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    if rgb.shape[1] == width and rgb.shape[0] == height:
        return rgb
    shrinking = width <= rgb.shape[1] and height <= rgb.shape[0]
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def resize_for_model(rgb: np.ndarray, spec: InputSpec) -> tuple[np.ndarray, ResizeGeometry]:
    """Resize an (H, W, 3) uint8 image to the model's input size under its resize policy."""
    geom = plan_resize(rgb.shape[0], rgb.shape[1], spec.height, spec.width, spec.resize)
    resized = _resize(rgb, geom.resized_width, geom.resized_height)
    if geom.policy == "letterbox":
        canvas = np.zeros((spec.height, spec.width, 3), dtype=np.uint8)
        ox, oy = int(geom.offset_x), int(geom.offset_y)
        canvas[oy:oy + geom.resized_height, ox:ox + geom.resized_width] = resized
        resized = canvas
    elif geom.policy == "center_crop":
        ox, oy = int(-geom.offset_x), int(-geom.offset_y)
        resized = resized[oy:oy + spec.height, ox:ox + spec.width]
    return resized, geom


def normalisation(spec: InputSpec) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (multiplier, addend) so that ``value = pixel * mul + add`` equals (pixel*scale - mean)/std."""
    std = np.asarray(spec.std, dtype=np.float64)
    mul = (spec.scale / std).astype(np.float32)
    add = (-np.asarray(spec.mean, dtype=np.float64) / std).astype(np.float32)
    return mul, add


def write_tensor(resized: np.ndarray, spec: InputSpec, out: np.ndarray, mul: np.ndarray, add: np.ndarray) -> None:
    """Normalise an (H, W, 3) RGB uint8 image into ``out`` ((3,H,W) for NCHW, (H,W,3) for NHWC), float32.

    ``mean``/``std`` are in the tensor's channel order (``color_order``).
    """
    if spec.layout == "NCHW":
        # Split into contiguous planes, then one fused scale+offset per plane straight into the tensor:
        # about twice as fast as strided numpy on a 224x224 image.
        planes = cv2.split(np.ascontiguousarray(resized))
        if spec.color_order == "BGR":
            planes = planes[::-1]
        for c in range(3):
            target = out[c]
            result = cv2.addWeighted(planes[c], float(mul[c]), planes[c], 0.0, float(add[c]), dst=target,
                                     dtype=cv2.CV_32F)
            if not np.shares_memory(result, target):  # OpenCV reallocated: copy back
                target[...] = result
    else:
        src = resized[:, :, ::-1] if spec.color_order == "BGR" else resized
        np.multiply(src, mul, out=out, casting="unsafe")
        out += add


def preprocess_batch(images: list[np.ndarray], spec: InputSpec) -> tuple[np.ndarray, list[ResizeGeometry]]:
    """Stack images into one float32 batch tensor in the model's layout; returns it with each geometry."""
    shape = (3, spec.height, spec.width) if spec.layout == "NCHW" else (spec.height, spec.width, 3)
    batch = np.empty((len(images), *shape), dtype=np.float32)
    mul, add = normalisation(spec)
    geoms = []
    for i, rgb in enumerate(images):
        resized, geom = resize_for_model(rgb, spec)
        write_tensor(resized, spec, batch[i], mul, add)
        geoms.append(geom)
    return batch, geoms


def preprocess(rgb: np.ndarray, spec: InputSpec) -> tuple[np.ndarray, ResizeGeometry]:
    """One image -> (1, ...) float32 tensor and its geometry."""
    batch, geoms = preprocess_batch([rgb], spec)
    return batch, geoms[0]


def downscaled(geom: ResizeGeometry, max_side: int) -> ResizeGeometry:
    """The same mapping for a copy of the original image shrunk so that its longer side is at most
    ``max_side`` (unchanged when it already fits): a heatmap drawn over a 9000 px scan on screen needs no
    81 million values, and computing and colouring them took half a minute."""
    factor = max_side / max(geom.src_width, geom.src_height)
    if factor >= 1.0:
        return geom
    width, height = max(1, round(geom.src_width * factor)), max(1, round(geom.src_height * factor))
    return replace(
        geom,
        src_width=width,
        src_height=height,
        scale_x=geom.scale_x * geom.src_width / width,  # one new pixel spans this many original ones
        scale_y=geom.scale_y * geom.src_height / height,
    )


def map_to_image(cam: np.ndarray, geom: ResizeGeometry) -> np.ndarray:
    """Map a (h, w) map over the model input back onto the original image: (src_height, src_width) float32.

    The map covers the whole model input; original pixel centre x lands at model-input coordinate
    ``(x + 0.5) * scale_x + offset_x`` and at map coordinate that times ``w / dst_width``. One affine
    warp with bilinear sampling does stretch, letterbox and centre crop alike. For centre crop, parts of
    the image the model never saw are set to 0.
    """
    cam = np.ascontiguousarray(cam, dtype=np.float32)
    h, w = cam.shape
    if geom.policy == "stretch":
        # The same half-pixel-centre bilinear map as the warp below (to ~1e-6), about 15x faster:
        # a 224 px heatmap in 0.02 ms instead of 0.3 ms (found by bench/).
        return cv2.resize(cam, (geom.src_width, geom.src_height), interpolation=cv2.INTER_LINEAR)
    ax = geom.scale_x * w / geom.dst_width
    ay = geom.scale_y * h / geom.dst_height
    bx = geom.offset_x * w / geom.dst_width
    by = geom.offset_y * h / geom.dst_height
    matrix = np.array([[ax, 0.0, 0.5 * ax + bx - 0.5], [0.0, ay, 0.5 * ay + by - 0.5]], dtype=np.float64)
    out = cv2.warpAffine(cam, matrix, (geom.src_width, geom.src_height),
                         flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    rows, columns = geom.unseen_rows_and_columns()  # original pixels the model never saw
    out[rows, :] = 0.0
    out[:, columns] = 0.0
    return out
