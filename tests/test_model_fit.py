"""Which installed model a folder's images look like (inference.model_fit), on the shipped models and real
images from ../shared/data; and the synthetic edge cases of the share it rests on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inference.familiarity import features_of_images, fit_reference, share_like_training
from inference.images import load_image
from inference.model_fit import ModelFit, better_fit, fit_of_models
from tests.test_evaluate_models import DATA
from tests.test_familiarity import smear

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "assets" / "models").glob("hemalens-*.onnx"))


def real_images(data_set: str, count: int = 12) -> list[np.ndarray]:
    """``count`` images spread over every class folder of a data set (file order, no randomness)."""
    folder = DATA / data_set
    if not folder.is_dir():
        pytest.skip(f"real data not present at {folder} (see shared/data/README.md)")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".bmp", ".tif"})
    return [load_image(files[i]).rgb for i in np.linspace(0, len(files) - 1, count).astype(int)]


@pytest.mark.parametrize("data_set", ["all4", "pbc", "aml"])
def test_each_data_set_fits_its_own_model_and_that_model_is_suggested_instead_of_the_others(data_set) -> None:
    fits = {f.path.name: f for f in fit_of_models(real_images(data_set), SHIPPED)}
    own = f"hemalens-{data_set}.onnx"
    assert set(fits) == {p.name for p in SHIPPED} and fits[own].sampled == 12
    assert fits[own].like_training >= 0.9
    assert all(f.like_training <= 0.25 for name, f in fits.items() if name != own)
    for current in SHIPPED:
        suggested = better_fit(list(fits.values()), current)
        assert (suggested is None) if current.name == own else (suggested.path.name == own)


def test_nothing_is_suggested_unless_another_model_fits_clearly_better() -> None:
    a, b = Path("a.onnx"), Path("b.onnx")
    assert better_fit([ModelFit(a, "A", 0.1, 20), ModelFit(b, "B", 0.7, 20)], a) is None  # B too unlike as well
    assert better_fit([ModelFit(a, "A", 0.5, 20), ModelFit(b, "B", 0.8, 20)], a) is None  # A fits half of them
    assert better_fit([ModelFit(a, "A", 0.3, 20), ModelFit(b, "B", 0.8, 20)], a).path == b
    assert better_fit([ModelFit(a, "A", 0.0, 20)], a) is None


def test_files_without_a_reference_or_unreadable_are_left_out(tmp_path) -> None:
    from tests.model_factory import make_classifier

    plain = make_classifier(tmp_path / "plain.onnx", num_classes=2, size=32, labels=["x", "y"])
    (tmp_path / "broken.onnx").write_bytes(b"not a model")
    rgbs = real_images("pbc", 4)
    fits = fit_of_models(rgbs, [plain, tmp_path / "broken.onnx", tmp_path / "gone.onnx", *SHIPPED])
    assert [f.path for f in fits] == SHIPPED
    assert fit_of_models([], SHIPPED) == []


def test_share_counts_an_image_like_any_class_whatever_the_call() -> None:
    from inference.contract import InputSpec

    rng = np.random.default_rng(4)
    spec = InputSpec(name="x", layout="NCHW", height=32, width=32, mean=(0.5,) * 3, std=(0.25,) * 3, scale=1 / 255)
    plain = features_of_images([smear(rng) for _ in range(120)], spec)
    pale = features_of_images([smear(rng, tint=(1.0, 1.0, 0.8)) for _ in range(120)], spec)
    # class 0 learnt from plain fields, class 1 from yellowish ones: each kind is "like training"
    reference = fit_reference(np.concatenate([plain[:100], pale[:100]]), np.repeat([0, 1], 100), 2)
    assert share_like_training(reference, np.concatenate([plain[100:], pale[100:]])) >= 0.9
    blue = features_of_images([smear(rng, tint=(0.7, 0.9, 1.2)) for _ in range(20)], spec)
    assert share_like_training(reference, blue) <= 0.1
    assert share_like_training(reference, blue[:0]) == 0.0
