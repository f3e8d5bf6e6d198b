"""Model registry: bundled vs user folders, PyInstaller-aware paths, resolving by file, id, name or stem."""

from __future__ import annotations

import sys

import pytest

from inference import registry
from inference.errors import ModelNotFoundError
from tests.model_factory import make_classifier


@pytest.fixture()
def dirs(tmp_path, monkeypatch):
    bundled, user = tmp_path / "bundled", tmp_path / "user"
    monkeypatch.setenv(registry.BUNDLED_MODELS_ENV, str(bundled))
    monkeypatch.setenv(registry.USER_MODELS_ENV, str(user))
    make_classifier(bundled / "b_model.onnx", labels=["A", "B", "C"])
    make_classifier(user / "plain.onnx", with_metadata=False, num_classes=5, seed=3)
    (user / "broken.onnx").write_bytes(b"\x00\x01garbage")
    (user / "readme.md").write_text("not a model")
    return bundled, user


def test_list_models_bundled_first_and_problems_reported(dirs):
    bundled, user = dirs
    problems: list = []
    entries = registry.list_models(problems)
    assert [(e.path.name, e.bundled) for e in entries] == [("b_model.onnx", True), ("plain.onnx", False)]
    assert entries[0].spec.labels == ["A", "B", "C"] and not entries[0].spec.assumed
    assert entries[1].spec.assumed and entries[1].spec.num_classes == 5 and entries[1].spec.input.height == 32
    assert [p.name for p, _ in problems] == ["broken.onnx"] and "ONNX" in problems[0][1]


def test_resolve_model_by_path_id_name_and_stem(dirs):
    bundled, user = dirs
    assert registry.resolve_model(str(user / "plain.onnx")) == user / "plain.onnx"
    assert registry.resolve_model("tiny-3-0") == bundled / "b_model.onnx"
    assert registry.resolve_model("TINY TEST CLASSIFIER") == bundled / "b_model.onnx"
    assert registry.resolve_model("plain") == user / "plain.onnx"
    with pytest.raises(ModelNotFoundError, match="known models: .*tiny-3-0"):
        registry.resolve_model("leukemia-xl")
    with pytest.raises(ModelNotFoundError, match="not found"):
        registry.resolve_model(str(user / "gone.onnx"))


def test_default_locations(monkeypatch, tmp_path):
    monkeypatch.delenv(registry.BUNDLED_MODELS_ENV, raising=False)
    monkeypatch.delenv(registry.USER_MODELS_ENV, raising=False)
    assert registry.bundled_models_dir().parts[-2:] == ("assets", "models")
    assert registry.bundled_models_dir().parent.parent == registry.Path(registry.__file__).resolve().parents[1]
    assert registry.user_models_dir().name == "models" and "HemaLens" in str(registry.user_models_dir())
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert registry.bundled_models_dir() == tmp_path / "assets" / "models"
