"""The Logic's registration with the itk engine: the core's command line run by Slicer's Python (PythonSlicer), here
.venv-slicer's, which has itk-elastix as Slicer's has once the user agreed to install it (Resources/requirements.txt)."""

import os
import sys

from ElastixMonaiLabelSlicer import application, registration_nodes, volumes


def test_the_itk_engine_registers_through_slicers_python(eml, scene, quick, tmp_path, monkeypatch):
    launcher = tmp_path / "bin" / "PythonSlicer"  # Slicer's launcher of its Python, on PATH as in Slicer
    launcher.parent.mkdir()
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    launcher.chmod(0o755)
    monkeypatch.setenv("PATH", f"{launcher.parent}{os.pathsep}{os.environ['PATH']}")
    import slicer

    logic = eml.ElastixMonaiLabelLogic()
    node = logic.getParameterNode()
    nodes = eml.use_case(node, volumes.add_case_nodes({"t1": quick.volumes["t1"], "t2": quick.volumes["t2"]}, "Sample"),
                         slicer.util.NodeModify)
    node.engine = "itk"
    job, onFinished = logic.startRegistration(node)
    reports = onFinished(application.wait_for(job, 1800))
    assert [r["modality"] for r in reports] == ["t2"] and reports[0]["metric_improved"]
    error = quick.alignment_error("t2", volumes.to_world(nodes["t2"].GetParentTransformNode()))
    assert error["mean_mm"] < 1.0, error
    registered = registration_nodes.registered_volume_of(node.registeredVolumes, nodes["t2"])
    assert registered.GetImageData().GetDimensions() == nodes["t1"].GetImageData().GetDimensions()
    assert node.compareVolume is registered
