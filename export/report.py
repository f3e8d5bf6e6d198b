"""The result of an export: where the model went, what it says about itself, and how it verified."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from export.verify import format_figures
from inference.contract import ModelSpec


@dataclass(frozen=True)
class ExportReport:
    """Returned by every exporter; ``figures`` are also stored in ``spec.provenance.verification``."""

    path: Path
    spec: ModelSpec
    figures: dict[str, Any]
    target_tensor: str
    opset: int
    converter: str
    notes: tuple[str, ...] = field(default_factory=tuple)

    def summary(self) -> str:
        lines = [
            f"wrote {self.path} ({' '.join(filter(None, (self.spec.name, self.spec.version)))}, "
            f"{self.spec.num_classes} classes, "
            f"opset {self.opset}, via {self.converter})",
            f"Grad-CAM target: {self.spec.gradcam.target_layer if self.spec.gradcam else '-'} "
            f"(ONNX tensor {self.target_tensor})",
            format_figures(self.figures),
        ]
        return "\n".join(lines + list(self.notes))
