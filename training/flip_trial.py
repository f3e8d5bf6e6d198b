"""Would averaging over flipped/rotated copies (test-time augmentation) lift a model? Validation only.

Scores a run that was validated on the train block (not a refit: the refit has seen validation) on the
validation block four ways: plain, logits averaged with the left-right mirror (two views, one network run
at batch 2), over the 4 flips, and over all 8 dihedral transforms, each with its temperature re-fitted.
The decision rules and the outcomes are in docs/model-trials.md.

    python -m training.flip_trial training/runs/all4/validated_checkpoint.pt
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from training.calibration import fit_temperature, nll
from training.data import load_split
from training.model import load_checkpoint
from training.train import DATA_ROOT, balanced_accuracy, predict_logits

FLIPS = (0, 4, 6, 2)  # identity, left-right mirror, top-bottom mirror, 180 degree rotation
MIRROR = (0, 4)  # identity, left-right mirror


def dihedral(images: np.ndarray, t: int) -> np.ndarray:
    """Transform t of 8 on (N, H, W, C) images: t % 4 quarter turns, then a left-right mirror if t >= 4."""
    out = np.rot90(images, t % 4, axes=(1, 2))
    return np.ascontiguousarray(out[:, :, ::-1] if t >= 4 else out)


def figures(logits: np.ndarray, labels: np.ndarray, k: int) -> dict[str, float]:
    t = fit_temperature(logits, labels)
    pred = logits.argmax(1)
    return {"acc": float((pred == labels).mean()), "bal": balanced_accuracy(pred, labels, k),
            "nll": nll(logits, labels, t), "temperature": t}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--data", type=Path, default=DATA_ROOT)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    model, ckpt = load_checkpoint(args.checkpoint)
    cfg = ckpt["config"]
    k = len(cfg["class_folders"])
    val = load_split(args.data / cfg["dataset"], cfg["size"], "val")
    per = [predict_logits(model, dihedral(val.images, t)) for t in range(8)]
    result = {
        "plain": figures(per[0], val.labels, k),
        "mirror2": figures(np.mean([per[t] for t in MIRROR], axis=0), val.labels, k),
        "flips4": figures(np.mean([per[t] for t in FLIPS], axis=0), val.labels, k),
        "dihedral8": figures(np.mean(per, axis=0), val.labels, k),
    }
    json.dump(result, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
