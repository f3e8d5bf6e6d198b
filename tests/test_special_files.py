"""A pipe (or socket, device) named like an image: opening it would wait for a writer forever, so every
reader refuses it up front. Each check runs on a thread with a deadline: a regression fails, it does not hang."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are a POSIX feature")


def _within(seconds: float, call):
    """``call()``'s result or exception, or fail when it is still running after ``seconds``."""
    out: dict = {}

    def run() -> None:
        try:
            out["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"still blocked after {seconds} s (it opened the pipe)")
    if "error" in out:
        raise out["error"]
    return out["value"]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "sub").mkdir()
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(tmp_path / "cell.png")
    os.mkfifo(tmp_path / "pipe.png")
    os.mkfifo(tmp_path / "sub" / "pipe2.tif")
    (tmp_path / "gone.png").symlink_to(tmp_path / "missing.png")
    return tmp_path


def test_folder_listings_leave_pipes_out_and_keep_a_broken_link_to_report_it(folder: Path) -> None:
    from inference.batch import iter_image_paths

    names = [p.name for p in _within(5, lambda: list(iter_image_paths([folder], recursive=True)))]
    assert names == ["cell.png", "gone.png"]
    assert [p.name for p in iter_image_paths([folder])] == ["cell.png"]


def test_a_pipe_named_directly_is_refused_with_a_reason_by_every_reader(folder: Path, qapp) -> None:
    from gui.thumbnails import read_thumbnail
    from inference.errors import ImageLoadError
    from inference.images import load_image
    from review.store import file_sha256

    pipe = folder / "pipe.png"
    with pytest.raises(ImageLoadError, match="not a regular file"):
        _within(5, lambda: load_image(pipe))
    with pytest.raises(OSError, match="not a regular file"):
        _within(5, lambda: file_sha256(pipe))
    assert _within(5, lambda: read_thumbnail(pipe)).isNull()
    assert len(file_sha256(folder / "cell.png")) == 64  # regular files still read
