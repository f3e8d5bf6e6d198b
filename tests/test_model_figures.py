"""The reading of a model's measured figures that the model card and `hemalens models` share."""

from inference.model_figures import held_out_result, other_lab_result


def test_figures_are_used_only_when_they_are_numbers():
    assert held_out_result({"accuracy": "0.9"}) is None and held_out_result({"accuracy": True}) is None
    result = held_out_result({"accuracy": 1, "ece": "low", "n": 12})
    assert result is not None and (result.accuracy, result.ece, result.where) == (1.0, None, "12 test images")
    assert held_out_result({"accuracy": 0.5, "evaluated_on": "x/ test block"}).where == "x/ test block"


def test_other_lab_keeps_only_the_wrong_calls():
    calls = {"A": 2, "B": 18, "C": 0}
    lab = other_lab_result({"other_lab": {"accuracy": 0.9, "n": 20, "classes": ["B"], "calls": calls}})
    assert lab is not None and lab.other_calls == {"A": 2} and lab.classes == ("B",) and lab.source == ""
    assert other_lab_result({"other_lab": {"accuracy": 0.9, "n": "20"}}) is None
