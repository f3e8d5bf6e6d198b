"""Export a trained checkpoint to assets/models and measure it: `python -m training.export_model all4|aml|pbc`.

Steps for a shipped model, all on the exported ONNX file through the runtime: export via export.pytorch
(Grad-CAM outputs, verified against PyTorch), `hemalens evaluate` figures on the held-out test block, the simulated
cross-lab robustness table, latency on 2 CPU threads, a Grad-CAM overlay grid; then the figures are
written into the model's metadata (provenance) and into its markdown card. The card's "what we saw
in the heatmaps" paragraph is read from training/cards/<model>.md (written by a person after looking
at the grid).

A trial's candidate (`--checkpoint training/runs/<run>/validated_checkpoint.pt --out DIR`) is only exported, to
DIR under its run's own id, never over the shipped file, and no block is scored: the trial's rule decides which
block is, with `python -m training.robustness FILE DATA --split val` (the validation block as it is, "original",
and its transformed copies) or `hemalens evaluate` (the test block).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from export.reference import fit_folder_reference, write_reference
from inference.cli_evaluate import evaluate_folder
from inference.session import ModelSession
from inference.splits import SPLIT_DESCRIPTION, labelled_folder, split_fingerprint
from training.augment import UNIFORM_ZOOM
from training.crossval import crossval_folds
from training.data import load_split
from training.model import SmearNet, count_parameters, load_checkpoint, smearnet_for
from training.report import (
    cam_grid,
    cam_grid_name,
    measure_latency,
    unlike_training_summary,
    update_metadata,
    write_card,
    write_json,
)
from training.robustness import robustness
from training.train import CONFIGS, DATA_ROOT, RUNS, START_RECIPES, STARTS, is_refit

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "assets" / "models"
CARDS = Path(__file__).resolve().parent / "cards"
# all4 1.1.0: starts from the blood-cell network (rule 1e99b52); 1.0.0 was trained from random weights.
# all4 1.1.1: the same weights, temperature from a 5-fold block cross-validation (rule b18f596).
# pbc 1.1.0: a second schedule on the blood-cell network at 160 px, wide zoom on half of each batch (rule 76fa63d);
# 1.0.0 was the 128 px refit from random weights.
# all4 1.2.0 (rule 9fc8e0b) and aml 1.1.0 (rule f156ab3): start from the blood-cell 1.1.0 refit; aml 1.0.0 was
# trained from random weights by an uncommitted working tree and could not be rebuilt.
# pbc 1.2.0 (rule efd5844): the 1.1.0 recipe with per-image colour standardisation; 1.1.0's recipe is now the start
# recipe pbc160 of the ALL and AML recipes.
VERSIONS = {"all4": "1.2.0", "aml": "1.1.0", "pbc": "1.2.0", "pbc160": "1.1.0"}

INTENDED_USE = ("Screening aid for research, not a diagnosis: it suggests a class and shows where it looked; "
                "a qualified person reviews every image.")

# Real images of some of a model's classes from another lab, in ../shared/data (folder, folder -> class map).
OTHER_LAB: dict[str, dict[str, Any]] = {
    "pbc": {
        "folder": "aml", "map": {"seg_neutrophil": "neutrophil"},
        "source": "Segmented neutrophils from the Munich AML-Cytomorphology_LMU set (Matek et al., Nature Machine "
                  "Intelligence 1:538, 2019): another hospital, scanner (100x oil, 400 px crops) and stain than "
                  "the Barcelona training images; the cells fill more of the frame, grey-white background.",
    },
    "aml": {
        "folder": "pbc", "map": {"neutrophil": "seg_neutrophil"},
        "source": "Neutrophils from the Barcelona PBC set (Acevedo et al., Data in Brief 30:105474, 2020; segmented "
                  "and band forms, CellaVision DM96): another hospital, scanner and stain than the Munich training "
                  "images. None is a blast, so every Myeloblast call is a false alarm. Only the PBC test block "
                  "counts: the blood-cell network this screen starts from was trained on the PBC train and "
                  "validation blocks.",
        "split": "test",
    },
}

# The targets (measured on our test block); the card says plainly which are met.
TARGETS: dict[str, dict[str, Any]] = {
    "all4": {"accuracy": 0.995, "recall": {"Benign": 0.98}},
    "pbc": {"accuracy": 0.99},
    "aml": {"accuracy": 0.995},
}

# How the runtime fits an image to the square input. Single-cell crops have the cell in the centre, so a
# centre crop keeps its shape on a non-square frame from another camera (a plain resize squashes it:
# pbc validation copies padded to 16:9 fell from 0.98 to 0.87 with "stretch", 0.98 with a centre crop).
# Whole smear fields keep every cell with "stretch". The training images are all within 1 % of square,
# where the two policies agree to a pixel, so training's plain resize (training/data.py) matches both.
RESIZE_WORDS = {"stretch": "plain resize (stretch)",
                "center_crop": "short side resized, centre square cropped (center_crop)"}
DATASETS: dict[str, dict[str, str]] = {
    "all4": {
        "name": "ALL subtypes",
        # Square training fields: centre crop = stretch there (test figures identical); a wider camera frame
        # keeps the cells' shape instead of squashing them (test copies at 16:9: 0.70 stretched, 0.97 cropped).
        "resize": "center_crop",
        "description": "Acute lymphoblastic leukaemia screen on whole peripheral-blood smear fields: benign "
                       "(haematogones) vs the B-ALL subtypes Early Pre-B, Pre-B and Pro-B.",
        "training_data": "ALL image dataset (Taleqani Hospital, Tehran): 2,733 224x224 JPEG smear fields in "
                         "4 classes after removing 40 duplicate pairs (Kaggle 'mehradaria/leukemia').",
        "citation": "Ghaderzadeh M, Aria M, Hosseini A, Asadi F, Bashash D, Abolghasemi H. A fast and efficient "
                    "CNN model for B-ALL diagnosis and its subtypes classification using peripheral blood smear "
                    "images. International Journal of Intelligent Systems 37:5113-5133 (2022). Aria M, "
                    "Ghaderzadeh M, Bashash D, Abolghasemi H, Asadi F, Hosseini A. Acute Lymphoblastic Leukemia "
                    "(ALL) image dataset. Kaggle (2021), doi:10.34740/KAGGLE/DSV/2175623.",
        "license": "Model: MIT (HemaLens). Training images: as stated on the Kaggle dataset page (not "
                   "redistributed here); check it before commercial use.",
        "limitations": "One hospital, one staining protocol and one camera. No patient identifiers, so the split "
                       "is by file-number blocks, not by patient: images of one patient may sit in both train and "
                       "test. Whole-field images: classes are defined per image, not per cell. A non-square field "
                       "is judged on its centre square (the sides get no heatmap). Most fields carry a scale bar "
                       "in the bottom-right corner whose style follows the imaging session; given another class's "
                       "bar, 0.3 % of the model's test calls change (`python -m training.scale_bar_probe`). The "
                       "bar's style marks the imaging source, and Benign errors gather in one source (pale fields "
                       "with a large '200 px' box; 26 % of Benign and 39 % of Early Pre-B training fields): 8 of "
                       "21 such Benign test fields are called Early Pre-B, 1 of 43 other Benign fields (some "
                       "fields appear twice under different file numbers). "
                       "No leukaemia field of the test block is called Benign, but that is no guarantee: in a 5-fold "
                       "block cross-validation of the same recipe over the train and validation blocks (`python -m "
                       "training.crossval all4`), 20 of 1,959 B-ALL fields (14 Early Pre-B, 5 Pre-B, 1 Pro-B) were "
                       "called Benign by the model trained without them. "
                       "The classes differ in overall colour "
                       "balance (mean red/blue ratio per class 0.78-0.95 with spreads of 0.01-0.06; six colour "
                       "statistics per image alone reach 0.76 on the test block), so the model partly reads the "
                       "imaging session: on test copies with a warm white balance it falls to 0.76. Two recipes "
                       "that ignore colour balance were not shipped: zoom and white-balance jitter (validation "
                       "0.96), and per-image colour standardisation (test balanced accuracy 0.941, Benign recall "
                       "0.77, though 0.97 under the warm white balance). Not validated on other labs; check on "
                       "your own images before any use.",
    },
    "pbc": {
        "name": "Blood cell types",
        "resize": "center_crop",
        "description": "Normal peripheral blood cell types on single-cell CellaVision crops: basophil, "
                       "eosinophil, erythroblast, immature granulocyte, lymphocyte, monocyte, neutrophil, platelet.",
        "training_data": "PBC dataset normal peripheral blood cells (Hospital Clinic of Barcelona, CellaVision "
                         "DM96, May Grunwald-Giemsa): 9,326 images in 8 classes after removing 17 duplicates, "
                         "re-encoded to a 224 px short side.",
        "citation": "Acevedo A, Merino A, Alferez S, Molina A, Boldu L, Rodellar J. A dataset of microscopic "
                    "peripheral blood cell images for development of automatic recognition systems. Data in "
                    "Brief 30:105474 (2020). Mendeley Data, doi:10.17632/snkd93bnjr.1.",
        "license": "Model: MIT (HemaLens). Training images: CC BY 4.0 (Acevedo et al.), attribution above.",
        "limitations": "One hospital and one analyser (CellaVision DM96, one stain), individuals without "
                       "haematological disease. Split by file-number blocks, not by patient. Immature granulocyte "
                       "pools metamyelocytes, myelocytes and promyelocytes. Each image's colour channels are "
                       "standardised before the network (stain normalisation), which removes an overall stain or "
                       "white-balance shift but not a different stain chemistry. Checked on one class from another "
                       "lab only (Munich neutrophils, below): a different stain, camera or magnification lowers "
                       "accuracy (test copies with cells 0.6x or 1.6x as large as in training: 0.93 and 0.94; "
                       "warm white balance: 0.98; hue +20 degrees: 0.96). Verify on your own lab's images.",
    },
    "aml": {
        "name": "AML blast screen",
        "resize": "center_crop",
        "description": "Binary single-cell screen: myeloblast vs segmented neutrophil (two of the 18 Munich "
                       "AML-Cytomorphology classes).",
        "training_data": "Munich AML-Cytomorphology_LMU (LMU Munich University Hospital, 100x oil, "
                         "May-Grunwald-Giemsa): 800 myeloblast and 800 segmented neutrophil images, re-encoded "
                         "to 224x224 from 400x400.",
        "citation": "Matek C, Schwarz S, Spiekermann K, Marr C. Human-level recognition of blast cells in acute "
                    "myeloid leukaemia with convolutional neural networks. Nature Machine Intelligence 1:538-544 "
                    "(2019). Data: The Cancer Imaging Archive, doi:10.7937/tcia.2019.36f5o9ld.",
        "license": "Model: MIT (HemaLens). Training images: TCIA data usage policy (CC BY 3.0 at the time of "
                   "writing), attribution above.",
        "limitations": "Only two cell classes: any other cell (lymphocyte, monocyte, promyelocyte, ...) will be "
                       "forced into one of them, so it is not a general blast detector. One lab, one scanner. "
                       "Split by file-number blocks, not by patient. Checked on one class from another lab only "
                       "(Barcelona neutrophils, below); no other lab's myeloblasts were available, so how often it "
                       "misses a blast elsewhere is unmeasured. Verify on your own lab's images.",
    },
}


PROVENANCE_TEXTS = ("training_data", "limitations", "citation", "license")


def load_model(model_name: str) -> tuple[SmearNet, dict[str, Any]]:
    return load_checkpoint(RUNS / model_name / "checkpoint.pt")


def export(model_name: str, data_root: Path, candidate: Path | None = None,
           out_dir: Path | None = None) -> dict[str, Any]:
    """Export the shipped run into assets/models, or a candidate checkpoint into out_dir named after its run."""
    from export.pytorch import export_pytorch

    model, ckpt = load_checkpoint(candidate) if candidate else load_model(model_name)
    cfg = ckpt["config"]
    meta = DATASETS[model_name]
    folders = cfg["class_folders"]
    labels = [cfg["display_names"][f] for f in folders]
    size = int(cfg["size"])
    model_id, name, version = f"hemalens-{model_name}", meta["name"], VERSIONS[model_name]
    if candidate:  # another id, so the app never mistakes it for the shipped model
        run = f"{candidate.parent.name}-{'refit' if is_refit(ckpt) else 'validated'}"
        model_id, name, version = f"{model_id}-{run}", f"{name} (trial candidate {run})", f"{version}+{run}"
    folder = out_dir or ASSETS
    out = folder / f"{model_id}.onnx"
    folder.mkdir(parents=True, exist_ok=True)
    val = load_split(data_root / cfg["dataset"], size, "val")
    picks = np.linspace(0, len(val.images) - 1, 8).astype(int)
    provenance = {
        **{k: meta[k] for k in PROVENANCE_TEXTS}, "split": SPLIT_DESCRIPTION, "intended_use": INTENDED_USE,
        "authors": "HemaLens project", "created": dt.date.today().isoformat(),
        "source_framework": f"pytorch {torch.__version__}",
    }
    report = export_pytorch(
        model, out, labels=labels, input_size=size, mean=list(ckpt["mean"]), std=list(ckpt["std"]), scale=1 / 255,
        color_order="RGB", resize=meta["resize"], name=name, model_id=model_id, version=version,
        temperature=float(ckpt["temperature"]), provenance=provenance, target_layer=None,
        description=meta["description"],
        sample_images=[val.images[i] for i in picks],
    )
    ids = [f.lower().replace("-", "_") for f in folders]
    update_metadata(out, class_ids=ids)
    # The typical-image reference behind "unlike training" notes, from the same train block.
    write_reference(out, fit_folder_reference(out, data_root / cfg["dataset"], "train"))
    return {"path": out, "report": report, "ckpt": ckpt, "labels": labels}


def _zoom_words(cfg: dict[str, Any]) -> str:
    zoom, tint = cfg.get("zoom"), cfg.get("tint", 0.0)
    uniform = f"{UNIFORM_ZOOM[0]}-{UNIFORM_ZOOM[1]}x"
    share = cfg.get("zoom_share", 1.0)
    if not zoom:
        words = f"zoom {uniform}, "
    elif share < 1:
        words = f"zoom {zoom[0]}-{zoom[1]}x log-uniform on {share:.0%} of each batch ({uniform} on the rest), "
    else:
        words = f"zoom {zoom[0]}-{zoom[1]}x log-uniform, "
    return words + (f"white-balance gains 1 +- {tint}, " if tint else "")


def _schedule(ckpt: dict[str, Any]) -> str:
    epochs = len(ckpt["history"])
    minutes = f"{ckpt['train_seconds'] / 60:.0f} min on 2 shared CPU cores"
    folds = crossval_folds(ckpt)
    if is_refit(ckpt) and folds:
        return (f"{epochs} epochs on the train + validation blocks, {minutes} (refit: epoch budget from a run "
                f"validated on the validation block, temperature from a {folds}-fold block cross-validation; "
                "test block never seen)")
    if is_refit(ckpt):
        return (f"{epochs} epochs on the train + validation blocks, {minutes} (refit: epoch budget and temperature "
                "from a run validated on the validation block; test block never seen)")
    return f"{epochs} epochs, {minutes} (best {ckpt['best_epoch']} by validation)"


def _start_words(ckpt: dict[str, Any]) -> str:
    cfg = ckpt["config"]
    start, init = cfg.get("start_from"), cfg.get("extra", {}).get("init_from")
    if not init:
        return "from scratch"
    if not start:
        return f"starting from {init}"
    if start in START_RECIPES:
        base = START_RECIPES[start]
        return (f"starting from the refit of the {base.dataset} recipe {start} ({init}: shipped as "
                f"hemalens-{base.dataset} {VERSIONS[start]}, {base.epochs} epochs at {base.size} px, trained first by "
                "the same command; new classifier layer)")
    base = STARTS.get(start)
    if base is None:  # checkpoints from before STARTS named the recipe
        return (f"starting from the {start} recipe's validated network ({init}, trained first by the same command; "
                "new classifier layer)")
    head = "same classes" if base.dataset == cfg["dataset"] else "new classifier layer"
    return (f"starting from the validated {base.dataset} network {start} ({init}: {base.epochs} epochs at "
            f"{base.size} px from random weights, trained first by the same command; {head})")


def _colour_words(cfg: dict[str, Any]) -> str:
    if not cfg.get("standardise_colour"):
        return ""
    return "a first layer that standardises each image's colour channels (mean 0, variance 1; stain normalisation), "


def _train_commands(model_name: str, ckpt: dict[str, Any]) -> str:
    command = f"python -m training.train {model_name}"
    if not is_refit(ckpt):
        return command
    crossval = f" && python -m training.crossval {model_name}" if crossval_folds(ckpt) else ""
    return f"{command} && {command} --refit{crossval}"


def _temperature_words(ckpt: dict[str, Any]) -> str:
    folds = crossval_folds(ckpt)
    if folds:
        return (f"fitted on the out-of-fold calls of a {folds}-fold block cross-validation of the train + "
                "validation blocks")
    return "fitted on validation" + (": 4 augmented copies of the block" if ckpt["config"].get("augmented_temperature")
                                     else "")


def measure_other_lab(session: ModelSession, model_name: str, data_root: Path) -> dict[str, Any] | None:
    """The model on real images of its classes from another lab (OTHER_LAB), as `hemalens evaluate` scores them."""
    other = OTHER_LAB.get(model_name)
    if other is None:
        return None
    folder = data_root / other["folder"]
    split = other.get("split", "all")
    ev, rows, errors = evaluate_folder(session, folder, split, other["map"], skip_unknown=True)
    assert not errors, errors
    maps = " ".join(f"--map {k}={v}" for k, v in other["map"].items())
    result = {
        "source": other["source"], "split": split, "n": ev.n, "accuracy": round(ev.accuracy, 4),
        "ece": round(ev.ece, 4),
        "flagged": unlike_training_summary(rows)["flagged"],
        "classes": sorted({r["true"] for r in rows}),
        "calls": {label: int(n) for label, n in zip(ev.labels, ev.confusion.sum(axis=0), strict=True)},
        "command": f"hemalens evaluate ../shared/data/{other['folder']} --model hemalens-{model_name} {maps} "
                   f"--skip-unknown --split {split}",
    }
    print("other lab", result, flush=True)
    return result


def measure(model_name: str, data_root: Path, exported: dict[str, Any] | None = None) -> None:
    """Evaluate, stress, time and picture the shipped file; write metadata metrics and the card."""
    out = ASSETS / f"hemalens-{model_name}.onnx"
    _, ckpt = load_model(model_name)
    cfg = ckpt["config"]
    meta = DATASETS[model_name]
    data = data_root / cfg["dataset"]
    run_dir = RUNS / model_name
    session = ModelSession.load(out, threads=2)
    ev, rows, errors = evaluate_folder(session, data, "test", {})
    assert not errors, errors
    evaluation = ev.to_dict()
    print(json.dumps({k: evaluation[k] for k in ("n", "accuracy", "balanced_accuracy", "ece")}), flush=True)
    unlike = unlike_training_summary(rows)
    print("unlike training", unlike, flush=True)
    rob = robustness(out, data)
    other_lab = measure_other_lab(session, model_name, data_root)
    latency = measure_latency(out)
    print("latency", latency, flush=True)
    grid_name = cam_grid_name(f"hemalens-{model_name}")
    cam = cam_grid(out, data, ASSETS / grid_name)
    size_mb = out.stat().st_size / 1e6
    fingerprint = split_fingerprint(labelled_folder(data, "test"))
    metrics = {
        **{k: evaluation[k] for k in ("n", "accuracy", "balanced_accuracy", "ece", "per_class", "confusion_matrix")},
        "evaluated_on": f"{cfg['dataset']}/ test block ({evaluation['n']} images)",
        "test_split_fingerprint": fingerprint,
        "robustness": rob,
        "unlike_training_test": unlike,
        "latency_ms_2_threads": latency,
        "input_size": cfg["size"],
        "size_mb": round(size_mb, 2),
        "gradcam_mass_on_stained_pixels": cam["heatmap_mass_on_stained_pixels"],
        **({"other_lab": other_lab} if other_lab else {}),
    }
    # The hand-written texts too, so a re-measure (--measure-only) keeps the file and its card in step.
    update_metadata(out, metrics=metrics, **{k: meta[k] for k in PROVENANCE_TEXTS})
    write_json(run_dir / "evaluation.json", {"evaluation": evaluation, "robustness": rob, "latency": latency,
                                             "cam": cam})
    obs_file = CARDS / f"{model_name}.md"
    observations = obs_file.read_text() if obs_file.exists() else "(Heatmap observations not written yet.)"
    model = smearnet_for(cfg, len(cfg["class_folders"]))
    facts = {
        **meta, "id": f"hemalens-{model_name}", "version": VERSIONS[model_name], "temperature": ckpt["temperature"],
        "size_mb": size_mb,
        "temperature_how": _temperature_words(ckpt),
        "input": f"{cfg['size']}x{cfg['size']} RGB, {RESIZE_WORDS[meta['resize']]}, (pixel/255 - 0.5)/0.25",
        "network": f"SmearNet (training/model.py): {_colour_words(cfg)}5 conv stages, residual pairs, GAP + linear; "
                   f"{count_parameters(model):,} parameters; Grad-CAM on the last stage "
                   f"({cfg['size'] // 16}x{cfg['size'] // 16} map)",
        "training": f"{_start_words(ckpt)}, {_schedule(ckpt)}, "
                    f"AdamW one-cycle lr {cfg['lr']}, label smoothing {cfg['label_smoothing']}, class-balanced "
                    f"sampling, stain/colour jitter on {cfg.get('colour_share', 1.0):.0%} of each batch, "
                    f"{_zoom_words(cfg)}"
                    f"seed {cfg['seed']}",
        "split": SPLIT_DESCRIPTION,
        "intended_use": INTENDED_USE,
        "evaluate_command": f"hemalens evaluate ../shared/data/{cfg['dataset']} --model hemalens-{model_name} "
                            "--split test",
        "target_accuracy": TARGETS[model_name]["accuracy"],
        "target_recall": TARGETS[model_name].get("recall", {}),
        "train_command": _train_commands(model_name, ckpt),
        "export_command": f"python -m training.export_model {model_name}",
    }
    write_card(ASSETS / f"hemalens-{model_name}.md", title=meta["name"], model_file=out.name, facts=facts,
               evaluation=evaluation, robustness=rob, unlike=unlike, latency=latency, cam=cam, cam_image=grid_name,
               observations=observations, other_lab=other_lab)
    print(f"wrote {out} ({size_mb:.2f} MB), card and {grid_name}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.export_model", description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=sorted(CONFIGS))
    parser.add_argument("--data", type=Path, default=DATA_ROOT)
    parser.add_argument("--measure-only", action="store_true", help="skip the export; re-measure and rewrite the card")
    parser.add_argument("--checkpoint", type=Path, help="a trial's checkpoint to export instead (needs --out)")
    parser.add_argument("--out", type=Path, help="folder for the candidate's ONNX file; nothing is scored")
    args = parser.parse_args(argv)
    if (args.checkpoint is None) != (args.out is None) or (args.out and args.measure_only):
        parser.error("--checkpoint and --out go together, and without --measure-only: a candidate never replaces "
                     "the shipped file and no block is scored for it")
    torch.set_num_threads(2)
    if args.out:
        path = export(args.model, args.data, args.checkpoint, args.out)["path"]
        print(f"wrote {path}; score only the block the trial's rule allows, e.g. the validation block as it is "
              f"('original') and its transformed copies:\n"
              f"  python -m training.robustness {path} {args.data / args.model} --split val", flush=True)
        return 0
    exported = None if args.measure_only else export(args.model, args.data)
    measure(args.model, args.data, exported)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
