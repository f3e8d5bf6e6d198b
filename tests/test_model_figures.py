"""The reading of a model's measured figures that the model card and `hemalens models` share."""

from inference.model_figures import call_records, held_out_result, other_lab_result


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


def test_each_class_call_has_its_record_from_the_confusion_matrix():
    """Rows are the true class, columns the call: the ALL model's 9 Benign fields called Early Pre-B make 9 of its
    135 Early Pre-B calls wrong, which is what a technician reading an Early Pre-B call should know."""
    labels = ["Benign", "Early Pre-B", "Pre-B", "Pro-B"]
    records = call_records({"confusion_matrix": [[55, 9, 0, 0], [0, 126, 0, 0], [0, 0, 123, 0], [0, 0, 0, 97]]},
                           labels)
    assert records["Early Pre-B"] == ("On its test images, 126 of its 135 Early Pre-B calls were right (93.3 %); "
                                      "the other 9 were Benign.")
    assert records["Benign"] == "On its test images, all 55 of its Benign calls were right."
    mixed = call_records({"confusion_matrix": [[5, 0, 1], [2, 1, 0], [3, 1, 0]]}, ["A", "B", "C"])
    assert mixed["A"] == "On its test images, 5 of its 10 A calls were right (50.0 %); the other 5 were C (3), B (2)."
    assert mixed["C"] == "On its test images, 0 of its 1 C calls were right (0.0 %); the other one was A."
    assert "B" in mixed and call_records({"confusion_matrix": [[1, 0], [0, 0]]}, ["A", "B"]).keys() == {"A"}
    five = call_records({"confusion_matrix": [[9, 0, 0, 0, 0], [4, 1, 0, 0, 0], [3, 0, 1, 0, 0], [2, 0, 0, 1, 0],
                                              [1, 0, 0, 0, 1]]}, list("ABCDE"))
    assert five["A"].endswith("the other 10 were B (4), C (3), D (2) and 1 more.")
    for bad in ([[1, 2]], [[1, 0], [0, "2"]], [[1, 0], [0, -1]], "nope", None):  # a user model's metrics
        assert call_records({"confusion_matrix": bad}, ["A", "B"]) == {}
