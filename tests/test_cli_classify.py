"""`hemalens classify` and `hemalens models` end to end on a generated folder."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hemalens import RESEARCH_USE_STATEMENT
from hemalens.cli import main
from inference.cli_classify import Progress
from inference.session import ModelSession
from tests.model_factory import make_classifier

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def corpus(tmp_path):
    root = tmp_path / "Präparate 血液"  # non-ASCII on purpose
    (root / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (30 + i, 40, 3), dtype=np.uint8)).save(root / f"cell_{i}.png")
    Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(root / "sub" / "deep.jpg")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (root / "readme.txt").write_text("skip me")
    model = make_classifier(tmp_path / "modèle.onnx", labels=["Blast", "Lymphocyte", "Neutrophil"])
    return root, model


def test_classify_folder_to_csv_with_cams(corpus, tmp_path, capsys):
    root, model = corpus
    out = tmp_path / "results.csv"
    cams = tmp_path / "cartes thermiques"
    code = main(["classify", str(root), "--model", str(model), "--out", str(out), "--cam-dir", str(cams),
                 "--recursive"])
    assert code == 0
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [Path(r["path"]).name for r in rows] == ["broken.jpg", "cell_0.png", "cell_1.png", "cell_2.png",
                                                     "cell_3.png", "deep.jpg"]
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == 5
    for r in ok:
        probs = [float(r[f"p_c{i}"]) for i in range(3)]
        assert sum(probs) == pytest.approx(1.0, abs=1e-4)
        assert r["top_label"] in ("Blast", "Lymphocyte", "Neutrophil")
        assert float(r["top_probability"]) == pytest.approx(max(probs), abs=1e-6)
        assert r["cam_method"] == "grad-cam" and Path(r["cam_file"]).is_file()
        overlay = np.asarray(Image.open(r["cam_file"]))
        src = np.asarray(Image.open(r["path"]))
        assert overlay.shape == src.shape
    bad = next(r for r in rows if r["status"] == "error")
    assert bad["error"] and "broken.jpg" in bad["path"]
    printed = capsys.readouterr().out
    assert "Classified 5 of 6" in printed and "Failed: 1" in printed and "broken.jpg" in printed


def test_classify_to_json_and_non_recursive(corpus, tmp_path):
    root, model = corpus
    out = tmp_path / "r.json"
    assert main(["classify", str(root), "--model", str(model), "--out", str(out), "--no-progress"]) == 0
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["summary"]["images"] == 5 and doc["summary"]["classified"] == 4 and doc["summary"]["failed"] == 1
    assert sum(doc["summary"]["per_class"].values()) == 4
    assert doc["model"]["sha256"] and [c["name"] for c in doc["model"]["classes"]][0] == "Blast"
    assert not any("deep.jpg" in r["path"] for r in doc["results"])


def test_exit_code_non_zero_only_when_nothing_classified(corpus, tmp_path, capsys):
    root, model = corpus
    assert main(["classify", str(root / "broken.jpg"), "--model", str(model)]) == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["classify", str(empty), "--model", str(model)]) == 1
    assert "no images found" in capsys.readouterr().err
    assert main(["classify", str(root), "--model", str(tmp_path / "nope.onnx")]) == 2
    assert main(["classify", str(root), "--model", str(model), "--out", str(tmp_path / "x.xlsx")]) == 2


def test_model_resolved_by_id_from_user_folder_and_listed(corpus, tmp_path, monkeypatch, capsys):
    root, model = corpus
    user = tmp_path / "user_models"
    user.mkdir()
    (user / "tiny.onnx").write_bytes(model.read_bytes())
    (user / "junk.onnx").write_text("not a model")
    monkeypatch.setenv("HEMALENS_USER_MODELS_DIR", str(user))
    monkeypatch.setenv("HEMALENS_BUNDLED_MODELS_DIR", str(tmp_path / "no_bundled"))
    assert main(["classify", str(root / "cell_0.png"), "--model", "tiny-3-0"]) == 0
    assert "cell_0.png" in capsys.readouterr().out
    assert main(["models", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [m["id"] for m in doc["models"]] == ["tiny-3-0"] and doc["models"][0]["gradcam"] is True
    assert doc["unreadable"][0]["path"].endswith("junk.onnx")
    assert main(["models"]) == 0
    text = capsys.readouterr().out
    assert "Tiny test classifier" in text and "Blast, Lymphocyte, Neutrophil" in text and "Unreadable" in text
    assert main(["classify", str(root), "--model", "no-such-model"]) == 2
    assert "tiny-3-0" in capsys.readouterr().err


def test_models_lists_the_shipped_models_other_lab_figure(tmp_path, monkeypatch, capsys):
    from inference.registry import bundled_models_dir

    monkeypatch.setenv("HEMALENS_USER_MODELS_DIR", str(tmp_path / "none"))
    monkeypatch.delenv("HEMALENS_BUNDLED_MODELS_DIR", raising=False)
    pbc = ModelSession.load(bundled_models_dir() / "hemalens-pbc.onnx").spec.provenance.metrics["other_lab"]
    assert main(["models"]) == 0
    text = capsys.readouterr().out
    assert f"  other lab: {100 * pbc['accuracy']:.1f} % of {pbc['n']} Neutrophil images from another lab" in text
    assert text.count("  other lab:") == 2  # blood cell types and the AML screen; none for ALL subtypes
    all4 = ModelSession.load(bundled_models_dir() / "hemalens-all4.onnx").spec.provenance.metrics
    benign = all4["per_class"]["Benign"]["recall"]
    assert f"  tested:  accuracy {100 * all4['accuracy']:.1f} % (balanced " in text
    assert f"  recall:  Benign {100 * benign:.1f} %, Early Pre-B" in text  # the weak class is in sight


def test_progress_bar_only_on_terminals():
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        bar = Progress(2, stream, enabled=True)
        bar.step("a.png")
        bar.step("b.png")
        bar.close()
    assert "2/2" in tty.getvalue() and "#" in tty.getvalue()
    assert pipe.getvalue() == ""


def test_command_line_entry_point_runs(corpus, tmp_path):
    root, model = corpus
    out = tmp_path / "cli.csv"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run([sys.executable, "-m", "hemalens", "classify", str(root), "--model", str(model),
                           "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Classified 4 of 5" in proc.stdout and out.is_file()
    # the headless command must not drag in Qt
    probe = ("import sys; from hemalens.cli import main; "
             f"code = main(['classify', {str(root)!r}, '--model', {str(model)!r}]); "
             "assert 'PySide6' not in sys.modules, 'Qt imported'; sys.exit(code)")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_csv_cells_cannot_become_spreadsheet_formulas(corpus, tmp_path, monkeypatch):
    root, model = corpus
    evil = root / "=1+2.png"
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(evil)
    monkeypatch.chdir(root)
    out = tmp_path / "safe.csv"
    assert main(["classify", "=1+2.png", "--model", str(model), "--out", str(out)]) == 0
    (row,) = list(csv.DictReader(out.open(encoding="utf-8")))
    assert row["path"] == "'=1+2.png" and row["status"] == "ok"


def test_classify_warns_about_images_unlike_the_model_and_names_the_model_they_fit(tmp_path, monkeypatch, capsys):
    """Blood-cell crops classified with the ALL subtypes model: the summary carries the app's warning and
    the model to try instead; with the right model neither line appears."""
    import shutil

    from tests.test_model_fit import DATA

    if not (DATA / "pbc").is_dir():
        pytest.skip(f"real data not present at {DATA / 'pbc'} (see shared/data/README.md)")
    monkeypatch.setenv("HEMALENS_USER_MODELS_DIR", str(tmp_path / "none"))
    monkeypatch.delenv("HEMALENS_BUNDLED_MODELS_DIR", raising=False)
    for cls in ("eosinophil", "lymphocyte", "platelet"):
        for path in sorted((DATA / "pbc" / cls).glob("*.jpg"))[:3]:
            shutil.copy(path, tmp_path / f"{cls}_{path.name}")
    assert main(["classify", str(tmp_path), "--model", "hemalens-all4", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "⚠ 9 of 9 images look unlike the images ALL subtypes was trained on" in err
    assert "look like the images Blood cell types was trained on (9 of 9 sampled;" in err
    assert err.rstrip().endswith(RESEARCH_USE_STATEMENT) and "try --model hemalens-pbc." in err
    assert main(["classify", str(tmp_path), "--model", "hemalens-pbc", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "look unlike" not in err and "try --model" not in err


def test_calls_under_the_threshold_are_marked_and_counted_as_unidentified(corpus, tmp_path, capsys):
    root, model = corpus
    session = ModelSession.load(model)
    from inference.images import load_image

    tops = sorted(session.predict(load_image(p).rgb).top_probability for p in sorted(root.glob("cell_*.png")))
    cut = 100 * (tops[1] + tops[2]) / 2  # two of the four calls under it
    assert main(["classify", str(root), "--model", str(model), "--uncertain-below", f"{cut:.4f}",
                 "--no-progress"]) == 0
    captured = capsys.readouterr()
    marked = [line for line in captured.out.splitlines() if line.split("\t")[1].endswith("?")]
    assert len(marked) == 2
    assert f"Unidentified (top probability under {cut:.4f}".rstrip("0") in captured.err
    assert "marked ?): 2" in captured.err

    out = tmp_path / "r.json"
    assert main(["classify", str(root), "--model", str(model), "--out", str(out), "--uncertain-below",
                 f"{cut:.4f}", "--no-progress"]) == 0
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["summary"]["per_class"]["Unidentified"] == 2 and sum(doc["summary"]["per_class"].values()) == 4
    assert doc["summary"]["uncertain_below"] == pytest.approx(cut / 100)
    assert sorted(r["uncertain"] for r in doc["results"] if r["status"] == "ok") == [False, False, True, True]
    with pytest.raises(SystemExit) as refused:
        main(["classify", str(root), "--model", str(model), "--uncertain-below", "150"])
    assert refused.value.code == 2 and "not a percentage from 0 to 100" in capsys.readouterr().err


def test_a_file_name_that_is_not_utf8_is_written_out_not_a_traceback(corpus, tmp_path):
    root, model = corpus
    odd = root / "Zelle_\udce9.png"  # b"Zelle_\xe9.png", a Latin-1 name from an old Windows share
    try:
        Image.fromarray(np.full((24, 24, 3), 128, np.uint8)).save(odd)
    except (OSError, UnicodeError):
        pytest.skip("this file system accepts only valid UTF-8 names")
    for suffix in ("csv", "json"):
        out = tmp_path / f"results.{suffix}"
        assert main(["classify", str(odd), "--model", str(model), "--out", str(out)]) == 0
        text = out.read_text(encoding="utf-8")  # valid UTF-8
        assert "Zelle_\\udce9.png" in text
    doc = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert doc["results"][0]["path"] == str(odd) and doc["results"][0]["status"] == "ok"  # the exact name back


def test_results_that_cannot_be_written_are_printed_and_an_old_file_is_left_whole(corpus, tmp_path, capsys,
                                                                                 monkeypatch):
    """A full disk used to end the run in a traceback after every image was classified (and could leave half a
    CSV over the last one); now the old file stays as it was and the calls are printed instead."""
    import errno

    root, model = corpus
    out = tmp_path / "results.csv"
    out.write_text("the results of yesterday\n", encoding="utf-8")

    def full_disk(_fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    assert main(["classify", str(root), "--model", str(model), "--out", str(out), "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert out.read_text(encoding="utf-8") == "the results of yesterday\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".results.csv")] == []  # no temporary left
    assert "cannot write" in captured.err and "No space left on device; the results are above" in captured.err
    assert "cell_0.png" in captured.out and "Classified 4 of 5" in captured.err
