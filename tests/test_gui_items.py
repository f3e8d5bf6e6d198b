"""How the list names an image: its path under the opened folder, worked out without touching the disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gui.items import namer, names_folder, shown_name


@pytest.mark.parametrize(("path", "expected"), [
    ("/lab/case/slide A/cell_1.png", "slide A/cell_1.png"),
    ("/lab/case/cell_1.png", "cell_1.png"),
    ("/lab/case/../case/slide B/cell_2.png", "slide B/cell_2.png"),  # a path as typed, with ".." in it
    ("/lab/case/..slide/cell_3.png", "..slide/cell_3.png"),  # a folder whose name starts with two dots
    ("/lab/cases/cell_4.png", "cell_4.png"),  # a neighbour whose name starts like the folder's: not under it
    ("/elsewhere/cell_5.png", "cell_5.png"),
])
def test_a_file_is_named_by_its_path_under_the_folder_or_else_by_its_own_name(path: str, expected: str) -> None:
    folder = Path("/lab/case")
    assert shown_name(Path(path), folder) == expected
    assert namer(folder)(Path(path)) == expected
    assert namer(None)(Path(path)) == Path(path).name


def test_relative_paths_are_named_under_the_folder_they_were_opened_from(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "case" / "slide A").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    folder = names_folder([Path("case")])  # as `hemalens case` opens it
    assert folder == tmp_path / "case" and os.path.isabs(folder)
    assert namer(folder)(Path("case/slide A/cell_1.png")) == "slide A/cell_1.png"
    files = [Path("case/slide A/x.png"), Path("case/y.png")]
    assert names_folder(files) == tmp_path / "case"  # files opened together: under their common folder
