"""Block cross-validation of a recipe's refit: `python -m training.crossval all4 [--folds 5]`.

Why: the temperature of a shipped refit comes from its validated run, fitted on the validation block
(or augmented copies of it), and the ALL validation block is easier than new slides (99.2 % right
against 97.6 % on the test block), so the fitted T sharpens the probabilities too much. Here the train
and validation blocks of each class are cut into ``folds`` contiguous blocks by file number (never at
random: consecutive numbers come from the same slide); for each block the recipe's refit (fixed epochs,
last epoch kept, same start) trains on the others and predicts it. The out-of-fold logits are calls on
slides each fold model never saw, like new slides, and the temperature is fitted on them; it is then
used with the refit trained on all blocks (the cross-validated calibration of scikit-learn's
CalibratedClassifierCV with ensemble=False). The test block is not touched.
Writes training/runs/<model>_cv/oof.npz (logits, labels, files, folds) and summary.json, then puts that
temperature into the refit's checkpoint (training/runs/<model>/checkpoint.pt; weights unchanged).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inference.metrics import confusion_matrix, expected_calibration_error
from training.calibration import fit_temperature, nll, probabilities
from training.data import SplitArrays, class_folders, load_split
from training.train import (
    RUNS,
    TrainConfig,
    add_recipe_options,
    balanced_accuracy,
    fit,
    is_refit,
    predict_logits,
    pretrained_start,
    recipe_from_options,
    starting_network,
)


def block_folds(labels: np.ndarray, folds: int) -> np.ndarray:
    """Fold number of every image: each class's images, in the order given (block order by file number),
    cut into ``folds`` contiguous blocks of near-equal size."""
    fold = np.empty(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        for f, part in enumerate(np.array_split(idx, folds)):
            fold[part] = f
    return fold


def pooled_train_val(root: Path, size: int) -> SplitArrays:
    """The train and validation blocks together, each class's images in file-number order."""
    tr, va = load_split(root, size, "train"), load_split(root, size, "val")
    order = np.argsort(np.concatenate([tr.labels, va.labels]), kind="stable")  # per class: train, then val
    files = tr.files + va.files
    return SplitArrays(np.concatenate([tr.images, va.images])[order], np.concatenate([tr.labels, va.labels])[order],
                       [files[i] for i in order])


def summarise(logits: np.ndarray, labels: np.ndarray, fold: np.ndarray, names: list[str]) -> dict[str, object]:
    """Out-of-fold figures and the temperature fitted on them."""
    k = len(names)
    pred = logits.argmax(1)
    temperature = fit_temperature(logits, labels)
    return {
        "temperature": temperature,
        "accuracy": float((pred == labels).mean()),
        "balanced_accuracy": balanced_accuracy(pred, labels, k),
        "nll_at_T": nll(logits, labels, temperature),
        "ece_at_T": expected_calibration_error(probabilities(logits, temperature), labels),
        "per_fold_accuracy": [float((pred[fold == f] == labels[fold == f]).mean()) for f in np.unique(fold)],
        "labels": names,
        "confusion": confusion_matrix(labels, pred, k).tolist(),
    }


def crossval_folds(ckpt: dict[str, Any]) -> int | None:
    """How many folds the checkpoint's cross-validated temperature came from (None: not cross-validated)."""
    return ckpt["config"].get("extra", {}).get("crossval_folds")


def with_crossval_temperature(ckpt: dict[str, Any], temperature: float, folds: int) -> dict[str, Any]:
    """A copy of a refit checkpoint carrying the cross-validated temperature (weights unchanged, so no
    call changes), saying where its temperature came from."""
    if not is_refit(ckpt):
        raise ValueError("the cross-validated temperature belongs to a refit (python -m training.train MODEL --refit)")
    extra = {**ckpt["config"].get("extra", {}), "temperature_from": f"{folds}-fold block cross-validation",
             "crossval_folds": folds}
    return {**ckpt, "temperature": float(temperature), "config": {**ckpt["config"], "extra": extra}}


def crossval(cfg: TrainConfig, data_root: Path, folds: int, init: Path | None) -> dict[str, Any]:
    """Train the recipe's refit ``folds`` times, each without one block; save the out-of-fold logits
    (runs/<model>_cv/oof.npz) and return their summary (also saved as summary.json)."""
    torch.set_num_threads(2)
    root = data_root / cfg.dataset
    names = class_folders(root)
    pool = pooled_train_val(root, cfg.size)
    fold = block_folds(pool.labels, folds)
    logits = np.zeros((len(pool.labels), len(names)), dtype=np.float32)
    out = RUNS / f"{cfg.model}_cv"
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    for f in range(folds):
        torch.manual_seed(cfg.seed)
        gen = torch.Generator().manual_seed(cfg.seed)
        keep, held = fold != f, fold == f
        tr = SplitArrays(pool.images[keep], pool.labels[keep], [n for n, k in zip(pool.files, keep, strict=True) if k])
        model, _ = starting_network(cfg, len(names), init)
        fit(replace(cfg, model=f"{cfg.model} fold {f + 1}/{folds}"), model, tr, None, len(names), gen)
        logits[held] = predict_logits(model, pool.images[held])
        right = float((logits[held].argmax(1) == pool.labels[held]).mean())
        print(f"[{cfg.model}] fold {f + 1}/{folds}: held out {int(held.sum())}, accuracy {right:.4f} "
              f"({time.time() - t0:.0f}s)", flush=True)
        np.savez(out / "oof.npz", logits=logits, labels=pool.labels, files=np.asarray(pool.files), fold=fold,
                 done=np.int64(f + 1))
    summary = {"model": cfg.model, "folds": folds, "init_from": str(init) if init else None,
               "seconds": time.time() - t0, **summarise(logits, pool.labels, fold, names)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k != "confusion"}, indent=1), flush=True)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.crossval", description=__doc__.splitlines()[0])
    add_recipe_options(parser)  # a recipe variant, as training.train takes it
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--init", type=Path,
                        help="start every fold from this checkpoint, not the recipe's start (with --figures-only)")
    parser.add_argument("--figures-only", action="store_true",
                        help="only the out-of-fold figures (to compare recipes): no refit needed, none changed")
    args = parser.parse_args(argv)
    cfg = recipe_from_options(args)
    if args.init and not args.figures_only:
        print("--init compares another start: add --figures-only (the refit was not trained from it)", flush=True)
        return 1
    refit = RUNS / cfg.model / "checkpoint.pt"
    ckpt = torch.load(refit, map_location="cpu", weights_only=False) if refit.exists() else None
    if (ckpt is None or not is_refit(ckpt)) and not args.figures_only:
        print(f"no refit at {refit}: run python -m training.train {args.model} --refit first", flush=True)
        return 1
    temperature = crossval(cfg, args.data, args.folds, args.init or pretrained_start(cfg, args.data))["temperature"]
    if args.figures_only or ckpt is None:
        return 0
    torch.save(with_crossval_temperature(ckpt, temperature, args.folds), refit)
    print(f"[{cfg.model}] {refit}: temperature {ckpt['temperature']:.3f} -> {temperature:.3f} (out-of-fold calls)",
          flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
