"""The alternative stack: the same weights in PyTorch eager on the CPU (torch is optional here).

The default models' weights are the training checkpoints (training/runs/<model>/checkpoint.pt,
``training.model.SmearNet``). The PyTorch pipeline shares decoding, preprocessing and the overlay
with HemaLens, so the comparison isolates the engine: forward in eager mode, Grad-CAM by autograd
on the same target layer (Selvaraju et al.), the map resized to the image with OpenCV.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from inference.contract import ModelSpec
from inference.images import load_image
from inference.overlay import render_overlay
from inference.preprocess import preprocess_batch
from inference.session import available_cpu_count

REPO = Path(__file__).resolve().parents[1]
CHECKPOINTS = REPO / "training" / "runs"


def torch_status() -> str | None:
    """None when PyTorch can be imported, else why not (shown in the table)."""
    try:
        import torch  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any import failure means "not available"
        return f"PyTorch not importable ({type(exc).__name__}: {exc})"
    return None


@dataclass
class TorchModel:
    """An eval-mode module, the module whose output is the Grad-CAM target, and where it came from."""

    module: Any
    target: Any
    source: str


def load_checkpoint(name: str) -> tuple[TorchModel | None, str]:
    """The training checkpoint for model ``name`` (e.g. "all4") as a TorchModel, or None and why not."""
    if (why := torch_status()) is not None:
        return None, why
    root = Path(os.environ.get("HEMALENS_BENCH_CHECKPOINTS", str(CHECKPOINTS)))
    path = root / name / "checkpoint.pt"
    if not path.is_file():
        return None, f"no training checkpoint at {path}"
    from training.model import load_checkpoint as load_smearnet

    try:
        module, _ = load_smearnet(path)
    except Exception as exc:  # noqa: BLE001 - an unreadable checkpoint is reported, not fatal
        return None, f"checkpoint {path} could not be loaded ({type(exc).__name__}: {exc})"
    shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path
    return TorchModel(module, module.features, str(shown)), ""


class TorchRunner:
    """PyTorch eager on the CPU, channels-last (as the training code runs it), all available cores."""

    def __init__(self, model: TorchModel, threads: int | None = None) -> None:
        import torch

        self.torch = torch
        torch.set_num_threads(threads or available_cpu_count())
        self.module = model.module.to(memory_format=torch.channels_last)
        self.target = model.target
        self._acts: Any = None
        self.target.register_forward_hook(self._keep)

    def _keep(self, _module: Any, _inputs: Any, output: Any) -> None:
        self._acts = output

    def _tensor(self, x: np.ndarray) -> Any:
        return self.torch.from_numpy(x).contiguous(memory_format=self.torch.channels_last)

    def infer(self, tensor: np.ndarray, *, batch: int) -> int:
        """Forward only (inference mode) over pre-decoded tensors; returns how many images."""
        with self.torch.inference_mode():
            for i in range(0, len(tensor), batch):
                self.torch.softmax(self.module(self._tensor(tensor[i:i + batch])), dim=1)
        return len(tensor)

    def logits(self, tensor: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            return self.module(self._tensor(tensor)).numpy()

    def gradcam(self, tensor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities (N, C) and normalised top-class Grad-CAM maps (N, h, w) by autograd."""
        torch = self.torch
        with torch.enable_grad():
            logits = self.module(self._tensor(tensor))
            top = logits.argmax(dim=1)
            acts = self._acts
            (grads,) = torch.autograd.grad(logits.gather(1, top[:, None]).sum(), acts)
        with torch.no_grad():
            weights = grads.mean(dim=(2, 3), keepdim=True)
            cams = torch.relu((weights * acts).sum(dim=1))
            peak = cams.amax(dim=(1, 2), keepdim=True)
            cams = torch.where(peak > 0, cams / peak.clamp_min(1e-12), torch.zeros_like(cams))
            probs = torch.softmax(logits, dim=1)
        return probs.numpy(), cams.numpy()

    def pipeline(self, paths: Sequence[Path], spec: ModelSpec, *, batch: int) -> int:
        """Decode, preprocess, forward + Grad-CAM in PyTorch, overlay; returns how many images."""
        done = 0
        for i in range(0, len(paths), batch):
            rgbs = [load_image(p).rgb for p in paths[i:i + batch]]
            tensor, _ = preprocess_batch(rgbs, spec.input)
            _, cams = self.gradcam(tensor)
            for rgb, cam in zip(rgbs, cams, strict=True):
                heat = cv2.resize(cam, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
                render_overlay(rgb, np.clip(heat, 0.0, 1.0))
            done += len(rgbs)
        return done
