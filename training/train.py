"""Train one default model: `python -m training.train all4|aml|pbc [--epochs N] [--data DIR]`.

Recipe (same for the three models, sizes in CONFIGS): block split from inference/splits.py, images
decoded once and cached, class-balanced sampling, smear augmentation (training/augment.py), a compact
CNN (training/model.py) trained from scratch here (the blood-cell recipe starts from the blood-cell network
pbc_pre in STARTS, the ALL and AML recipes from the refit of blood cell types 1.1.0, pbc160 in START_RECIPES;
each trained first when missing),
AdamW with a one-cycle learning rate, label smoothing, early stopping on validation balanced accuracy, and
temperature scaling on validation. Writes training/runs/<model>/checkpoint.pt and summary.json; export with
`python -m training.export_model`.
`--refit` then trains again on train + validation with the validated run's epochs and temperature.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from training.augment import augment_batch, corner_swap, cutmix
from training.calibration import TEMPERATURE_FLOOR, fit_temperature, nll
from training.data import SplitArrays, class_folders, load_all_splits
from training.model import count_parameters, load_matching_weights, smearnet_for

DATA_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data"
RUNS = Path(__file__).resolve().parent / "runs"
MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)


@dataclass
class TrainConfig:
    """Everything that defines a run; stored in the checkpoint so export and cards can quote it."""

    model: str
    dataset: str
    display_names: dict[str, str]
    size: int = 128
    epochs: int = 40
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    patience: int = 12
    widths: tuple[int, ...] = (16, 32, 64, 128, 192)
    colour_share: float = 1.0  # share of each batch given stain/colour jitter (the rest keeps its colours)
    p_blur: float = 0.3
    p_res: float = 0.3
    zoom: tuple[float, float] | None = None  # log-uniform zoom range; None: the original uniform 0.85-1.15
    zoom_share: float = 1.0  # share of each batch given the wide zoom range (the rest: 0.85-1.15)
    tint: float = 0.0  # white-balance gain jitter on the colour share
    standardise_colour: bool = False  # per-image colour standardisation as the network's first layer
    cutmix: float = 0.0  # share of batches given CutMix (0: none, and no extra random draw)
    corner_swap: float = 0.0  # share of images given another image's scale-bar corner (0: none, no draw)
    start_from: str = ""  # the network in STARTS or START_RECIPES (run folder runs/<name>) that starts this run
    augmented_temperature: bool = False  # fit T on augmented validation copies even when some are called wrong
    seed: int = 20260601
    extra: dict[str, str] = field(default_factory=dict)


PBC_NAMES = {
    "basophil": "Basophil", "eosinophil": "Eosinophil", "erythroblast": "Erythroblast", "ig": "Immature granulocyte",
    "lymphocyte": "Lymphocyte", "monocyte": "Monocyte", "neutrophil": "Neutrophil", "platelet": "Platelet",
}

# Networks other recipes start from, by run folder (training/runs/<name>), trained first when missing.
# pbc_pre: the blood-cell network, 30 epochs from random weights at 128 px, validated on the validation block
# (balanced accuracy 0.978); hemalens-pbc 1.0.0 was this recipe's refit on train + validation. Blood cell types
# underfit with jitter on every image (validation 0.942), so half of each batch keeps its own colours.
STARTS: dict[str, TrainConfig] = {
    "pbc_pre": TrainConfig(model="pbc_pre", dataset="pbc", epochs=30, colour_share=0.5, p_blur=0.2, p_res=0.2,
                           display_names=PBC_NAMES),
}

# Shipped recipes whose refit (train + validation, as shipped) other recipes start from, by run folder
# (training/runs/<name>); trained first, with their own start, when missing. Their versions: export_model.VERSIONS.
# pbc160: blood cell types 1.1.0 (rule 76fa63d), a second schedule on pbc_pre at 160 px, with the AML screen's
# wide zoom and white-balance jitter on half of each batch (the other half keeps 0.85-1.15x, as half-batch colour
# jitter keeps real colours; the wide zoom on every image lost a validation point). Against 1.0.0: test balanced
# accuracy 0.9748 -> 0.9780, Munich neutrophils 0.884 -> 0.931, test copies with cells 0.6x / 1.6x as large
# 0.57 / 0.60 -> 0.92 / 0.94. The ALL and AML recipes start from its refit.
START_RECIPES: dict[str, TrainConfig] = {
    "pbc160": replace(STARTS["pbc_pre"], model="pbc160", size=160, epochs=15, lr=1e-3, zoom=(0.6, 1.65),
                      zoom_share=0.5, tint=0.15, start_from="pbc_pre"),
}

CONFIGS: dict[str, TrainConfig] = {
    # ALL subtypes start from a blood-cell network (rule 1e99b52: pbc_pre, test balanced accuracy 0.951 -> 0.961):
    # about 15 Benign patients in the train block are few, and nothing pretrained can be downloaded here. Since
    # rule 9fc8e0b from the shipped blood-cell refit (160 px, wide zoom): out-of-fold balanced accuracy of the
    # train + validation blocks 0.9744 -> 0.9778, Benign recall 0.956 -> 0.973.
    # Its temperature comes from augmented validation copies (rule 329cc70: test ECE 0.027 -> 0.022); the shipped
    # refit's from `python -m training.crossval all4` (rule b18f596: 0.022 -> 0.019).
    "all4": TrainConfig(
        model="all4", dataset="all4", epochs=30, start_from="pbc160", augmented_temperature=True,
        display_names={"Benign": "Benign", "Early_Pre-B": "Early Pre-B", "Pre-B": "Pre-B", "Pro-B": "Pro-B"},
    ),
    # The AML screen starts from the shipped blood-cell refit (rule f156ab3, 5-fold out-of-fold calls of the
    # train + validation blocks: 14 errors from random weights, 4 from the blood-cell network).
    "aml": TrainConfig(
        model="aml", dataset="aml", epochs=14, zoom=(0.6, 1.65), tint=0.15, start_from="pbc160",
        display_names={"myeloblast": "Myeloblast", "seg_neutrophil": "Segmented neutrophil"},
    ),
    # Blood cell types 1.2.0 (rule efd5844): the 1.1.0 recipe above with per-image colour standardisation as the
    # network's first layer (stain normalisation: another lab's overall stain and white balance cannot move the
    # call). Against 1.1.0: test balanced accuracy 0.9780 -> 0.9829, Munich neutrophils 0.931 -> 0.961.
    "pbc": replace(START_RECIPES["pbc160"], model="pbc", standardise_colour=True),
}


def is_refit(ckpt: dict[str, Any]) -> bool:
    """Whether a checkpoint was trained on train + validation (``--refit``), not validated on validation."""
    return ckpt["config"].get("extra", {}).get("fit_on") == "train+val"


def repo_relative(path: Path) -> str:
    """A path as a checkpoint should quote it: relative to the repository when it lies inside."""
    path = path.resolve()
    repo = Path(__file__).resolve().parents[1]
    return path.relative_to(repo).as_posix() if path.is_relative_to(repo) else path.as_posix()


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [0, 1], channels-last in memory (faster convs on CPU)."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
    return x.contiguous(memory_format=torch.channels_last)


def recipe_augmentation(x: torch.Tensor, g: torch.Generator, cfg: TrainConfig) -> torch.Tensor:
    """augment_batch with the recipe's settings: training batches and augmented validation copies alike."""
    return augment_batch(x, g, cfg.colour_share, cfg.p_blur, cfg.p_res, cfg.zoom, cfg.tint, cfg.zoom_share)


def normalise(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def predict_logits(model: torch.nn.Module, images: np.ndarray, batch: int = 256) -> np.ndarray:
    model.eval()
    out = [model(normalise(to_tensor(images[i : i + batch]))).numpy() for i in range(0, len(images), batch)]
    return np.concatenate(out)


def balanced_accuracy(pred: np.ndarray, labels: np.ndarray, k: int) -> float:
    recalls = [float((pred[labels == c] == c).mean()) for c in range(k) if (labels == c).any()]
    return float(np.mean(recalls))


@torch.no_grad()
def recalibrate_bn(model: torch.nn.Module, images: np.ndarray, batch: int = 128) -> None:
    """Recompute batch-norm running statistics on un-augmented images (cumulative average, AdaBN-style)."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    for i in range(0, len(images), batch):
        model(normalise(to_tensor(images[i : i + batch])))
    for m in bns:
        m.momentum = 0.1
    model.eval()


def choose_bn_statistics(model: torch.nn.Module, train_images: np.ndarray, va: SplitArrays, k: int) -> str:
    """Keep the running statistics gathered on augmented batches, or recompute them on clean training
    images, whichever scores better on validation (balanced accuracy, then NLL). Strong colour and blur
    augmentation shifts the running statistics away from clean images; this lets validation decide."""
    def score() -> tuple[float, float]:
        logits = predict_logits(model, va.images)
        return round(balanced_accuracy(logits.argmax(1), va.labels, k), 4), -nll(logits, va.labels, 1.0)

    kept_state = {n: t.detach().clone() for n, t in model.state_dict().items()}
    kept = score()
    recalibrate_bn(model, train_images)
    recomputed = score()
    if recomputed > kept:
        return f"recomputed on clean training images (val bal/nll {kept} -> {recomputed})"
    model.load_state_dict(kept_state)
    return f"kept from training (val bal/nll {kept}; recomputed would give {recomputed})"


def validation_temperature(model: torch.nn.Module, va: SplitArrays, cfg: TrainConfig,
                           copies: int = 4, seed: int = 1234) -> tuple[float, str]:
    """Temperature scaling on the validation block, and how it was fitted.

    When the model calls every validation image right the NLL keeps falling as T -> 0 and the fit stops
    at its lower bound: the block says nothing about how often the model is wrong. Then T is fitted on
    ``copies`` augmented copies of the validation block (the training augmentation, fixed seed), which
    hold the variation the model was trained to meet and some errors. ``cfg.augmented_temperature`` fits
    on the copies always: the ALL validation block is easier than new slides (rule 329cc70).
    """
    logits = predict_logits(model, va.images)
    if not cfg.augmented_temperature and (logits.argmax(1) != va.labels).any():
        temperature = fit_temperature(logits, va.labels)
        return temperature, f"val NLL {nll(logits, va.labels, 1.0):.4f} -> {nll(logits, va.labels, temperature):.4f}"
    g = torch.Generator().manual_seed(seed)  # predict_logits left the model in eval mode
    aug_logits = []
    with torch.no_grad():
        for _ in range(copies):
            for i in range(0, len(va.labels), 128):
                x = recipe_augmentation(to_tensor(va.images[i:i + 128]), g, cfg)
                aug_logits.append(model(normalise(x)).numpy())
    labels = np.tile(va.labels, copies)
    aug = np.concatenate(aug_logits)
    temperature = fit_temperature(aug, labels)
    accuracy = float((aug.argmax(1) == labels).mean())
    why = "the recipe asks for it" if cfg.augmented_temperature else (
        f"validation all right (a fit would end at T {TEMPERATURE_FLOOR})")
    return temperature, (f"{why}: fitted on {copies} augmented copies, accuracy {accuracy:.4f}, "
                         f"NLL {nll(aug, labels, temperature):.4f}")


def progress(epoch: int, epochs: int, step: int, steps: int, loss: float, acc: float, started: float) -> None:
    """A one-line progress bar on stderr (no tqdm dependency)."""
    width = 30
    done = int(width * step / steps)
    rate = (time.time() - started) / max(step, 1)
    sys.stderr.write(
        f"\repoch {epoch:>2}/{epochs} [{'#' * done}{'.' * (width - done)}] {step}/{steps} "
        f"loss {loss:.3f} acc {acc:.3f} {rate:.2f}s/step"
    )
    sys.stderr.flush()


def fit(cfg: TrainConfig, model: torch.nn.Module, tr: SplitArrays, va: SplitArrays | None,
        k: int, gen: torch.Generator) -> tuple[list[dict[str, float]], int]:
    """The epochs of one run: class-balanced batches, augmentation, AdamW + one-cycle. With ``va`` the best
    epoch by validation balanced accuracy (then NLL) is kept and loaded into ``model``, with early stopping;
    without it every epoch runs and the last is kept. Returns the history and the kept epoch."""
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = len(tr.labels) // cfg.batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch,
                                                pct_start=0.25)
    counts = np.bincount(tr.labels, minlength=k)
    weights = torch.from_numpy(1.0 / counts[tr.labels]).double()
    train_x = torch.from_numpy(tr.images)
    train_y = torch.from_numpy(tr.labels)

    best_key: tuple[float, float] | None = None
    best_state: dict[str, torch.Tensor] | None = None
    best_epoch = 0
    history = []
    since_best = 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        order = torch.multinomial(weights, steps_per_epoch * cfg.batch_size, replacement=True, generator=gen)
        started, tot_loss, tot_ok, seen = time.time(), 0.0, 0, 0
        for step in range(steps_per_epoch):
            idx = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            x = train_x[idx].permute(0, 3, 1, 2).float().div_(255.0)
            x = corner_swap(x, gen, cfg.corner_swap)  # before the flips move the corner
            x = normalise(recipe_augmentation(x, gen, cfg))
            y = train_y[idx]
            x, perm, own = cutmix(x, gen, cfg.cutmix)
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
            if perm is not None:
                loss = own * loss + (1.0 - own) * F.cross_entropy(logits, y[perm], label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot_loss += float(loss.detach()) * len(y)
            tot_ok += int((logits.argmax(1) == y).sum())
            seen += len(y)
            progress(epoch, cfg.epochs, step + 1, steps_per_epoch, tot_loss / seen, tot_ok / seen, started)
        row = {"epoch": epoch, "train_loss": tot_loss / seen, "train_acc": tot_ok / seen,
               "seconds": time.time() - started}
        history.append(row)
        sys.stderr.write("\n")
        line = (f"[{cfg.model}] epoch {epoch}/{cfg.epochs} train loss {row['train_loss']:.3f} "
                f"acc {row['train_acc']:.3f}")
        if va is None:  # nothing to select on (a refit, a cross-validation fold): the last epoch is kept
            print(f"{line} | {row['seconds']:.0f}s", flush=True)
            continue
        val_logits = predict_logits(model, va.images)
        val_pred = val_logits.argmax(1)
        row.update(val_acc=float((val_pred == va.labels).mean()),
                   val_balanced_acc=balanced_accuracy(val_pred, va.labels, k), val_nll=nll(val_logits, va.labels, 1.0))
        key = (round(row["val_balanced_acc"], 4), -row["val_nll"])
        improved = best_key is None or key > best_key
        if improved:
            best_key, best_epoch, since_best = key, epoch, 0
            best_state = {n: t.detach().clone() for n, t in model.state_dict().items()}
        else:
            since_best += 1
        print(f"{line} | val acc {row['val_acc']:.4f} bal {row['val_balanced_acc']:.4f} nll {row['val_nll']:.3f}"
              f"{' *' if improved else ''} | {row['seconds']:.0f}s", flush=True)
        if since_best >= cfg.patience:
            print(f"[{cfg.model}] early stop: no validation gain for {cfg.patience} epochs", flush=True)
            break
    if best_state is None:
        return history, len(history)
    model.load_state_dict(best_state)
    return history, best_epoch


def starting_network(cfg: TrainConfig, k: int, init: Path | None) -> tuple[torch.nn.Module, list[str]]:
    """The network a run starts from (random weights, or ``init``'s where name and shape fit), channels-last,
    and the names of the tensors left random. Draws from torch's global generator: seed it first."""
    model = smearnet_for(asdict(cfg), k)
    fresh = [] if init is None else load_matching_weights(
        model, torch.load(init, map_location="cpu", weights_only=False)["state_dict"])
    return model.to(memory_format=torch.channels_last), fresh


def train(cfg: TrainConfig, data_root: Path, refit: bool = False, init: Path | None = None) -> Path:
    """One run. ``refit``: after a validated run, train again on train + validation for the same epoch
    budget and keep the last epoch, with the validated run's temperature (the test block stays unseen).
    ``init``: start from that checkpoint's weights instead of random ones (a second, shorter schedule,
    e.g. at a higher resolution: the network is fully convolutional, so the weights fit any input size)."""
    torch.set_num_threads(2)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    root = data_root / cfg.dataset
    folders = class_folders(root)
    k = len(folders)
    t0 = time.time()
    splits = load_all_splits(root, cfg.size)
    tr, va = splits["train"], splits["val"]
    run_dir = RUNS / cfg.model
    validated: dict | None = None
    if refit:
        validated = torch.load(run_dir / "checkpoint.pt", weights_only=False)
        if is_refit(validated):  # refit again: start from the validated run
            validated = torch.load(run_dir / "validated_checkpoint.pt", weights_only=False)
        else:
            shutil.copy2(run_dir / "checkpoint.pt", run_dir / "validated_checkpoint.pt")
        tr = SplitArrays(np.concatenate([tr.images, va.images]), np.concatenate([tr.labels, va.labels]),
                         tr.files + va.files)
        cfg.extra = {**cfg.extra, "fit_on": "train+val", "temperature_from": "validated run"}
    print(f"[{cfg.model}] classes {folders}; train {len(tr.labels)} val {len(va.labels)} test "
          f"{len(splits['test'].labels)}; cache {time.time() - t0:.1f}s", flush=True)

    model, fresh = starting_network(cfg, k, init)
    if init is not None:
        cfg.extra = {**cfg.extra, "init_from": repo_relative(init)}
        print(f"[{cfg.model}] weights from {init}" + (f"; starting fresh: {', '.join(fresh)}" if fresh else ""),
              flush=True)
    print(f"[{cfg.model}] SmearNet {count_parameters(model):,} parameters at {cfg.size}px", flush=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    history, best_epoch = fit(cfg, model, tr, None if refit else va, k, gen)  # fit leaves the kept weights in model

    if not refit:
        bn_choice = choose_bn_statistics(model, tr.images, va, k)
        print(f"[{cfg.model}] batch-norm statistics: {bn_choice}", flush=True)
        temperature, how = validation_temperature(model, va, cfg)
        print(f"[{cfg.model}] best epoch {best_epoch}; temperature {temperature:.3f} ({how})", flush=True)
    else:
        assert validated is not None
        best_epoch, temperature = history[-1]["epoch"], float(validated["temperature"])
        print(f"[{cfg.model}] kept the last epoch ({best_epoch}); temperature {temperature:.3f} from the validated run",
              flush=True)
    best_state = {n: t.detach().clone() for n, t in model.state_dict().items()}
    config = asdict(cfg)
    config["class_folders"] = folders
    torch.save({"state_dict": best_state, "config": config, "temperature": temperature, "history": history,
                "best_epoch": best_epoch, "mean": MEAN, "std": STD, "torch": torch.__version__,
                "train_seconds": time.time() - t0}, run_dir / "checkpoint.pt")
    (run_dir / "summary.json").write_text(json.dumps({"config": config, "temperature": temperature,
                                                       "best_epoch": best_epoch, "history": history}, indent=1))
    print(f"[{cfg.model}] saved {run_dir / 'checkpoint.pt'} after {time.time() - t0:.0f}s", flush=True)
    return run_dir / "checkpoint.pt"


def pretrained_start(cfg: TrainConfig, data_root: Path) -> Path | None:
    """Where a recipe with ``start_from`` begins, trained first if missing: a network in STARTS (its validated
    run), or a shipped recipe in START_RECIPES (its refit on train + validation, as shipped)."""
    if not cfg.start_from:
        return None
    checkpoint = RUNS / cfg.start_from / "checkpoint.pt"
    if cfg.start_from in STARTS:
        if not checkpoint.exists():
            print(f"[{cfg.model}] first training {cfg.start_from} to start from ({checkpoint})", flush=True)
            train(replace(STARTS[cfg.start_from]), data_root)  # a copy: train() records facts in cfg.extra
        return checkpoint
    if checkpoint.exists() and is_refit(torch.load(checkpoint, map_location="cpu", weights_only=False)):
        return checkpoint
    base = START_RECIPES[cfg.start_from]
    print(f"[{cfg.model}] first training {cfg.start_from} and its refit to start from ({checkpoint})", flush=True)
    init = pretrained_start(base, data_root)
    train(replace(base), data_root, init=init)
    train(replace(base), data_root, refit=True, init=init)
    return checkpoint


def add_recipe_options(parser: argparse.ArgumentParser) -> None:
    """The options that make a variant of a recipe: shared by training.train and training.crossval, so a
    variant judged by its out-of-fold calls is exactly the one trained."""
    parser.add_argument("model", choices=sorted([*CONFIGS, *START_RECIPES]),
                        help="a shipped model's recipe, or a start recipe (pbc160: blood cell types 1.1.0)")
    parser.add_argument("--data", type=Path, default=DATA_ROOT, help="folder holding all4/, aml/, pbc/")
    parser.add_argument("--epochs", type=int, help="override the recipe's epoch count")
    parser.add_argument("--size", type=int, help="override the training resolution")
    parser.add_argument("--lr", type=float, help="override the one-cycle peak learning rate")
    parser.add_argument("--seed", type=int, help="another seed for the same recipe (e.g. for an ensemble member)")
    parser.add_argument("--run", help="run folder under training/runs (default: the model's name)")
    parser.add_argument("--standardise-colour", action="store_true",
                        help="per-image colour standardisation as the network's first layer")
    parser.add_argument("--cutmix", type=float, help="share of batches given CutMix (default: the recipe's, 0)")
    parser.add_argument("--colour-share", type=float, help="share of each batch given stain/colour jitter")
    parser.add_argument("--start-from", choices=[*STARTS, *START_RECIPES, "none"],
                        help="network whose weights start this run ('none': random weights; default: the recipe's, "
                             "pbc_pre for pbc, the blood-cell 1.1.0 refit pbc160 for all4 and aml)")
    parser.add_argument("--corner-swap", type=float,
                        help="share of images given another image's bottom-right (scale bar) corner")
    parser.add_argument("--zoom", type=float, nargs=2, metavar=("LOW", "HIGH"),
                        help="log-uniform zoom range (the AML screen's: 0.6 1.65)")
    parser.add_argument("--zoom-share", type=float, help="share of each batch given the --zoom range (default 1)")
    parser.add_argument("--tint", type=float, help="white-balance gain jitter, 1 +- TINT (the AML screen's: 0.15)")


def recipe_from_options(args: argparse.Namespace) -> TrainConfig:
    """The named recipe (``args.model``) with the variant options given on the command line (left out: the
    recipe's value)."""
    # Options left out (or 0 / empty where 0 means nothing) keep the recipe's value. replace() makes a
    # copy, so the recipes stay as written for anything else in this process.
    overrides = {"epochs": args.epochs or None, "size": args.size or None, "lr": args.lr or None, "seed": args.seed,
                 "model": args.run or None, "standardise_colour": args.standardise_colour or None,
                 "cutmix": args.cutmix, "colour_share": args.colour_share,
                 "corner_swap": args.corner_swap, "zoom": tuple(args.zoom) if args.zoom else None, "tint": args.tint,
                 "zoom_share": args.zoom_share,
                 "start_from": "" if args.start_from == "none" else args.start_from}
    recipe = CONFIGS[args.model] if args.model in CONFIGS else START_RECIPES[args.model]
    return replace(recipe, **{k: v for k, v in overrides.items() if v is not None})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.splitlines()[0])
    add_recipe_options(parser)
    parser.add_argument("--init", type=Path,
                        help="start from this checkpoint's weights (a second schedule, or another data set's model)")
    parser.add_argument("--refit", action="store_true",
                        help="after a validated run: train again on train + validation (test block still unseen)")
    args = parser.parse_args(argv)
    cfg = recipe_from_options(args)
    train(cfg, args.data, refit=args.refit, init=args.init or pretrained_start(cfg, args.data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
