"""Folder batch: stable order, recursion, quiet skipping of non-images, per-file errors without stopping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inference.batch import classify_paths, iter_image_paths
from inference.images import load_image
from inference.session import ModelSession
from tests.model_factory import make_classifier


def _png(path, seed=0, size=(30, 40)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture()
def folder(tmp_path):
    root = tmp_path / "smears"
    _png(root / "b.png", 1)
    _png(root / "A.png", 2)
    _png(root / "c.PNG", 3)
    (root / "notes.txt").write_text("not an image")
    (root / "zero.jpg").write_bytes(b"")
    (root / "text.png").write_text("pretend png")
    _png(root / "sub" / "d.png", 4)
    _png(root / ".hidden" / "e.png", 5)
    return root


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    return ModelSession.load(make_classifier(tmp_path_factory.mktemp("m") / "m.onnx"))


def test_iter_image_paths_is_sorted_and_skips_non_images(folder):
    flat = [p.name for p in iter_image_paths([folder])]
    assert flat == ["A.png", "b.png", "c.PNG", "text.png", "zero.jpg"]
    deep = [p.relative_to(folder).as_posix() for p in iter_image_paths([folder], recursive=True)]
    assert deep == ["A.png", "b.png", "c.PNG", "sub/d.png", "text.png", "zero.jpg"]
    # explicit files, duplicates collapse, a missing path is kept so it can be reported
    mixed = list(iter_image_paths([folder / "b.png", folder, folder / "gone.png", folder / "notes.txt"]))
    assert [p.name for p in mixed] == ["b.png", "A.png", "c.PNG", "text.png", "zero.jpg", "gone.png"]


def test_a_folder_that_cannot_be_read_is_reported_not_silently_skipped(folder, session, monkeypatch):
    """os.walk skips a sub-folder it cannot list without a word: its images were missing from the case, the
    differential and the report, and nobody was told."""
    import os

    real_scandir = os.scandir
    locked = folder / "sub"

    def scandir(path="."):
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    deep = [p.relative_to(folder).as_posix() for p in iter_image_paths([folder], recursive=True)]
    assert deep == ["A.png", "b.png", "c.PNG", "sub", "text.png", "zero.jpg"]  # listed, to be reported
    (result,) = [r for r in classify_paths(session, [folder], recursive=True) if r.path == locked]
    assert result.error == "a folder that cannot be read (Permission denied), so the images in it were not listed"
    monkeypatch.setattr(Path, "iterdir", lambda self: (_ for _ in ()).throw(PermissionError(13, "Permission denied")))
    assert list(iter_image_paths([folder])) == [folder]  # not recursive: the folder itself, reported the same way


def test_numbered_files_come_in_the_order_a_file_manager_shows(tmp_path):
    """Microscope software numbers without zeros: "Image 10" came before "Image 2", in the table, the keyboard's
    order and the report."""
    for name in ("Image 10.png", "image 2.png", "Image 1.png", "Image 2b.png", "cell_0010.png", "cell_0002.png"):
        _png(tmp_path / name)
    names = [p.name for p in iter_image_paths([tmp_path])]
    assert names == ["cell_0002.png", "cell_0010.png", "Image 1.png", "image 2.png", "Image 2b.png", "Image 10.png"]


@pytest.mark.parametrize("batch_size", [1, 2, 8])
def test_classify_paths_yields_result_or_error_per_file(folder, session, batch_size):
    results = list(classify_paths(session, [folder, folder / "gone.png"], recursive=True, batch_size=batch_size))
    names = [r.path.name for r in results]
    assert names == ["A.png", "b.png", "c.PNG", "d.png", "text.png", "zero.jpg", "gone.png"]
    by_name = {r.path.name: r for r in results}
    for good in ("A.png", "b.png", "c.PNG", "d.png"):
        r = by_name[good]
        assert r.ok and r.error is None
        single = session.predict(load_image(r.path).rgb)
        np.testing.assert_allclose(r.prediction.probabilities, single.probabilities, atol=1e-6)
    assert "empty" in by_name["zero.jpg"].error
    assert "format" in by_name["text.png"].error
    assert "does not exist" in by_name["gone.png"].error
    assert all(r.prediction is None for r in results if r.error)


def test_image_notes_are_carried(tmp_path, session):
    pages = [Image.fromarray(np.full((8, 8, 3), v, np.uint8)) for v in (10, 200)]
    pages[0].save(tmp_path / "stack.tif", save_all=True, append_images=pages[1:])
    (result,) = classify_paths(session, [tmp_path])
    assert result.ok and "first page of 2" in result.image_notes


def test_keep_images_and_early_stop(folder, session):
    results = classify_paths(session, [folder], keep_images=True, batch_size=2)
    first = next(results)
    assert first.path.name == "A.png" and first.rgb is not None and first.rgb.shape == (30, 40, 3)
    results.close()  # stopping early shuts the decode thread down cleanly
    plain = next(classify_paths(session, [folder]))
    assert plain.rgb is None
