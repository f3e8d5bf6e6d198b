"""The model-fit thread: requests made while it is busy are not lost (the latest runs next), each answer
carries its request's tag, and sampling spreads over the whole folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from gui.model_suggestion import ModelSuggester
from inference.model_fit import sample_evenly
from tests.test_model_fit import DATA, SHIPPED


def test_sample_spreads_over_the_list_and_keeps_short_lists_whole() -> None:
    paths = [Path(f"{i:03d}.png") for i in range(100)]
    picked = sample_evenly(paths, 10)
    assert len(picked) == 10 and picked[0] == paths[0] and picked[-1] == paths[90]
    assert sample_evenly(paths[:5], 10) == paths[:5]


def test_busy_thread_runs_the_latest_request_next_and_answers_with_each_tag(qtbot) -> None:
    cells = sorted((DATA / "pbc" / "monocyte").glob("*.jpg"))[:6]
    if not cells:
        pytest.skip(f"real data not present at {DATA / 'pbc'} (see shared/data/README.md)")
    all4 = next(p for p in SHIPPED if p.name == "hemalens-all4.onnx")
    suggester = ModelSuggester()
    answers: list[tuple[object, object]] = []
    suggester.found.connect(lambda tag, fit: answers.append((tag, fit)))
    try:
        suggester.start(cells, SHIPPED, all4, tag="first")
        suggester.start(cells, SHIPPED, all4, tag="dropped")  # replaced by the next one while busy
        suggester.start([], SHIPPED, all4, tag="latest")
        qtbot.waitUntil(lambda: len(answers) == 2, timeout=20000)
        qtbot.wait(300)
    finally:
        suggester.shutdown()
    assert [tag for tag, _ in answers] == ["first", "latest"]
    assert answers[0][1].path.name == "hemalens-pbc.onnx" and answers[1][1] is None  # no images, no offer
