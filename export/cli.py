"""`hemalens-export`: PyTorch / Keras / plain ONNX -> verified, Grad-CAM-ready HemaLens model.

Frameworks are imported only by the subcommand that needs them, so `augment` works without
PyTorch or TensorFlow installed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from export.errors import ExportError
from export.modelfile import read_labels_file
from inference.contract import COLOR_ORDERS, RESIZE_POLICIES, Provenance
from inference.errors import HemaLensError

_PROVENANCE_FIELDS = [f for f in Provenance.__dataclass_fields__ if f not in ("verification", "exporter",
                                                                               "source_framework", "metrics")]


def _triple(text: str) -> tuple[float, float, float]:
    parts = [p for p in text.replace(",", " ").split() if p]
    if len(parts) == 1:
        parts = parts * 3
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 1 or 3 numbers, got {text!r}") from None
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected 1 or 3 numbers, got {text!r}")
    return values  # type: ignore[return-value]


def _size(text: str) -> tuple[int, int]:
    parts = text.lower().replace("x", " ").replace(",", " ").split()
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SIZE or HEIGHTxWIDTH, got {text!r}") from None
    if len(values) == 1:
        values *= 2
    if len(values) != 2 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected SIZE or HEIGHTxWIDTH, got {text!r}")
    return values[0], values[1]


def _scale(text: str) -> float:
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            return float(num) / float(den)
        return float(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"expected a number like 0.00392 or 1/255, got {text!r}") from None


def _add_description(p: argparse.ArgumentParser, *, required_labels: bool) -> None:
    labels = p.add_mutually_exclusive_group(required=required_labels)
    labels.add_argument("--labels", help="class names in output order, comma-separated")
    labels.add_argument("--labels-file", type=Path, help="class names, one per line")
    p.add_argument("--name", help="display name of the model")
    p.add_argument("--id", dest="model_id", default="", help="stable model id (e.g. hemalens-all4)")
    p.add_argument("--version", default="1.0.0")
    p.add_argument("--description", default="")
    p.add_argument("--temperature", type=float, default=1.0, help="calibration temperature (default 1)")
    p.add_argument("--provenance", type=Path, help="JSON file with provenance fields (training_data, metrics, ...)")
    p.add_argument("--reference-folder", type=Path,
                   help="labelled training images (FOLDER/<class>/<image>): store their statistics in the model "
                        "so HemaLens can say when an image is unlike them")
    for field in _PROVENANCE_FIELDS:
        p.add_argument(f"--{field.replace('_', '-')}", dest=f"prov_{field}", help=f"provenance: {field}")


def _add_preprocessing(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input-size", type=_size, help="SIZE or HEIGHTxWIDTH the image is resized to")
    p.add_argument("--scale", type=_scale, help="pixel scale before mean/std (default 1/255)")
    p.add_argument("--mean", type=_triple, help="per-channel mean after scaling, e.g. 0.485,0.456,0.406")
    p.add_argument("--std", type=_triple, help="per-channel std after scaling")
    p.add_argument("--color-order", choices=COLOR_ORDERS, default=None)
    p.add_argument("--resize", choices=RESIZE_POLICIES, default=None)
    p.add_argument("--target-layer", help="Grad-CAM target: module/layer name or ONNX tensor (default: automatic)")
    p.add_argument("--sample-images", nargs="*", type=Path, default=[], help="real images for the verification")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hemalens-export",
        description="Turn a trained classifier into a verified, Grad-CAM-ready HemaLens ONNX model.")
    sub = parser.add_subparsers(dest="command", required=True)
    for kind, source_help in (("pytorch", "TorchScript file or whole pickled model (torch.save(model))"),
                              ("keras", ".keras or .h5 file, or a SavedModel folder")):
        p = sub.add_parser(kind, help=f"export a {kind} model")
        p.add_argument("model", type=Path, help=source_help)
        p.add_argument("output", type=Path, help="the .onnx file to write")
        _add_description(p, required_labels=True)
        _add_preprocessing(p)
        p.add_argument("--opset", type=int, default=None)
        if kind == "pytorch":
            p.add_argument("--converter", choices=("auto", "dynamo", "legacy"), default="auto",
                           help="torch.onnx exporter: the torch.export one (auto falls back to legacy) or legacy")
    p = sub.add_parser("augment", help="add Grad-CAM outputs and metadata to an ONNX classifier (new file)")
    p.add_argument("model", type=Path)
    p.add_argument("output", type=Path)
    _add_description(p, required_labels=False)
    _add_preprocessing(p)
    p.add_argument("--layout", choices=("NCHW", "NHWC"))
    return parser


def _labels(args: argparse.Namespace) -> list[str] | None:
    if args.labels_file:
        return read_labels_file(args.labels_file)
    if args.labels:
        return [s.strip() for s in args.labels.split(",") if s.strip()]
    return None


def _provenance(args: argparse.Namespace) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if args.provenance:
        try:
            data = json.loads(Path(args.provenance).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ExportError(f"cannot read provenance file {args.provenance}: {exc}") from None
        if not isinstance(data, dict):
            raise ExportError("the provenance file must hold a JSON object")
    for field in _PROVENANCE_FIELDS:
        value = getattr(args, f"prov_{field}", None)
        if value is not None:
            data[field] = value
    return data


def _sample_images(paths: list[Path]) -> list:
    from inference.images import load_image

    return [load_image(p).rgb for p in paths]


def _export(args: argparse.Namespace) -> None:
    common = dict(
        labels=_labels(args), name=args.name or args.model.stem, model_id=args.model_id, version=args.version,
        temperature=args.temperature, provenance=_provenance(args), target_layer=args.target_layer,
        sample_images=_sample_images(args.sample_images) or None, description=args.description,
        color_order=args.color_order or "RGB", resize=args.resize or "stretch")
    if args.opset:
        common["opset"] = args.opset
    if args.command == "pytorch":
        from export.pytorch import export_pytorch

        if not args.input_size:
            raise ExportError("--input-size is required for PyTorch models")
        report = export_pytorch(args.model, args.output, input_size=args.input_size, converter=args.converter,
                                mean=args.mean or (0.0, 0.0, 0.0), std=args.std or (1.0, 1.0, 1.0),
                                scale=args.scale if args.scale is not None else 1 / 255, **common)
    else:
        from export.keras import export_keras

        report = export_keras(args.model, args.output, input_size=args.input_size, mean=args.mean, std=args.std,
                              scale=args.scale, **common)
    print(report.summary())


def _augment(args: argparse.Namespace) -> None:
    from export.augment import augment_model

    changes: dict[str, Any] = {}
    for key in ("scale", "mean", "std", "color_order", "resize", "layout"):
        value = getattr(args, key)
        if value is not None:
            changes[key] = value
    if args.input_size:
        changes["height"], changes["width"] = args.input_size
    if args.sample_images:
        raise ExportError("augment checks with random inputs; --sample-images is for pytorch/keras exports")
    report = augment_model(args.model, args.output, labels=_labels(args), input_changes=changes or None,
                           name=args.name, target=args.target_layer)
    print(report.summary())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "augment":
            _augment(args)
        else:
            _export(args)
        if args.reference_folder:
            from export.reference import fit_folder_reference, write_reference

            reference = fit_folder_reference(args.output, args.reference_folder)
            write_reference(args.output, reference)
            print(f"training reference: {reference.images} images from {args.reference_folder}")
    except HemaLensError as exc:
        print(f"hemalens-export: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
