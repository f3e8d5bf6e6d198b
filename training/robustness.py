"""Cross-lab robustness check from the data we have: transformed copies of the held-out test block.

Another lab differs in stain (colour balance, intensity), camera (resolution, JPEG, noise, white
balance), magnification (how many pixels a cell spans) and focus.
We cannot get their images here, so each test image is re-rendered with fixed, documented changes of
that kind and the shipped ONNX model is scored through the runtime (ModelSession), exactly as
`hemalens evaluate` would. It also counts the images the runtime flags as unlike the model's
training images (inference/familiarity.py): on a good copy the flag stays near its 0.5 % false-alarm
rate, on a copy the model fails the flag should be up. The transforms are deterministic (no random
draws), and none of them is the training augmentation's exact recipe: the OD matrices and the hue
angle are fixed values at or beyond the edge of what training sampled.

Run: `python -m training.robustness assets/models/<model>.onnx ../shared/data/<set> [--json out.json]`
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from inference.cli_evaluate import labelled_items
from inference.familiarity import UNFAMILIAR_NOTE
from inference.images import load_image
from inference.metrics import evaluate_predictions
from inference.session import ModelSession
from inference.splits import SPLITS

Transform = Callable[[np.ndarray], np.ndarray]


def _od_mix(rgb: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Re-stain: optical density OD = -ln(I/255) mixed by ``matrix`` (rows: output channel)."""
    od = -np.log(np.clip(rgb.astype(np.float32), 1.0, 255.0) / 255.0)
    mixed = od @ matrix.T
    return np.clip(255.0 * np.exp(-np.clip(mixed, 0, None)), 0, 255).astype(np.uint8)


def _hue_shift(rgb: np.ndarray, degrees: float) -> np.ndarray:
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    hsv[:, :, 0] = ((hsv[:, :, 0].astype(np.int32) + int(round(degrees / 2))) % 180).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def _saturation(rgb: np.ndarray, factor: float) -> np.ndarray:
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[:, :, 1] = np.clip(hsv[:, :, 1] * factor, 0, 255)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)


def _exposure(rgb: np.ndarray, gain: float, gamma: float) -> np.ndarray:
    x = np.clip(rgb.astype(np.float32) / 255.0 * gain, 0, 1) ** gamma
    return (x * 255 + 0.5).astype(np.uint8)


def _blur(rgb: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(rgb, (0, 0), sigmaX=sigma)


def _low_res_jpeg(rgb: np.ndarray, factor: float, quality: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    small = cv2.resize(rgb, (max(8, int(w * factor)), max(8, int(h * factor))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", small[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    small = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _zoom(rgb: np.ndarray, factor: float) -> np.ndarray:
    """Same field at another magnification: < 1 shrinks the cell (mirrored smear fills the border),
    > 1 enlarges it and crops the centre."""
    h, w = rgb.shape[:2]
    nw, nh = max(8, round(w * factor)), max(8, round(h * factor))
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    scaled = cv2.resize(rgb, (nw, nh), interpolation=interp)
    if factor < 1:
        top, left = (h - nh) // 2, (w - nw) // 2
        return cv2.copyMakeBorder(scaled, top, h - nh - top, left, w - nw - left, cv2.BORDER_REFLECT_101)
    top, left = (nh - h) // 2, (nw - w) // 2
    return scaled[top:top + h, left:left + w]


def _wider_frame(rgb: np.ndarray, aspect: float) -> np.ndarray:
    """A camera with a wider frame at the same magnification: mirrored smear widens the image to ``aspect``."""
    h, w = rgb.shape[:2]
    extra = max(0, round(h * aspect) - w)
    return cv2.copyMakeBorder(rgb, 0, 0, extra // 2, extra - extra // 2, cv2.BORDER_REFLECT_101)


def _white_balance(rgb: np.ndarray, gains: tuple[float, float, float]) -> np.ndarray:
    return np.clip(rgb.astype(np.float32) * np.asarray(gains, np.float32), 0, 255).astype(np.uint8)


# Stain changes in optical density: more eosin-like red/pink, and a paler, bluer haematoxylin.
PINKER = np.array([[0.80, 0.10, 0.0], [0.15, 1.25, 0.05], [0.0, 0.10, 0.95]], dtype=np.float32)
BLUER_PALE = np.array([[1.20, 0.10, 0.0], [0.05, 0.80, 0.05], [0.0, 0.0, 0.70]], dtype=np.float32)

TRANSFORMS: dict[str, Transform] = {
    "original": lambda x: x,
    "stain: pinker (OD mix)": lambda x: _od_mix(x, PINKER),
    "stain: bluer, paler (OD mix)": lambda x: _od_mix(x, BLUER_PALE),
    "hue +20 deg": lambda x: _hue_shift(x, 20),
    "hue -20 deg": lambda x: _hue_shift(x, -20),
    "saturation x0.6": lambda x: _saturation(x, 0.6),
    "darker, more contrast (gain 0.8, gamma 1.3)": lambda x: _exposure(x, 0.8, 1.3),
    "defocus blur sigma 1.5 px": lambda x: _blur(x, 1.5),
    "camera: 0.5x resolution + JPEG q50": lambda x: _low_res_jpeg(x, 0.5, 50),
    "camera: warm white balance (R x1.15, B x0.85)": lambda x: _white_balance(x, (1.15, 1.0, 0.85)),
    "camera: 16:9 frame (wider field, same cell size)": lambda x: _wider_frame(x, 16 / 9),
    "magnification: cell 0.6x as large": lambda x: _zoom(x, 0.6),
    "magnification: cell 1.6x as large": lambda x: _zoom(x, 1.6),
    "combined: pinker + blur 1.0 + 0.6x JPEG q70": lambda x: _low_res_jpeg(_blur(_od_mix(x, PINKER), 1.0), 0.6, 70),
}


def robustness(model_path: Path, data: Path, split: str = "test") -> dict[str, dict[str, float]]:
    """{transform: {accuracy, balanced_accuracy, ece}} on one block split (the test block by default)."""
    session = ModelSession.load(model_path, threads=2)
    items = [(load_image(p).rgb, y) for p, y in labelled_items(data, split, session.spec)]
    labels = np.array([y for _, y in items])
    out: dict[str, dict[str, float]] = {}
    for name, fn in TRANSFORMS.items():
        probs, flagged = [], 0
        for i in range(0, len(items), 64):
            batch = [fn(rgb) for rgb, _ in items[i:i + 64]]
            for p in session.predict_batch(batch):
                probs.append(p.probabilities)
                flagged += UNFAMILIAR_NOTE in p.notes
        ev = evaluate_predictions(np.stack(probs), labels, session.spec.labels)
        out[name] = {"accuracy": round(ev.accuracy, 4), "balanced_accuracy": round(ev.balanced_accuracy, 4),
                     "ece": round(ev.ece, 4), "flagged_unlike_training": round(flagged / len(items), 6)}
        print(f"{name:<48} acc {ev.accuracy:.4f}  bal {ev.balanced_accuracy:.4f}  ece {ev.ece:.4f}  "
              f"flagged {flagged / len(items):.3f}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.robustness", description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("--split", default="test", choices=SPLITS)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    result = robustness(args.model, args.data, args.split)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
