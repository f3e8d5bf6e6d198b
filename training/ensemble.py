"""Two or more trained SmearNets as one model: the mean of their temperature-scaled logits.

Each member's last feature map is kept side by side in one tensor (``joined``), and one linear layer
holds every member's classifier scaled by 1 / (T_i * n), so the ensemble is still "feature map ->
global average -> linear" (exactly the mean of the members' scaled logits) and Grad-CAM on ``joined``
shows where all members looked, in one map. The members must share input size and feature-map size.

    python -m training.ensemble OUT.onnx CKPT_A CKPT_B --temperature-from val   # a trial export
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from training.calibration import fit_temperature
from training.data import load_split
from training.model import SmearNet, load_checkpoint
from training.report import update_metadata
from training.train import DATA_ROOT, predict_logits

JOINED = "joined"  # the Grad-CAM target: every member's last feature map, channels side by side


class LogitMeanEnsemble(nn.Module):
    """``mean_i(member_i(x) / T_i)``, written so that one feature map holds every member's evidence."""

    def __init__(self, members: list[SmearNet], temperatures: list[float]) -> None:
        super().__init__()
        if len(members) < 2 or len(members) != len(temperatures):
            raise ValueError("an ensemble needs two or more members, each with its temperature")
        self.features = nn.ModuleList(nn.Sequential(m.colour, m.features) for m in members)
        self.joined = nn.Identity()
        n = len(members)
        self.fc = nn.Linear(sum(m.fc.in_features for m in members), members[0].fc.out_features)
        with torch.no_grad():
            self.fc.weight.copy_(torch.cat([m.fc.weight / (t * n) for m, t in zip(members, temperatures, strict=True)],
                                           dim=1))
            self.fc.bias.copy_(sum(m.fc.bias / (t * n) for m, t in zip(members, temperatures, strict=True)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        joined = self.joined(torch.cat([f(x) for f in self.features], dim=1))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(joined, 1), 1))


def build(paths: list[Path]) -> tuple[LogitMeanEnsemble, list[dict[str, Any]]]:
    """The ensemble of these checkpoints (same classes, same input size), each with its own temperature."""
    loaded = [load_checkpoint(p) for p in paths]
    ckpts = [c for _, c in loaded]
    for key in ("class_folders", "size"):
        if len({str(c["config"][key]) for c in ckpts}) != 1:
            raise ValueError(f"the members differ in {key}")
    return LogitMeanEnsemble([m for m, _ in loaded], [float(c["temperature"]) for c in ckpts]).eval(), ckpts


def fitted_temperature(model: nn.Module, ckpt: dict[str, Any], data_root: Path, split: str = "val") -> float:
    """The ensemble's own temperature, fitted on one split's cached images."""
    cfg = ckpt["config"]
    arrays = load_split(data_root / cfg["dataset"], int(cfg["size"]), split)
    return fit_temperature(predict_logits(model, arrays.images), arrays.labels)


def main(argv: list[str] | None = None) -> int:
    from export.pytorch import export_pytorch

    parser = argparse.ArgumentParser(prog="python -m training.ensemble", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("checkpoints", type=Path, nargs="+")
    parser.add_argument("--temperature-from", default="val", help="split to fit the ensemble's temperature on")
    parser.add_argument("--temperature", type=float,
                        help="use this ensemble temperature (refits: the one fitted for their validated runs)")
    parser.add_argument("--resize", default="center_crop", choices=("center_crop", "stretch"),
                        help="how the runtime fits an image to the input (whole fields: stretch)")
    parser.add_argument("--data", type=Path, default=DATA_ROOT)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    model, ckpts = build(args.checkpoints)
    cfg = ckpts[0]["config"]
    temperature = args.temperature or fitted_temperature(model, ckpts[0], args.data, args.temperature_from)
    print(f"ensemble temperature {temperature:.4f}")
    labels = [cfg["display_names"][f] for f in cfg["class_folders"]]
    val = load_split(args.data / cfg["dataset"], int(cfg["size"]), "val")
    picks = np.linspace(0, len(val.images) - 1, 8).astype(int)
    export_pytorch(model, args.out, labels=labels, input_size=int(cfg["size"]), mean=list(ckpts[0]["mean"]),
                   std=list(ckpts[0]["std"]), scale=1 / 255, color_order="RGB", resize=args.resize,
                   name=f"{cfg['dataset']} ensemble trial", model_id=f"trial-{cfg['dataset']}-ensemble",
                   temperature=temperature, target_layer=JOINED, sample_images=[val.images[i] for i in picks])
    update_metadata(args.out, class_ids=[f.lower().replace("-", "_") for f in cfg["class_folders"]])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
