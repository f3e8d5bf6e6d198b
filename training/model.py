"""A compact from-scratch CNN for smear images (no pretrained weights can be fetched here).

Plain 3x3 conv + BatchNorm + ReLU blocks, stride-2 downsampling, global average pooling and one
linear layer. Residual pairs keep the deeper stages trainable in few epochs. The last block's ReLU
("features.stage4") is the Grad-CAM target: at 128 px input it is an 8x8 map, fine enough to see
which cell the model looked at.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn


def conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ResidualPair(nn.Module):
    """Two 3x3 convs with an identity shortcut (same width, stride 1)."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(ch)
        self.conv2 = nn.Conv2d(ch, ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(ch)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(x + y)


class ImageStandardise(nn.Module):
    """Each image's channels to mean 0, variance 1 (InstanceNorm2d without parameters, eps 1e-3).

    Means are taken over rows, then over columns: ONNX Runtime sums a 128x128 plane in one float32 run
    (in InstanceNormalization or a single ReduceMean), and its error in the mean of a bright image,
    divided by a small standard deviation, moved the trained ALL model's logits by 1.4e-4 (float64:
    PyTorch 2e-6), beyond the exporter's 1e-4 check. Sums of 128 values agree to float rounding.
    """

    def __init__(self, eps: float = 1e-3) -> None:
        super().__init__()
        self.eps = eps

    @staticmethod
    def _plane_mean(x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=3, keepdim=True).mean(dim=2, keepdim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x - self._plane_mean(x)
        return centred / torch.sqrt(self._plane_mean(centred * centred) + self.eps)


class SmearNet(nn.Module):
    """Stem (stride 2), three stride-2 stages and a stride-1 fourth, each with a residual pair: total stride 16.

    Widths default to (24, 48, 96, 160, 256); at 128 px the stages run at 64, 32, 16, 8, 8 px.
    """

    def __init__(self, num_classes: int, widths: tuple[int, ...] = (24, 48, 96, 160, 256), dropout: float = 0.2,
                 standardise_colour: bool = False):
        super().__init__()
        w0, w1, w2, w3, w4 = widths
        # Per-image, per-channel standardisation (no parameters, same in training and inference): takes
        # away each image's overall colour balance and contrast, so a network cannot learn the imaging
        # session (white balance, stain strength) instead of the cells. Invariant to the runtime's
        # per-channel mean/std normalisation, so the model contract is unchanged.
        self.colour = ImageStandardise() if standardise_colour else nn.Identity()
        self.features = nn.Sequential()
        self.features.add_module("stem", nn.Sequential(conv_bn(3, w0, 2), conv_bn(w0, w0)))
        self.features.add_module("stage1", nn.Sequential(conv_bn(w0, w1, 2), ResidualPair(w1)))
        self.features.add_module("stage2", nn.Sequential(conv_bn(w1, w2, 2), ResidualPair(w2)))
        self.features.add_module("stage3", nn.Sequential(conv_bn(w2, w3, 2), ResidualPair(w3)))
        self.features.add_module("stage4", nn.Sequential(conv_bn(w3, w4, 1), ResidualPair(w4)))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(w4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(self.colour(x))
        x = torch.flatten(self.pool(x), 1)
        return self.fc(self.drop(x))


def load_checkpoint(path: str | Path) -> tuple[SmearNet, dict[str, Any]]:
    """A trained SmearNet (eval mode) and its checkpoint as training/train.py saved it."""
    ckpt = torch.load(str(path), map_location="cpu", weights_only=False)
    model = smearnet_for(ckpt["config"], len(ckpt["config"]["class_folders"]))
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt


def smearnet_for(config: dict[str, Any], num_classes: int) -> SmearNet:
    """The untrained network a training config describes (older configs lack standardise_colour)."""
    return SmearNet(num_classes, tuple(config["widths"]), standardise_colour=bool(config.get("standardise_colour")))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def load_matching_weights(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Copy every tensor of ``state`` whose name and shape fit ``model``; return the names left as they were.

    Why: a network trained on another data set (e.g. the eight blood cell types) is a better start for a
    small one than random weights when nothing pretrained can be downloaded; its classifier has another
    number of classes, so that layer starts fresh.
    """
    own = model.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(fitting, strict=False)
    return sorted(k for k in own if k not in fitting)
