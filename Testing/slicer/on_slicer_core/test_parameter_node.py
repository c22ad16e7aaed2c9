"""The module's parameter node through Slicer's real parameterNodeWrapper at v5.12.3 and v5.10.0: every field set,
read, saved with the scene and read back; the validators refuse bad values; every binding of the .ui resolved by
Slicer's own GUI-connector table (guiConnectors.py) to the connector Testing/slicer_rules.py predicts."""

import json
import xml.etree.ElementTree as ElementTree
from collections.abc import MutableSequence

import numpy as np
import pytest

import slicer_rules as rules
from conftest import UI_FILE, saved_and_reloaded
from ElastixMonaiLabelSlicer import volumes

TAGS = ["v5.12.3", "v5.10.0"]


def every_field(eml, scene, quick):
    """A value other than the default for each field (nodes of the right classes in ``scene``)."""
    nodes = volumes.add_case_nodes(quick.volumes, "case")
    registered = volumes.add_volume_node(quick.volumes["t2"], "case_t2_registered")
    mask = volumes.add_volume_node(quick.brain_mask, "mask", "vtkMRMLLabelMapVolumeNode")
    return {
        "referenceVolume": nodes["t1"], "referenceModality": "t1w", "movingVolumes": [nodes["t2"], nodes["flair"]],
        "movingModalities": ["t2", "flair"], "preset": "brain-affine", "brainMask": mask, "engine": "itk",
        "placeUnderTransforms": False, "registeredVolumes": [registered], "compareVolume": registered,
        "compareMode": "checkerboard", "compareOpacity": 0.25, "serverUrl": "http://127.0.0.1:8123",
        "model": "segmentation", "segmentation": scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "labels"),
        "strategy": "first", "trainingEpochs": 37, "imageId": "case-9",
        "imageFingerprint": json.dumps([["t1", "ab12", [58, 55, 71], np.eye(4).tolist()]]),
    }


def comparable(value):
    """Nodes by name (a reloaded scene has other node objects), lists (the wrapper's ObservedList too) element-wise."""
    if isinstance(value, MutableSequence):
        return [comparable(v) for v in value]
    return value.GetName() if hasattr(value, "GetName") else value


@pytest.mark.parametrize("tag", TAGS)
def test_every_field_is_kept_in_the_scene_and_read_back(module_at, scene, quick, tmp_path, tag):
    import slicer

    eml = module_at(tag)
    node = eml.ElastixMonaiLabelLogic().getParameterNode()
    values = every_field(eml, scene, quick)
    assert set(values) == set(node.allParameters), "a field of the parameter node is not tested"
    for name, value in values.items():
        assert comparable(getattr(node, name)) != comparable(value), f"{name}: pick a value other than the default"
        setattr(node, name, value)
    assert {name: comparable(getattr(node, name)) for name in values} == {n: comparable(v) for n, v in values.items()}
    slicer.mrmlScene = reloaded = saved_and_reloaded(scene, tmp_path / "saved")
    try:
        again = eml.ElastixMonaiLabelLogic().getParameterNode()
        assert again.parameterNode.GetScene() is reloaded
        assert {name: comparable(getattr(again, name)) for name in values} == {n: comparable(v) for n, v in values.items()}
        assert again.movingVolumes[0].GetImageData().GetDimensions() == (58, 55, 71)  # the data came back too
    finally:
        slicer.mrmlScene = scene
        reloaded.Clear(1)


@pytest.mark.parametrize("tag", TAGS)
def test_the_validators_refuse_bad_values(module_at, scene, tag):
    eml = module_at(tag)
    node = eml.ElastixMonaiLabelLogic().getParameterNode()
    for name, value in (("preset", "brain-fast"), ("engine", "gpu"), ("compareMode", "blend"), ("compareOpacity", 1.5),
                        ("trainingEpochs", 0), ("trainingEpochs", 1001)):
        with pytest.raises(ValueError):
            setattr(node, name, value)
    with pytest.raises(TypeError):
        node.brainMask = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "not a label map")
    with pytest.raises(TypeError):
        node.segmentation = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "not a segmentation")
    assert (node.preset, node.engine, node.compareOpacity, node.trainingEpochs, node.brainMask) == (
        "brain-rigid", "auto", 0.5, 10, None)


def widget_of_class(class_name):
    """An instance of the class the .ui names, as Slicer's Python would make it (qt, ctk, or slicer's qMRML widgets)."""
    import ctk
    import qt
    import slicer

    return getattr(ctk if class_name.startswith("ctk") else slicer if class_name.startswith("qMRML") else qt, class_name)()


@pytest.mark.parametrize("tag", TAGS)
def test_every_ui_binding_resolves_in_slicers_own_connector_table(module_at, scene, tag):
    eml = module_at(tag)
    from slicer.parameterNodeWrapper import guiConnectors

    node = eml.ElastixMonaiLabelLogic().getParameterNode()
    registered = guiConnectors._registeredGuiConnectors  # Slicer's table, in the order createGuiConnector tries it
    # Testing/slicer_rules.py's written-down table is Slicer's, in Slicer's order (parameter packs aside).
    assert [c.name for c in rules.GUI_CONNECTORS] == [
        c.__name__ for c in registered if c.__name__ != "WidgetChildrenToParameterPackConnector"]
    source = (UI_FILE.parent.parent.parent / "ElastixMonaiLabel.py").read_text()
    predicted = rules.parameter_types(source, {"list_presets": eml.list_presets, "ENGINE_CHOICES": eml.ENGINE_CHOICES})
    bindings = rules.ui_bindings(UI_FILE.read_text())
    assert len(bindings) >= 10
    for binding in bindings:
        widget = widget_of_class(binding.widget_class)
        connector = next((c for c in registered if c.canRepresent(widget, node.dataType(binding.parameter))), None)
        assert connector is not None, f"{binding.widget}: connectGui would raise for {binding.parameter}"
        expected = next(c.name for c in rules.GUI_CONNECTORS
                        if binding.widget_class in c.widgets and predicted[binding.parameter].base in c.types)
        assert connector.__name__ == expected, binding.widget
    assert {b.widget_class for b in bindings} <= {w.get("class") for w in ElementTree.parse(UI_FILE).iter("widget")}
