"""The model contract round-trips and refuses malformed documents with a clear reason."""

import json

import pytest

from inference.contract import (
    ClassLabel,
    GradCamSpec,
    InputSpec,
    ModelSpec,
    OutputSpec,
    assumed_spec,
    spec_from_json,
    spec_from_metadata,
)
from inference.errors import ModelContractError


def _spec() -> ModelSpec:
    return ModelSpec(
        name="Test",
        id="test",
        version="1.0",
        classes=(ClassLabel("a", "A"), ClassLabel("b", "B")),
        input=InputSpec(name="x", layout="NHWC", height=64, width=48, mean=(0.5, 0.5, 0.5)),
        output=OutputSpec(name="y", kind="logits", temperature=1.5),
        gradcam=GradCamSpec(activations="acts", weights="w", target_layer="conv"),
    ).with_provenance(metrics={"accuracy": 0.9})


def test_round_trip_preserves_every_field():
    spec = _spec()
    again = spec_from_json(spec.to_json())
    assert again == spec
    assert again.labels == ["A", "B"]
    assert spec_from_metadata({"hemalens": spec.to_json()}) == spec
    assert spec_from_metadata({"other": "x"}) is None


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.pop("classes"), "classes"),
        (lambda d: d.update(classes=[]), "classes"),
        (lambda d: d.update(schema_version=99), "newer"),
        (lambda d: d["input"].update(layout="CHW"), "input.layout"),
        (lambda d: d["input"].update(std=[1, 0, 1]), "std"),
        (lambda d: d["input"].update(mean=[1, 2]), "input.mean"),
        (lambda d: d["output"].update(temperature=0), "temperature"),
        (lambda d: d["input"].update(resize="zoom"), "input.resize"),
        (lambda d: d.update(classes=[{"id": "a", "name": "A"}, {"id": "a", "name": "B"}]), "unique"),
    ],
)
def test_malformed_documents_are_refused_with_reason(mutate, message):
    data = json.loads(_spec().to_json())
    mutate(data)
    with pytest.raises(ModelContractError, match=message):
        spec_from_json(json.dumps(data))


def test_not_json_is_refused():
    with pytest.raises(ModelContractError, match="not valid JSON"):
        spec_from_json("{nope")


def test_assumed_spec_reads_layout_and_size_from_graph():
    nchw = assumed_spec(input_name="in", input_shape=["N", 3, 96, 80], output_name="out",
                        num_classes=3, output_op="Softmax")
    assert (nchw.input.layout, nchw.input.height, nchw.input.width) == ("NCHW", 96, 80)
    assert nchw.assumed and nchw.output.kind == "probabilities" and nchw.labels[2] == "Class 2"
    nhwc = assumed_spec(input_name="in", input_shape=[None, None, None, 3], output_name="out",
                        num_classes=2, output_op=None)
    assert (nhwc.input.layout, nhwc.input.height) == ("NHWC", 224)
    assert any("224" in n for n in nhwc.notes)
    with pytest.raises(ModelContractError, match="rank"):
        assumed_spec(input_name="in", input_shape=[1, 10], output_name="o", num_classes=2,
                     output_op=None)


def test_assumptions_survive_serialisation():
    spec = assumed_spec(input_name="in", input_shape=["N", 3, 32, 32], output_name="out",
                        num_classes=2, output_op=None)
    again = spec_from_json(spec.to_json())
    assert again.assumed and again.notes == spec.notes
    assert not spec_from_json(_spec().to_json()).assumed
