"""Does a model read the scale bar? `python -m training.scale_bar_probe MODEL.onnx ../shared/data/all4`.

The ALL fields carry a scale bar in the bottom-right corner whose style follows the imaging session,
and sessions follow the class, so a network can learn the label from the bar instead of the cells.
The probe gives every test-block field the corner of a random train-block field of one class, for
each class in turn, and counts the calls that change and where they go. A model that looks at the
cells changes almost none; another lab's images will have another bar, or none. The bar's style also
marks the imaging source, so the probe lists the model's test errors per class and bar style.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from inference.cli_evaluate import labelled_items
from inference.images import load_image
from inference.session import ModelSession
from training.augment import scale_bar_box

Predict = Callable[[list[np.ndarray]], np.ndarray]  # RGB images -> (n, classes) probabilities


def with_corner_of(rgb: np.ndarray, donor: np.ndarray) -> np.ndarray:
    """``rgb`` with its scale-bar corner (training.augment.SCALE_BAR_BOX) taken from ``donor`` at rgb's size."""
    h, w = rgb.shape[:2]
    if donor.shape[:2] != (h, w):
        donor = cv2.resize(donor, (w, h), interpolation=cv2.INTER_AREA)
    bh, bw = scale_bar_box(h, w)
    out = rgb.copy()
    out[h - bh:, w - bw:] = donor[h - bh:, w - bw:]
    return out


def corner_sensitivity(predict: Predict, test: Sequence[tuple[np.ndarray, int]], base: np.ndarray,
                       donors: Sequence[tuple[np.ndarray, int]], labels: Sequence[str],
                       seed: int = 0) -> dict[str, object]:
    """Per donor class: accuracy and the share of calls changed when every test image gets that class's corner.

    ``base``: the model's calls on the test images as they are."""
    rng = np.random.default_rng(seed)
    truth = np.array([y for _, y in test])
    out: dict[str, object] = {"accuracy": round(float((base == truth).mean()), 4), "by_donor_class": {}}
    changed_shares = []
    for c, label in enumerate(labels):
        pool = [x for x, y in donors if y == c]
        if not pool:
            continue
        swapped = [with_corner_of(x, pool[int(rng.integers(len(pool)))]) for x, _ in test]
        calls = predict(swapped).argmax(1)
        changed = float((calls != base).mean())
        changed_shares.append(changed)
        out["by_donor_class"][label] = {  # type: ignore[index]
            "accuracy": round(float((calls == truth).mean()), 4),
            "calls_changed": round(changed, 4),
            "calls_moved_to_donor_class": int(((calls == c) & (base != c)).sum()),
            "calls_moved_away_from_it": int(((calls != c) & (base == c)).sum()),
        }
    out["mean_calls_changed"] = round(float(np.mean(changed_shares)), 4) if changed_shares else 0.0
    return out


def bar_style(rgb: np.ndarray) -> str:
    """Which of the ALL set's scale-bar styles a 224x224 field carries: "large box" (a white box with black
    "200 px" text and bar, on pale fields from one imaging source), "red text", or "other" (small black box
    or none). Fixed pixel windows, so only for fields at the data set's own size."""
    if rgb.shape[:2] != (224, 224):
        return "other"
    box = rgb[196:222, 170:222].astype(int)
    if (box.min(2) > 225).mean() > 0.45 and (box.max(2) < 90).mean() > 0.04:
        return "large box"
    corner = rgb[200:224, 150:224].astype(int)
    return "red text" if ((corner[..., 0] > 150) & (corner[..., 1] < 100)).mean() > 0.003 else "other"


def errors_by_bar_style(calls: np.ndarray, test: Sequence[tuple[np.ndarray, int]],
                        labels: Sequence[str]) -> dict[str, dict[str, str]]:
    """{class: {style: "wrong/total"}}: where a model's errors fall by scale-bar style (the imaging source)."""
    out: dict[str, dict[str, list[int]]] = {}
    for (rgb, y), call in zip(test, calls, strict=True):
        cell = out.setdefault(labels[y], {}).setdefault(bar_style(rgb), [0, 0])
        cell[0] += int(call != y)
        cell[1] += 1
    return {c: {st: f"{w}/{n}" for st, (w, n) in sorted(styles.items())} for c, styles in out.items()}


def probe(model_path: Path, data: Path, split: str = "test", seed: int = 0) -> dict[str, object]:
    session = ModelSession.load(model_path, threads=2)

    def predict(images: list[np.ndarray]) -> np.ndarray:
        return np.stack([p.probabilities for i in range(0, len(images), 64)
                         for p in session.predict_batch(images[i:i + 64])])

    test = [(load_image(p).rgb, y) for p, y in labelled_items(data, split, session.spec)]
    donors = [(load_image(p).rgb, y) for p, y in labelled_items(data, "train", session.spec)]
    calls = predict([x for x, _ in test]).argmax(1)
    out = corner_sensitivity(predict, test, calls, donors, session.spec.labels, seed)
    out["errors_by_bar_style"] = errors_by_bar_style(calls, test, session.spec.labels)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.scale_bar_probe", description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("data", type=Path, help="labelled folder, e.g. ../shared/data/all4")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(json.dumps(probe(args.model, args.data, seed=args.seed), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
